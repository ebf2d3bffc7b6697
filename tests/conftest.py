"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per test
(cloned from a migrated template, which takes milliseconds), real Redis, real images."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine

from service.db import migrate
from service.db.session import make_engine

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parent.parent
FACES_DIR = REPO.parent / "shared" / "data" / "faces"
LFW_DIR = REPO.parent / "shared" / "data" / "lfw-dev"
TEMPLATE_DB = "faceprint_template"


@pytest.fixture(scope="session")
def pg_admin_uri() -> Iterator[str]:
    """libpq URI of the session's embedded server (database ``postgres``)."""
    from service.db.embedded import EmbeddedPostgres, _sqlalchemy_url

    root = Path(tempfile.mkdtemp(prefix="faceprint-test-pg-"))
    embedded = EmbeddedPostgres(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedded.start()
    admin = embedded.admin_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    migrate.upgrade(_sqlalchemy_url(admin, TEMPLATE_DB))
    try:
        yield admin
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


def _make_database(admin: str, template: str | None) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(query)
    return name


def _drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def db_url(pg_admin_uri: str) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, fully migrated database for this test alone."""
    from service.db.embedded import _sqlalchemy_url

    name = _make_database(pg_admin_uri, TEMPLATE_DB)
    try:
        yield _sqlalchemy_url(pg_admin_uri, name)
    finally:
        _drop_database(pg_admin_uri, name)


@pytest.fixture
def empty_db_url(pg_admin_uri: str) -> Iterator[str]:
    """SQLAlchemy URL of an empty database (no schema), for migration tests."""
    from service.db.embedded import _sqlalchemy_url

    name = _make_database(pg_admin_uri, None)
    try:
        yield _sqlalchemy_url(pg_admin_uri, name)
    finally:
        _drop_database(pg_admin_uri, name)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url, pool_size=5)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real Redis: the one on 127.0.0.1:6379 (.ci/run starts it), or, when none answers
    and ``redis-server`` is installed, one started here for the session."""
    import subprocess
    import time

    import redis

    url = os.environ.get("FACEPRINT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
        yield url
        return
    except redis.exceptions.ConnectionError:
        pass
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(f"Redis is not answering at {url} and redis-server is not installed")
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not come up on 127.0.0.1:6379")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """A Redis database number of its own, emptied before the test."""
    import redis

    redis.Redis.from_url(redis_server).flushdb()
    return redis_server


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not FACES_DIR.is_dir():
        pytest.fail(f"the shared face photos are missing: {FACES_DIR}")
    return FACES_DIR


@pytest.fixture
def settings(data_dir: Path, db_url: str):  # noqa: ANN201 - Settings, imported lazily
    from pydantic import SecretStr

    from service.core.settings import Settings

    return Settings(data_dir=data_dir, database_url=SecretStr(db_url))


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - FacePipeline
    """One face pipeline (models loaded once) shared by every app the tests build."""
    from indexing.pipeline import build_pipeline
    from service.core.settings import Settings
    from service.domain.components import pipeline_config

    data = tmp_path_factory.mktemp("pipeline-data")
    return build_pipeline(pipeline_config(Settings(data_dir=data)))


@pytest.fixture
def client(settings, db_url: str, pipeline):  # noqa: ANN001, ANN201
    """A TestClient over the real app, bound to this test's database."""
    from fastapi.testclient import TestClient

    from service.http.app import create_app

    with TestClient(create_app(settings, database_url=db_url, pipeline=pipeline)) as test_client:
        yield test_client


ClientFactory = Callable[..., "TestClient"]


@pytest.fixture
def make_client(settings, db_url: str, pipeline) -> Iterator[ClientFactory]:  # noqa: ANN001
    """Apps on this test's database with some settings changed; all share one data dir
    (hence one JWT secret) and the session's face pipeline."""
    from fastapi.testclient import TestClient

    from service.http.app import create_app

    opened: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        app = create_app(
            settings.model_copy(update=overrides), database_url=db_url, pipeline=pipeline
        )
        test_client = TestClient(app)
        test_client.__enter__()
        opened.append(test_client)
        return test_client

    yield make
    for test_client in opened:
        test_client.__exit__(None, None, None)


def make_key(client, role: str, galleries: list[str] | None = None) -> str:  # noqa: ANN001
    """Create an API key straight through the service function the CLI uses."""
    from service.core.principal import Role
    from service.domain.auth import key_admin

    with client.app.state.container.sessionmaker() as session:
        new = key_admin.create(
            session,
            name=f"test-{role}",
            role=Role(role),
            galleries=[uuid.UUID(g) for g in galleries] if galleries else None,
            actor=None,
        )
        session.commit()
        return new.plaintext


@pytest.fixture
def admin_key(client) -> str:  # noqa: ANN001
    return make_key(client, "admin")
