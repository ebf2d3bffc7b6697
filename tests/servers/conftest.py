"""Real servers for the session, each started on 127.0.0.1 and free ports when a test
first asks for it, and stopped at the end: an external PostgreSQL 18 (+ pgvector)
migrated by ``faceprint migrate``, SeaweedFS' S3 gateway, Redis behind Sentinel and the
Milvus standalone server.

Here ``pg_admin_uri`` and ``db_url`` replace the root conftest's embedded server, so
every fixture built on them (``engine``, ``settings``…) talks to the external server
over TCP. A server that cannot start fails the test that needs it, with its log."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import TEMPLATE_DB, _drop_database, _make_database
from tests.servers.api import Stack, run_faceprint
from tests.servers.postgres import PgServer
from tests.servers.stores import MilvusStandalone, RedisSentinelSet, SeaweedS3


def _scratch(prefix: str) -> Path:
    # Not pytest's tmp dirs: their parents are 0700, and PostgreSQL runs as another user.
    return Path(tempfile.mkdtemp(prefix=f"faceprint-servers-{prefix}-"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    root = _scratch("pg")
    server = PgServer(root, "primary")
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_uri(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The external server's admin URI, with the template database migrated the way an
    operator does it: ``faceprint migrate`` with FACEPRINT_DATABASE_URL."""
    with psycopg.connect(pg_server.admin_uri(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    data_dir = tmp_path_factory.mktemp("migrate-data")
    run_faceprint(
        "migrate",
        env={
            "FACEPRINT_DATABASE_URL": pg_server.url(TEMPLATE_DB),
            "FACEPRINT_DATA_DIR": str(data_dir),
        },
    )
    # The embedded server was not started for it: nothing in the data dir but secrets.
    assert not (data_dir / "postgres").exists()
    return pg_server.admin_uri()


@pytest.fixture
def db_name(pg_admin_uri: str) -> Iterator[str]:
    name = _make_database(pg_admin_uri, TEMPLATE_DB)
    try:
        yield name
    finally:
        _drop_database(pg_admin_uri, name)


@pytest.fixture
def db_url(pg_server: PgServer, db_name: str) -> str:
    """A fresh migrated database on the external server, as a TCP SQLAlchemy URL."""
    return pg_server.url(db_name)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3]:
    root = _scratch("s3")
    server = None
    try:
        server = SeaweedS3(root)
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def sentinel_redis() -> Iterator[RedisSentinelSet]:
    root = _scratch("redis")
    servers = None
    try:
        servers = RedisSentinelSet(root)
        yield servers
    finally:
        if servers is not None:
            servers.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def milvus_server() -> Iterator[MilvusStandalone]:
    root = _scratch("milvus")
    server = None
    try:
        server = MilvusStandalone(root)
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def milvus_uri(milvus_server: MilvusStandalone) -> Iterator[str]:
    """The server's address; every collection a test made is dropped after it."""
    from pymilvus import MilvusClient

    yield milvus_server.uri
    client = MilvusClient(milvus_server.uri)
    try:
        for name in client.list_collections():
            client.drop_collection(name)
    finally:
        client.close()


@pytest.fixture
def stack(
    pg_server: PgServer,
    db_name: str,
    s3_server: SeaweedS3,
    sentinel_redis: RedisSentinelSet,
    milvus_server: MilvusStandalone,
    milvus_uri: str,
    tmp_path: Path,
) -> Stack:
    """Every server of a deployment, with this test's own database, bucket and data dir
    (the Milvus collections are dropped after it)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return Stack(
        pg=pg_server,
        database=db_name,
        s3=s3_server,
        bucket=s3_server.s3.new_bucket(),
        redis=sentinel_redis,
        milvus=milvus_server,
        data_dir=data_dir,
    )
