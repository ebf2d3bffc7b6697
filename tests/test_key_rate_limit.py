"""Rate limits per API key: set with `faceprint keys create --rate-limit N` (or the API),
stored on the key; keys without one get the default, which is above the 1,000+
verifications a minute one integrating backend sends through one key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from service.core.settings import Settings


@pytest.fixture
def faceprint(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:  # noqa: ANN001
    from service.cli.main import app
    from service.core.settings import get_settings

    monkeypatch.setenv("FACEPRINT_DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, list(args))
    get_settings.cache_clear()


def test_the_default_limit_is_above_one_backends_throughput(tmp_path) -> None:  # noqa: ANN001
    assert Settings(data_dir=tmp_path).rate_limit_per_minute > 1000


def test_cli_key_with_its_own_limit(client, faceprint) -> None:  # noqa: ANN001
    made = faceprint("keys", "create", "--name", "slow", "--role", "client", "--rate-limit", "3")
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    default = faceprint("keys", "create", "--name", "fast", "--role", "client")
    fast = default.stdout.strip().splitlines()[-1]
    answers = [client.get("/v1/verifications", headers={"X-API-Key": key}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    assert answers[3].json()["type"].endswith("/rate-limited")
    other = client.get("/v1/verifications", headers={"X-API-Key": fast})
    assert other.status_code == 200
    assert other.headers["RateLimit-Limit"] == str(
        client.app.state.container.settings.rate_limit_per_minute
    )


def test_api_key_limits_stay_within_the_creators(client, admin_key: str) -> None:  # noqa: ANN001
    admin = {"X-API-Key": admin_key}
    made = client.post(
        "/v1/api-keys", json={"name": "capped", "role": "admin", "rate_limit_per_minute": 10},
        headers=admin,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["rate_limit_per_minute"] == 10
    capped = {"X-API-Key": made.json()["key"]}
    wider = client.post(
        "/v1/api-keys", json={"name": "wider", "role": "client", "rate_limit_per_minute": 20},
        headers=capped,
    )  # fmt: skip
    assert wider.status_code == 403, wider.text
    inherited = client.post("/v1/api-keys", json={"name": "inh", "role": "client"}, headers=capped)
    assert inherited.status_code == 201 and inherited.json()["rate_limit_per_minute"] == 10
    listed = client.get("/v1/api-keys", headers=admin).json()["items"]
    assert {i["name"]: i["rate_limit_per_minute"] for i in listed}["capped"] == 10
