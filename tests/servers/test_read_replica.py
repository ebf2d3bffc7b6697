"""FACEPRINT_DATABASE_READ_URL on a real streaming standby (pg_basebackup -R -X stream):
the history list and the analytics reports are read there, verify and every write on the
primary; the standby refuses writes.

To tell which server answered, the standby's replay is paused: what it serves then is
the state before the pause, while the primary has moved on."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from tests.conftest import FACES_DIR, ClientFactory, make_key
from tests.servers.postgres import PgServer

pytestmark = pytest.mark.servers

OBAMA = FACES_DIR / "identities" / "obama"
BIDEN = FACES_DIR / "identities" / "biden"


@pytest.fixture(scope="module")
def standby(pg_server: PgServer, pg_admin_uri: str) -> Iterator[PgServer]:
    root = Path(tempfile.mkdtemp(prefix="faceprint-servers-standby-"))
    server = PgServer(root, "standby")
    try:
        server.standby_of(pg_server)
        server.start()
        assert server.query("SELECT pg_is_in_recovery()") == [(True,)]
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def caught_up(primary: PgServer, standby: PgServer, timeout_s: float = 30) -> None:
    (target,) = primary.query("SELECT pg_current_wal_lsn()")[0]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        (behind,) = standby.query(f"SELECT pg_last_wal_replay_lsn() < '{target}'::pg_lsn")[0]
        if not behind:
            return
        time.sleep(0.05)
    pytest.fail(f"the standby did not replay up to {target} within {timeout_s:.0f} s")


def upload(path: Path) -> dict:
    return {"image": (path.name, path.read_bytes(), "application/octet-stream")}


def test_history_and_reports_read_the_standby_verify_reads_the_primary(
    pg_server: PgServer, standby: PgServer, db_name: str, make_client: ClientFactory
) -> None:
    caught_up(pg_server, standby)  # the test's database exists there too
    client = make_client(database_read_url=SecretStr(standby.url(db_name)))
    assert client.get("/readyz").json()["checks"]["read_replica"] == "ok"
    headers = {"X-API-Key": make_key(client, "admin")}
    gid = client.post("/v1/galleries", json={"name": "g"}, headers=headers).json()["id"]
    obama = client.post(f"/v1/galleries/{gid}/subjects", json={"external_id": "obama"},
                        headers=headers).json()["id"]  # fmt: skip
    enrolled = client.post(f"/v1/galleries/{gid}/subjects/{obama}/faces",
                           files=upload(OBAMA / "obama1.jpg"), headers=headers)  # fmt: skip
    assert enrolled.status_code == 201, enrolled.text
    first = client.post("/v1/verify", files=upload(OBAMA / "obama2.jpg"),
                        data={"gallery": gid, "subject": obama}, headers=headers)  # fmt: skip
    assert first.status_code == 200 and first.json()["match"] is True
    caught_up(pg_server, standby)

    standby.query("SELECT pg_wal_replay_pause()")
    try:
        # Written on the primary while the standby stands still.
        biden = client.post(f"/v1/galleries/{gid}/subjects", json={"external_id": "biden"},
                            headers=headers).json()["id"]  # fmt: skip
        added = client.post(f"/v1/galleries/{gid}/subjects/{biden}/faces",
                            files=upload(BIDEN / "biden1.jpg"), headers=headers)  # fmt: skip
        assert added.status_code == 201, added.text
        # Verify reads its own writes: the subject enrolled a moment ago, on the primary.
        second = client.post("/v1/verify", files=upload(BIDEN / "biden2.jpg"),
                             data={"gallery": gid, "subject": biden}, headers=headers)  # fmt: skip
        assert second.status_code == 200 and second.json()["match"] is True, second.text
        second_id = second.json()["verification_id"]

        listed = client.get("/v1/verifications", params={"gallery": gid}, headers=headers)
        assert listed.status_code == 200, listed.text
        assert [v["id"] for v in listed.json()["items"]] == [first.json()["verification_id"]]
        # One verification by id is read on the primary: a caller may fetch it at once.
        assert client.get(f"/v1/verifications/{second_id}", headers=headers).status_code == 200
        volume = client.get("/v1/analytics/volume", params={"gallery": gid}, headers=headers)
        assert volume.status_code == 200, volume.text
        assert sum(r["decisions"] for r in volume.json()["rows"]) == 1
    finally:
        standby.query("SELECT pg_wal_replay_resume()")
    caught_up(pg_server, standby)
    listed = client.get("/v1/verifications", params={"gallery": gid}, headers=headers).json()
    assert len(listed["items"]) == 2
    volume = client.get("/v1/analytics/volume", params={"gallery": gid}, headers=headers)
    assert sum(r["decisions"] for r in volume.json()["rows"]) == 2


def test_the_standby_refuses_writes(standby: PgServer, db_name: str, pg_server: PgServer) -> None:
    caught_up(pg_server, standby)
    with psycopg.connect(standby.admin_uri(db_name), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO galleries (id, name, active_model_id)"
                         " VALUES (gen_random_uuid(), 'nope', 'dlib-resnet-v1-onnx')")  # fmt: skip
        # It has what search needs: the same pgvector as the primary.
        (version,) = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()  # type: ignore[misc]
        assert version == pg_server.query("SELECT extversion FROM pg_extension"
                                          " WHERE extname = 'vector'", db_name)[0][0]  # fmt: skip


def test_an_unreachable_replica_makes_the_service_not_ready(
    db_name: str, make_client: ClientFactory
) -> None:
    from tests.servers.launch import free_port

    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/{db_name}?connect_timeout=2"
    client = make_client(database_read_url=SecretStr(url))
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["read_replica"] == "failing"
    assert ready.json()["checks"]["database"] == "ok"
