"""``faceprint users …``: the CLI that makes the first admin (there are no default users).

One test runs the real ``faceprint`` process end to end (stdin password); the rest use
Typer's runner in this process, which is the same code without paying for an interpreter
start per command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "a long enough secret phrase"
Invoke = Callable[..., Result]


def login(client: TestClient, email: str, password: str = PASSWORD):  # noqa: ANN201
    return client.post("/v1/auth/token", json={"email": email, "password": password})


@pytest.fixture
def faceprint(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:  # noqa: ANN001
    """Run ``faceprint ARGS`` in-process against this test's database."""
    from service.cli.main import app
    from service.core.settings import get_settings

    monkeypatch.setenv("FACEPRINT_DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()

    def invoke(*args: str, stdin: str = "") -> Result:
        return CliRunner().invoke(app, list(args), input=stdin)

    yield invoke
    get_settings.cache_clear()


def test_create_with_password_stdin_in_a_real_process(client, settings) -> None:  # noqa: ANN001
    env = os.environ | {
        "FACEPRINT_DATABASE_URL": settings.database_url.get_secret_value(),
        "FACEPRINT_DATA_DIR": str(settings.data_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "users", "create", "--email", "Root@Example.org",
         "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert uuid.UUID(done.stdout.strip())  # only the id on stdout
    assert PASSWORD not in done.stdout + done.stderr
    token = login(client, "root@example.org").json()["access_token"]
    listed = client.get("/v1/api-keys", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200


def test_duplicate_weak_and_disabled(client, faceprint: Invoke) -> None:  # noqa: ANN001
    create = ("users", "create", "--email", "op@example.org", "--role", "operator")
    assert faceprint(*create, "--password-stdin", stdin=PASSWORD).exit_code == 0
    again = faceprint(*create, "--password-stdin", stdin=PASSWORD)
    assert again.exit_code == 1 and "already exists" in again.stderr
    weak = faceprint(
        "users", "create", "--email", "x@example.org", "--role", "client",
        "--password-stdin", stdin="short\n",
    )  # fmt: skip
    assert weak.exit_code == 1 and "at least 8" in weak.stderr
    bad_email = faceprint(
        "users", "create", "--email", "not-an-email", "--role", "client",
        "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    assert bad_email.exit_code == 1 and "not an email" in bad_email.stderr

    refresh_token = login(client, "op@example.org").json()["refresh_token"]
    disabled = faceprint("users", "disable", "--email", "op@example.org")
    assert disabled.exit_code == 0 and "1 refresh tokens revoked" in disabled.stderr
    assert login(client, "op@example.org").status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": refresh_token}).status_code == 401
    assert faceprint("users", "enable", "--email", "op@example.org").exit_code == 0
    assert login(client, "op@example.org").status_code == 200
    missing = faceprint("users", "disable", "--email", "nobody@example.org")
    assert missing.exit_code == 1 and "no user" in missing.stderr


def test_prompted_password_is_hidden_and_confirmed(client, faceprint: Invoke) -> None:  # noqa: ANN001
    args = ("users", "create", "--email", "ada@example.org", "--role", "client")
    mismatch = faceprint(*args, stdin=f"{PASSWORD}\nsomething else\n")
    assert mismatch.exit_code != 0
    result = faceprint(*args, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Password" in result.output and PASSWORD not in result.output
    assert login(client, "ada@example.org").status_code == 200


def test_help_explains_the_commands(faceprint: Invoke) -> None:
    done = faceprint("users", "create", "--help")
    assert done.exit_code == 0
    assert "--password-stdin" in done.stdout and "--email" in done.stdout
    assert "users" in faceprint("--help").stdout
    assert faceprint("users", "disable", "--help").exit_code == 0
