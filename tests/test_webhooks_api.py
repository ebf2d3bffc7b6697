"""Webhook endpoints over the real API: the secret shown once, gallery scope, URL
safety, rotation (both secrets sign), the Standard Webhooks signature checked with the
reference ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from service.domain.webhooks import signing
from service.domain.webhooks.targets import Policy, UnsafeWebhookUrl, check_url, resolve
from tests.conftest import make_key
from tests.webhook_receiver import Receiver

LOCAL = {"webhook_allow_http": True, "webhook_allow_private": True, "webhook_poll_s": 0.1}


def test_signature_is_the_standard_one() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = b'{"type":"verification.completed","data":{"match":true}}'
    ts = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(ts),
        "webhook-signature": signing.signature_header([secret], "msg_1", ts, body),
    }
    assert Verifier(secret).verify(body, headers)["data"] == {"match": True}
    with pytest.raises(WebhookVerificationError):
        Verifier(signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(body + b" ", headers)
    key = b"k" * 32
    assert signing.decrypt(key, signing.encrypt(key, secret)) == secret


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/h", "https"),
        ("ftp://example.com/h", "https"),
        ("https://user:pw@example.com/h", "credentials"),
        ("https://127.0.0.1/h", "loopback"),
        ("https://localhost:8443/h", "loopback"),
        ("https://10.1.2.3/h", "private"),
        ("https://192.168.0.10/h", "private"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://[::1]/h", "loopback"),
        ("https://[::ffff:127.0.0.1]/h", "loopback"),
        ("https://100.100.100.200/h", "metadata"),
        ("https://no-such-host.invalid/h", "resolve"),
    ],
)
def test_unsafe_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match=why):
        resolve(url, Policy())


def test_the_settings_open_http_and_private_targets() -> None:
    assert check_url("http://127.0.0.1:9/h", Policy(allow_http=True)) == "127.0.0.1"
    target = resolve("http://127.0.0.1:9/h", Policy(allow_http=True, allow_private=True))
    assert target.pinned_url() == "http://127.0.0.1:9/h"
    with pytest.raises(UnsafeWebhookUrl, match="credentials"):
        resolve("http://a:b@127.0.0.1/h", Policy(allow_http=True, allow_private=True))


def _gallery(client: Any, headers: dict[str, str], name: str) -> str:
    made = client.post("/v1/galleries", json={"name": name}, headers=headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_create_list_update_delete_with_gallery_scope(make_client: Any) -> None:
    client = make_client(**LOCAL)
    admin = {"X-API-Key": make_key(client, "admin")}
    mine, theirs = _gallery(client, admin, "mine"), _gallery(client, admin, "theirs")
    scoped = {"X-API-Key": make_key(client, "operator", [mine])}
    reader = {"X-API-Key": make_key(client, "client")}
    url = "http://127.0.0.1:9/hooks"

    made = client.post(
        "/v1/webhooks", json={"url": url, "events": ["search.completed"]}, headers=scoped
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"].startswith("whsec_") and body["galleries"] == [mine]
    hook = body["id"]
    shown = client.get(f"/v1/webhooks/{hook}", headers=scoped).json()
    assert "secret" not in shown and shown["events"] == ["search.completed"]
    with client.app.state.container.engine.connect() as conn:
        from sqlalchemy import text

        stored = conn.execute(
            text("SELECT secret_encrypted FROM webhooks WHERE id = :id"), {"id": hook}
        ).scalar_one()
    assert body["secret"].encode() not in bytes(stored)  # encrypted at rest

    # A scoped key cannot reach another gallery, nor see an unscoped endpoint.
    other = client.post(
        "/v1/webhooks",
        json={"url": url, "events": ["search.completed"], "galleries": [theirs]},
        headers=scoped,
    )
    assert other.status_code == 404, other.text
    everything = client.post(
        "/v1/webhooks", json={"url": url, "events": ["gallery.deleted"]}, headers=admin
    ).json()
    listed = client.get("/v1/webhooks", headers=scoped).json()["items"]
    assert [w["id"] for w in listed] == [hook]
    assert client.get(f"/v1/webhooks/{everything['id']}", headers=scoped).status_code == 404
    assert len(client.get("/v1/webhooks", headers=admin).json()["items"]) == 2
    assert client.get("/v1/webhooks", headers=reader).status_code == 403

    bad = client.post("/v1/webhooks", json={"url": url, "events": ["nope.happened"]}, headers=admin)
    assert bad.status_code == 422 and "nope.happened" in bad.json()["detail"]
    creds = client.post(
        "/v1/webhooks", json={"url": "http://u:p@127.0.0.1/", "events": ["search.completed"]},
        headers=admin,
    )  # fmt: skip
    assert creds.status_code == 422
    assert creds.json()["type"].endswith("/unsafe-webhook-url")

    changed = client.patch(
        f"/v1/webhooks/{hook}",
        json={"events": ["verification.completed", "search.completed"], "active": False},
        headers=scoped,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["active"] is False
    assert changed.json()["events"] == ["search.completed", "verification.completed"]
    assert client.delete(f"/v1/webhooks/{hook}", headers=scoped).status_code == 204
    assert client.get(f"/v1/webhooks/{hook}", headers=scoped).status_code == 404
    missing = client.get(f"/v1/webhooks/{uuid.uuid4()}/deliveries", headers=admin)
    assert missing.status_code == 404


def test_https_and_public_targets_are_the_default(client: Any, admin_key: str) -> None:
    headers = {"X-API-Key": admin_key}
    plain = client.post(
        "/v1/webhooks", json={"url": "http://example.com/h", "events": ["search.completed"]},
        headers=headers,
    )  # fmt: skip
    assert plain.status_code == 422 and "https" in plain.json()["detail"]
    local = client.post(
        "/v1/webhooks", json={"url": "https://127.0.0.1/h", "events": ["search.completed"]},
        headers=headers,
    )  # fmt: skip
    assert local.status_code == 422 and "loopback" in local.json()["detail"]


def test_rotated_secret_signs_with_old_and_new(make_client: Any) -> None:
    client = make_client(**LOCAL)
    admin = {"X-API-Key": make_key(client, "admin")}
    receiver = Receiver()
    try:
        made = client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["search.completed"]},
            headers=admin,
        ).json()  # fmt: skip
        rotated = client.post(f"/v1/webhooks/{made['id']}/rotate-secret", headers=admin)
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new != made["secret"]
        shown = client.get(f"/v1/webhooks/{made['id']}", headers=admin).json()
        assert shown["previous_secret_valid_until"] is not None
        sent = client.post(f"/v1/webhooks/{made['id']}/test", headers=admin)
        assert sent.status_code == 202, sent.text
        got = receiver.wait_for(1)[0]
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        for secret in (made["secret"], new):
            assert Verifier(secret).verify(got.body, got.headers)["type"] == "webhook.test"
    finally:
        receiver.close()


def test_the_webhooks_cli(make_client: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from service.cli.main import app
    from service.core.settings import get_settings

    client = make_client(**{**LOCAL, "webhook_dispatchers": 0})
    admin = {"X-API-Key": make_key(client, "admin")}
    hook = client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["search.completed"]},
        headers=admin,
    ).json()  # fmt: skip
    sent = client.post(f"/v1/webhooks/{hook['id']}/test", headers=admin).json()
    monkeypatch.setenv("FACEPRINT_DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        listed = runner.invoke(app, ["webhooks", "list"])
        assert listed.exit_code == 0 and hook["id"] in listed.output, listed.output
        shown = runner.invoke(app, ["webhooks", "deliveries", hook["id"], "--status", "pending"])
        assert shown.exit_code == 0 and sent["delivery_id"] in shown.output, shown.output
        again = runner.invoke(app, ["webhooks", "redeliver", hook["id"], sent["delivery_id"]])
        assert again.exit_code == 0, again.output
        missing = runner.invoke(app, ["webhooks", "deliveries", str(uuid.uuid4())])
        assert missing.exit_code == 1 and "no webhook" in missing.output
        assert "Traceback" not in missing.output
        for command in ("list", "deliveries", "redeliver", "dispatch"):
            helped = runner.invoke(app, ["webhooks", command, "--help"])
            assert helped.exit_code == 0 and "Usage" in helped.output
    finally:
        get_settings.cache_clear()


def test_the_readme_receiver_verifies_our_signatures() -> None:
    """The README's standard-library verifier, run as written."""
    import re

    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "def valid" in b)
    scope: dict[str, Any] = {}
    exec(block, scope)  # noqa: S102 - our own README
    secret, other = signing.new_secret(), signing.new_secret()
    body, ts = b'{"type":"webhook.test"}', int(time.time())
    headers = {"webhook-id": "msg_r", "webhook-timestamp": str(ts)}
    headers["webhook-signature"] = signing.signature_header([other, secret], "msg_r", ts, body)
    assert scope["valid"](secret, body, headers)
    assert not scope["valid"](signing.new_secret(), body, headers)
