"""The operator's CLI: galleries, subjects, keys, the audit log and the history, with
one-line errors, against the real database and the real app (what the CLI writes, the
API serves, and the other way round)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import FACES_DIR, make_key

Invoke = Callable[..., Result]
OBAMA = FACES_DIR / "identities" / "obama"


@pytest.fixture
def faceprint(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:  # noqa: ANN001
    """Run ``faceprint ARGS`` in-process against this test's database and data dir."""
    from service.cli.main import app
    from service.core.settings import get_settings

    monkeypatch.setenv("FACEPRINT_DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()

    def invoke(*args: str, stdin: str = "") -> Result:
        return CliRunner().invoke(app, list(args), input=stdin)

    yield invoke
    get_settings.cache_clear()


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def one_line_error(result: Result, needle: str) -> None:
    """Exit code 1, one ``error: …`` line naming the problem, no traceback."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.output


def enroll(client: TestClient, key: str, gallery: str, external_id: str, photo: Path) -> str:
    headers = {"X-API-Key": key}
    subject = client.post(
        f"/v1/galleries/{gallery}/subjects", json={"external_id": external_id}, headers=headers
    )
    assert subject.status_code == 201, subject.text
    subject_id = subject.json()["id"]
    face = client.post(
        f"/v1/galleries/{gallery}/subjects/{subject_id}/faces",
        files={"image": (photo.name, photo.read_bytes())},
        headers=headers,
    )
    assert face.status_code == 201, face.text
    return str(subject_id)


def test_version_and_help(faceprint: Invoke) -> None:
    from importlib.metadata import version

    assert ok(faceprint("--version")).stdout.strip() == f"faceprint {version('faceprint')}"
    listed = ok(faceprint("--help")).stdout
    for group in ("galleries", "subjects", "keys", "audit", "history"):
        assert group in listed
    for args in (("galleries", "create"), ("subjects", "list"), ("keys", "list"), ("audit", "list"),
                 ("history", "list")):  # fmt: skip
        assert "--help" in ok(faceprint(*args, "--help")).stdout


def test_gallery_and_subject_lifecycle_from_the_cli(client, faceprint: Invoke) -> None:  # noqa: ANN001
    created = ok(faceprint("galleries", "create", "staff"))
    gallery = str(uuid.UUID(created.stdout.strip()))  # only the id on stdout
    key = make_key(client, "admin")
    # The API sees the gallery the CLI made, and the CLI what the API enrolled.
    assert client.get(f"/v1/galleries/{gallery}", headers={"X-API-Key": key}).status_code == 200
    subject_id = enroll(client, key, gallery, "emp-0042", OBAMA / "obama1.jpg")
    enroll(client, key, gallery, "emp-0043", FACES_DIR / "identities" / "biden" / "biden1.jpg")

    listed = json.loads(ok(faceprint("galleries", "list", "--format", "json")).stdout)
    assert [(g["id"], g["name"], g["subject_count"]) for g in listed] == [(gallery, "staff", 2)]
    assert "staff" in ok(faceprint("galleries", "list")).stdout
    shown = json.loads(ok(faceprint("galleries", "show", gallery, "--format", "json")).stdout)
    assert shown["subject_count"] == 2 and shown["model_id"]

    people = json.loads(
        ok(faceprint("subjects", "list", "--gallery", gallery, "--format", "json")).stdout
    )
    assert {p["external_id"]: p["face_count"] for p in people} == {"emp-0042": 1, "emp-0043": 1}
    by_external = ok(
        faceprint("subjects", "show", "emp-0042", "--gallery", gallery, "--format", "json")
    )
    assert json.loads(by_external.stdout)["id"] == subject_id

    ok(faceprint("subjects", "delete", "emp-0042", "--gallery", gallery, "--yes"))
    gone = client.get(f"/v1/galleries/{gallery}/subjects/{subject_id}", headers={"X-API-Key": key})
    assert gone.status_code == 404
    one_line_error(faceprint("subjects", "show", subject_id, "--gallery", gallery), "no subject")

    refused = faceprint("galleries", "delete", gallery, stdin="n\n")
    assert refused.exit_code != 0
    assert client.get(f"/v1/galleries/{gallery}", headers={"X-API-Key": key}).status_code == 200
    ok(faceprint("galleries", "delete", gallery, "--yes"))
    assert client.get(f"/v1/galleries/{gallery}", headers={"X-API-Key": key}).status_code == 404
    assert json.loads(ok(faceprint("galleries", "list", "--format", "json")).stdout) == []


def test_unknown_ids_are_one_line_errors(faceprint: Invoke) -> None:
    missing = str(uuid.uuid4())
    one_line_error(faceprint("galleries", "show", missing), f"no gallery {missing}")
    one_line_error(faceprint("galleries", "delete", missing, "--yes"), f"no gallery {missing}")
    one_line_error(faceprint("subjects", "list", "--gallery", missing), f"no gallery {missing}")
    one_line_error(faceprint("keys", "revoke", missing), missing)
    one_line_error(faceprint("keys", "revoke", "fp_0123456789ab"), "no API key")
    one_line_error(
        faceprint("galleries", "create", "x", "--model", "no-such-model"), "no-such-model"
    )


def test_failures_outside_the_domain_are_one_line_too(faceprint: Invoke, monkeypatch) -> None:  # noqa: ANN001
    from sqlalchemy.exc import OperationalError

    from service.core.settings import get_settings

    # Nothing listens on port 1: the database cannot be reached.
    monkeypatch.setenv("FACEPRINT_DATABASE_URL", "postgresql+psycopg://x:y@127.0.0.1:1/none")
    get_settings.cache_clear()
    failed = faceprint("keys", "list")
    assert failed.exit_code == 1 and failed.stderr.startswith("error: ")
    assert "--debug" in failed.stderr and "Traceback" not in failed.output
    debug = faceprint("--debug", "keys", "list")
    assert isinstance(debug.exception, OperationalError)


def test_keys_list_and_revoke_by_prefix_or_id(client, faceprint: Invoke) -> None:  # noqa: ANN001
    first = ok(faceprint("keys", "create", "--name", "door", "--role", "client"))
    key = first.stdout.strip()
    assert key.startswith("fp_") and "written to" in first.stderr
    second = ok(faceprint("keys", "create", "--name", "ops", "--role", "operator")).stdout.strip()

    listed = json.loads(ok(faceprint("keys", "list", "--format", "json")).stdout)
    assert [(k["name"], k["role"], k["state"]) for k in listed] == [
        ("ops", "operator", "active"), ("door", "client", "active"),
    ]  # fmt: skip
    table = ok(faceprint("keys", "list")).stdout
    assert "door" in table and key not in table  # the key itself is never shown again
    prefix = key.removeprefix("fp_").split("_")[0]
    assert listed[1]["prefix"] == prefix

    assert client.get("/v1/verifications", headers={"X-API-Key": key}).status_code == 200
    ok(faceprint("keys", "revoke", prefix))
    assert client.get("/v1/verifications", headers={"X-API-Key": key}).status_code == 401
    assert "already revoked" in ok(faceprint("keys", "revoke", f"fp_{prefix}")).stderr

    ops_id = listed[0]["id"]
    ok(faceprint("keys", "revoke", ops_id))
    assert client.get("/v1/verifications", headers={"X-API-Key": second}).status_code == 401
    active = json.loads(ok(faceprint("keys", "list", "--no-revoked", "--format", "json")).stdout)
    assert active == []


def test_audit_and_history_readers(client, faceprint: Invoke) -> None:  # noqa: ANN001
    gallery = ok(faceprint("galleries", "create", "doors")).stdout.strip()
    key = make_key(client, "admin")
    subject_id = enroll(client, key, gallery, "emp-7", OBAMA / "obama1.jpg")
    for photo in ("obama2.jpg", FACES_DIR / "identities" / "biden" / "biden1.jpg"):
        path = OBAMA / photo if isinstance(photo, str) else photo
        done = client.post(
            "/v1/verify",
            files={"image": (path.name, path.read_bytes())},
            data={"gallery": gallery, "subject": subject_id},
            headers={"X-API-Key": key},
        )
        assert done.status_code == 200, done.text
    ok(faceprint("subjects", "delete", subject_id, "--gallery", gallery, "--yes"))

    rows = json.loads(ok(faceprint("audit", "list", "--format", "json")).stdout)
    actions = [r["action"] for r in rows]
    assert actions[0] == "subject.erase" and "gallery.create" in actions
    assert rows[0]["actor"] == "cli:cli" and rows[0]["target_id"] == subject_id
    subject_rows = json.loads(
        ok(faceprint("audit", "list", "--action", "subject.", "--format", "json")).stdout
    )
    assert [r["action"] for r in subject_rows] == ["subject.erase", "subject.create"]
    assert (
        json.loads(ok(faceprint("audit", "list", "--limit", "1", "--format", "json")).stdout)[0][
            "action"
        ]
        == "subject.erase"
    )
    future = ok(faceprint("audit", "list", "--since", "2999-01-01", "--format", "json"))
    assert json.loads(future.stdout) == []
    about = ok(faceprint("audit", "list", "--target", gallery, "--format", "json")).stdout
    assert [r["action"] for r in json.loads(about)] == ["gallery.create"]
    assert "cli:cli" in ok(faceprint("audit", "list")).stdout

    calls = json.loads(
        ok(faceprint("history", "list", "--gallery", gallery, "--format", "json")).stdout
    )
    assert [c["match"] for c in calls] == [False, True]  # newest first
    assert all(c["kind"] == "verify" and c["caller"].startswith("api_key:") for c in calls)
    matches = json.loads(ok(faceprint("history", "list", "--match", "--format", "json")).stdout)
    assert len(matches) == 1 and matches[0]["similarity"] >= matches[0]["threshold"]
    assert "verify" in ok(faceprint("history", "list", "--kind", "verify")).stdout
    assert "no history rows" in faceprint("history", "list", "--kind", "search").stderr


def test_subject_export_from_the_cli(client, faceprint: Invoke, tmp_path: Path) -> None:  # noqa: ANN001
    gallery = ok(faceprint("galleries", "create", "staff")).stdout.strip()
    key = make_key(client, "admin")
    subject_id = enroll(client, key, gallery, "emp-0042", OBAMA / "obama1.jpg")
    out = tmp_path / "emp-0042.json"
    done = ok(faceprint("subjects", "export", "emp-0042", "--gallery", gallery, "--images",
                        "--output", str(out)))  # fmt: skip
    assert "1 faces" in done.stderr
    document = json.loads(out.read_text())
    assert document["subject"]["id"] == subject_id and document["faces"][0]["image_base64"]
    on_stdout = json.loads(
        ok(faceprint("subjects", "export", subject_id, "--gallery", gallery)).stdout
    )
    assert on_stdout["faces"][0]["image_base64"] is None
    audited = json.loads(ok(faceprint("audit", "list", "--action", "subject.export",
                                      "--format", "json")).stdout)  # fmt: skip
    assert len(audited) == 2


def test_verify_and_search_from_the_cli(client, faceprint: Invoke) -> None:  # noqa: ANN001
    gallery = ok(faceprint("galleries", "create", "doors")).stdout.strip()
    key = make_key(client, "admin")
    enroll(client, key, gallery, "emp-7", OBAMA / "obama1.jpg")
    enroll(client, key, gallery, "emp-8", FACES_DIR / "identities" / "biden" / "biden1.jpg")
    probe = str(OBAMA / "obama2.jpg")

    same = json.loads(ok(faceprint("verify", probe, "--gallery", gallery, "--subject", "emp-7",
                                   "--format", "json")).stdout)  # fmt: skip
    assert same["match"] is True and same["similarity"] >= same["threshold"]
    other = ok(faceprint("verify", probe, "--gallery", gallery, "--subject", "emp-8"))
    assert "match: False" in other.stdout
    pair = json.loads(ok(faceprint("verify", probe, "--reference", str(OBAMA / "obama3.jpg"),
                                   "--format", "json")).stdout)  # fmt: skip
    assert pair["match"] is True

    found = json.loads(
        ok(faceprint("search", probe, "--gallery", gallery, "--format", "json")).stdout
    )
    assert [c["external_id"] for c in found["candidates"]] == ["emp-7"]
    assert "emp-7" in ok(faceprint("search", probe, "--gallery", gallery)).stdout
    nobody = faceprint("search", str(FACES_DIR / "identities" / "kit_harington" / "kit1.jpg"),
                       "--gallery", gallery)  # fmt: skip
    assert nobody.exit_code == 0 and "nobody in the gallery" in nobody.stderr

    # Each answer is in the history, asked by the CLI.
    calls = json.loads(
        ok(faceprint("history", "list", "--gallery", gallery, "--format", "json")).stdout
    )
    assert {c["kind"] for c in calls} == {"verify", "search"} and len(calls) == 5
    assert all(c["caller"] == "cli:cli" for c in calls)
    one_line_error(faceprint("verify", probe, "--gallery", gallery, "--subject", "nobody"),
                   "no subject")  # fmt: skip
    usage = faceprint("verify", probe)
    assert usage.exit_code == 2 and "--reference" in usage.stderr
