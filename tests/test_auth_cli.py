"""``faceprint users …``: the CLI that makes the first admin (there are no default users)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "a long enough secret phrase"


def faceprint(settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    env = os.environ | {
        "FACEPRINT_DATABASE_URL": settings.database_url.get_secret_value(),
        "FACEPRINT_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )


def login(client: TestClient, email: str, password: str = PASSWORD):  # noqa: ANN201
    return client.post("/v1/auth/token", json={"email": email, "password": password})


def test_create_with_password_stdin_then_log_in(client, settings) -> None:  # noqa: ANN001
    done = faceprint(
        settings, "users", "create", "--email", "Root@Example.org", "--role", "admin",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert uuid.UUID(done.stdout.strip())  # only the id on stdout
    assert PASSWORD not in done.stdout + done.stderr
    token = login(client, "root@example.org").json()["access_token"]
    listed = client.get("/v1/api-keys", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200


def test_duplicate_weak_and_disabled(client, settings) -> None:  # noqa: ANN001
    create = ("users", "create", "--email", "op@example.org", "--role", "operator")
    assert faceprint(settings, *create, "--password-stdin", stdin=PASSWORD).returncode == 0
    again = faceprint(settings, *create, "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 1 and "already exists" in again.stderr
    weak = faceprint(
        settings, "users", "create", "--email", "x@example.org", "--role", "client",
        "--password-stdin", stdin="short\n",
    )  # fmt: skip
    assert weak.returncode == 1 and "at least 8" in weak.stderr
    bad_email = faceprint(
        settings, "users", "create", "--email", "not-an-email", "--role", "client",
        "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    assert bad_email.returncode == 1 and "not an email" in bad_email.stderr

    refresh_token = login(client, "op@example.org").json()["refresh_token"]
    disabled = faceprint(settings, "users", "disable", "--email", "op@example.org")
    assert disabled.returncode == 0 and "1 refresh tokens revoked" in disabled.stderr
    assert login(client, "op@example.org").status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": refresh_token}).status_code == 401
    assert faceprint(settings, "users", "enable", "--email", "op@example.org").returncode == 0
    assert login(client, "op@example.org").status_code == 200
    missing = faceprint(settings, "users", "disable", "--email", "nobody@example.org")
    assert missing.returncode == 1 and "no user" in missing.stderr


def test_prompted_password_is_hidden_and_confirmed(
    client, settings, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    from service.cli import app
    from service.settings import get_settings

    monkeypatch.setenv("FACEPRINT_DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    try:
        args = ["users", "create", "--email", "ada@example.org", "--role", "client"]
        mismatch = CliRunner().invoke(app, args, input=f"{PASSWORD}\nsomething else\n")
        assert mismatch.exit_code != 0
        result = CliRunner().invoke(app, args, input=f"{PASSWORD}\n{PASSWORD}\n")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "Password" in result.output and PASSWORD not in result.output
    assert login(client, "ada@example.org").status_code == 200


def test_help_explains_the_commands(settings) -> None:  # noqa: ANN001
    done = faceprint(settings, "users", "create", "--help")
    assert done.returncode == 0
    assert "--password-stdin" in done.stdout and "--email" in done.stdout
    assert "users" in faceprint(settings, "--help").stdout
