"""Login, access tokens and refresh tokens, over HTTP against the real app and Postgres."""

from __future__ import annotations

import base64
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update

from service.core.principal import Role
from service.db.models import AuditLog, RefreshToken, User, Verification
from service.domain.auth import users
from service.domain.auth.tokens import key_id
from tests.conftest import ClientFactory

PASSWORD = "correct horse battery staple"


def add_user(
    client: TestClient, email: str, role: str = "admin", password: str = PASSWORD
) -> uuid.UUID:
    with client.app.state.container.sessionmaker() as session:
        user = users.create_user(
            session,
            passwords=client.app.state.container.auth.passwords,
            email=email,
            password=password,
            role=Role(role),
            actor=None,
        )
        session.commit()
        return user.id


def login(client: TestClient, email: str, password: str = PASSWORD) -> dict:
    response = client.post("/v1/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response, status: int, slug: str) -> None:  # noqa: ANN001
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/" + slug)


def test_login_returns_a_working_token_pair(client) -> None:  # noqa: ANN001
    add_user(client, "Ada@Example.org")
    response = client.post(
        "/v1/auth/token", json={"email": "ada@example.org", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == client.app.state.container.settings.access_token_ttl_s
    assert client.get("/v1/api-keys", headers=bearer(body["access_token"])).status_code == 200


def test_access_token_claims_and_kid(client) -> None:  # noqa: ANN001
    user_id = add_user(client, "ada@example.org", role="operator")
    token = login(client, "ada@example.org")["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    secret = client.app.state.container.secrets.jwt_secret
    assert header["kid"] == key_id(secret) and secret not in header["kid"]
    claims = jwt.decode(token, secret, algorithms=["HS256"], issuer="faceprint")
    assert claims["sub"] == str(user_id) and claims["role"] == "operator"
    assert claims["exp"] - claims["iat"] == client.app.state.container.settings.access_token_ttl_s
    assert len(claims["jti"]) == 32
    assert login(client, "ada@example.org")["access_token"] != token


def test_oauth2_password_form_is_accepted(client) -> None:  # noqa: ANN001
    add_user(client, "ada@example.org")
    response = client.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": "ada@example.org", "password": PASSWORD},
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"
    paths = client.get("/openapi.json").json()["paths"]
    content = paths["/v1/auth/token"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(content)


def test_wrong_password_and_unknown_email_are_the_same_401(client) -> None:  # noqa: ANN001
    add_user(client, "ada@example.org")
    wrong = client.post("/v1/auth/token", json={"email": "ada@example.org", "password": "nope"})
    unknown = client.post("/v1/auth/token", json={"email": "bob@example.org", "password": "x"})
    for response in (wrong, unknown):
        assert_problem(response, 401, "unauthorized")
        assert "refresh_token" not in response.json()
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_unknown_email_costs_a_password_check(client) -> None:  # noqa: ANN001
    """Timing must not reveal which emails exist. Loose bound on purpose (shared CPUs):
    without the dummy hash an unknown email answers >20x faster than a wrong password."""
    add_user(client, "ada@example.org")

    def timed(email: str) -> float:
        started = time.perf_counter()
        client.post("/v1/auth/token", json={"email": email, "password": "wrong password"})
        return time.perf_counter() - started

    known = statistics.median(timed("ada@example.org") for _ in range(5))
    unknown = statistics.median(timed(f"nobody{i}@example.org") for i in range(5))
    assert unknown > 0.4 * known, (unknown, known)


def test_malformed_login_is_422_and_wrong_media_type_415(client) -> None:  # noqa: ANN001
    assert_problem(
        client.post("/v1/auth/token", json={"email": "ada@example.org"}), 422, "validation-error"
    )
    assert_problem(
        client.post(
            "/v1/auth/token", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "validation-error",
    )
    assert_problem(
        client.post("/v1/auth/token", content=b"x", headers={"content-type": "text/plain"}),
        415,
        "unsupported-media-type",
    )
    assert_problem(client.post("/v1/auth/refresh", json={}), 422, "validation-error")


def test_expired_access_token_is_401(make_client: ClientFactory) -> None:
    client = make_client(access_token_ttl_s=1)
    add_user(client, "ada@example.org")
    token = login(client, "ada@example.org")["access_token"]
    assert client.get("/v1/api-keys", headers=bearer(token)).status_code == 200
    time.sleep(2.1)
    assert_problem(client.get("/v1/api-keys", headers=bearer(token)), 401, "unauthorized")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_forged_and_tampered_tokens_are_401(client) -> None:  # noqa: ANN001
    user_id = add_user(client, "ada@example.org", role="client")
    token = login(client, "ada@example.org")["access_token"]
    header_b64, payload_b64, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    secret = client.app.state.container.secrets.jwt_secret
    kid = key_id(secret)

    escalated = _b64(payload | {"role": "admin"})
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    now = datetime.now(UTC)
    claims = {
        "iss": "faceprint",
        "sub": str(user_id),
        "role": "admin",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": uuid.uuid4().hex,
    }
    forged = [
        f"{header_b64}.{escalated}.{signature}",  # payload changed, old signature
        f"{header_b64}.{payload_b64}.{flipped}",  # signature changed
        f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{escalated}.",  # alg=none
        jwt.encode(claims, "another-secret-of-at-least-32-characters!", headers={"kid": kid}),
        jwt.encode(claims, secret),  # right key, no kid
        jwt.encode(claims, secret, headers={"kid": "0" * 16}),  # unknown kid
        jwt.encode(claims, secret, algorithm="HS512", headers={"kid": kid}),  # not HS256
        jwt.encode({k: v for k, v in claims.items() if k != "jti"}, secret, headers={"kid": kid}),
        jwt.encode(claims | {"sub": str(uuid.uuid4())}, secret, headers={"kid": kid}),  # no user
        jwt.encode(claims | {"iss": "someone-else"}, secret, headers={"kid": kid}),
        "not-a-jwt",
    ]
    for candidate in forged:
        response = client.get("/v1/api-keys", headers=bearer(candidate))
        assert_problem(response, 401, "unauthorized")
    # The same claims, correctly signed, do authenticate: the rejections above are real.
    genuine = jwt.encode(claims, secret, headers={"kid": kid})
    assert client.get("/v1/api-keys", headers=bearer(genuine)).status_code == 403


def test_roles_are_enforced_and_follow_the_user_row(client) -> None:  # noqa: ANN001
    add_user(client, "admin@example.org", role="admin")
    operator_id = add_user(client, "op@example.org", role="operator")
    admin_token = login(client, "admin@example.org")["access_token"]
    operator_token = login(client, "op@example.org")["access_token"]
    assert client.get("/v1/api-keys", headers=bearer(admin_token)).status_code == 200
    assert_problem(client.get("/v1/api-keys", headers=bearer(operator_token)), 403, "forbidden")
    # A promotion (or demotion) takes effect on the next request, not at token expiry.
    with client.app.state.container.sessionmaker() as session:
        session.execute(update(User).where(User.id == operator_id).values(role="admin"))
        session.commit()
    assert client.get("/v1/api-keys", headers=bearer(operator_token)).status_code == 200


def test_disabled_user_cannot_log_in_use_or_refresh(client) -> None:  # noqa: ANN001
    add_user(client, "ada@example.org")
    pair = login(client, "ada@example.org")
    with client.app.state.container.sessionmaker() as session:
        users.set_disabled(session, email="ADA@example.org", disabled=True, actor=None)
        session.commit()
    assert_problem(
        client.get("/v1/api-keys", headers=bearer(pair["access_token"])), 401, "unauthorized"
    )
    response = client.post(
        "/v1/auth/token", json={"email": "ada@example.org", "password": PASSWORD}
    )
    assert_problem(response, 401, "unauthorized")
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert_problem(refreshed, 401, "unauthorized")


def test_refresh_rotates_and_stores_only_hashes(client) -> None:  # noqa: ANN001
    add_user(client, "ada@example.org")
    first = login(client, "ada@example.org")
    response = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get("/v1/api-keys", headers=bearer(second["access_token"])).status_code == 200
    third = client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200
    with client.app.state.container.sessionmaker() as session:
        rows = session.scalars(select(RefreshToken)).all()
    assert len(rows) == 3 and len({r.family_id for r in rows}) == 1
    stored = {r.token_hash for r in rows}
    for plaintext in (first["refresh_token"], second["refresh_token"]):
        assert plaintext not in stored
    assert sum(r.used_at is None for r in rows) == 1


def test_reusing_a_refresh_token_revokes_its_family(client) -> None:  # noqa: ANN001
    add_user(client, "ada@example.org")
    stolen = login(client, "ada@example.org")["refresh_token"]
    other_session = login(client, "ada@example.org")["refresh_token"]
    successor = client.post("/v1/auth/refresh", json={"refresh_token": stolen}).json()
    reuse = client.post("/v1/auth/refresh", json={"refresh_token": stolen})
    assert_problem(reuse, 401, "unauthorized")
    # The legitimate holder's successor died with the family...
    after = client.post("/v1/auth/refresh", json={"refresh_token": successor["refresh_token"]})
    assert_problem(after, 401, "unauthorized")
    # ...but another login (another family) is untouched.
    assert client.post("/v1/auth/refresh", json={"refresh_token": other_session}).status_code == 200
    with client.app.state.container.sessionmaker() as session:
        assert "auth.refresh_reuse" in session.scalars(select(AuditLog.action)).all()


def test_expired_unknown_or_garbage_refresh_tokens_are_401(client) -> None:  # noqa: ANN001
    add_user(client, "ada@example.org")
    token = login(client, "ada@example.org")["refresh_token"]
    with client.app.state.container.sessionmaker() as session:
        session.execute(
            update(RefreshToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()
    for candidate in (token, "fprt_" + "A" * 43, "garbage", "x" * 200):
        response = client.post("/v1/auth/refresh", json={"refresh_token": candidate})
        assert_problem(response, 401, "unauthorized")


def test_no_secrets_in_logs(client, caplog) -> None:  # noqa: ANN001
    from service.core.logging import JsonFormatter

    add_user(client, "ada@example.org")
    caplog.set_level("DEBUG")
    wrong = "my-wrong-password-123"
    client.post("/v1/auth/token", json={"email": "ada@example.org", "password": wrong})
    client.post("/v1/auth/token", json={"email": PASSWORD, "password": PASSWORD})
    pair = login(client, "ada@example.org")
    client.get("/v1/api-keys", headers=bearer(pair["access_token"]))
    renewed = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
    client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})  # reuse
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(record) for record in caplog.records)
    assert "login" in text and "refresh token reused" in text  # the logs were captured
    secrets = [PASSWORD, wrong, pair["access_token"], pair["refresh_token"]]
    secrets += [renewed["access_token"], renewed["refresh_token"]]
    for secret in secrets:
        assert secret not in text


def test_signing_key_rotation_by_kid(make_client: ClientFactory) -> None:
    old_secret, new_secret = "o" * 40, "n" * 40
    old_app = make_client(jwt_secret=SecretStr(old_secret))
    add_user(old_app, "ada@example.org")
    old_token = login(old_app, "ada@example.org")["access_token"]
    rotated = make_client(
        jwt_secret=SecretStr(new_secret), jwt_previous_secrets=[SecretStr(old_secret)]
    )
    assert rotated.get("/v1/api-keys", headers=bearer(old_token)).status_code == 200
    new_token = login(rotated, "ada@example.org")["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == key_id(new_secret)
    retired = make_client(jwt_secret=SecretStr(new_secret))
    assert_problem(retired.get("/v1/api-keys", headers=bearer(old_token)), 401, "unauthorized")
    assert retired.get("/v1/api-keys", headers=bearer(new_token)).status_code == 200


def test_client_users_have_no_gallery_grants(client) -> None:  # noqa: ANN001
    """Users carry no gallery grants (API keys do), so a client user is denied by default:
    not even its own calls in a gallery are visible to it."""
    client_id = add_user(client, "door@example.org", role="client")
    add_user(client, "admin@example.org", role="admin")
    with client.app.state.container.sessionmaker() as session:
        session.add(Verification(
            kind="verify", principal_type="user", principal_id=str(client_id),
            gallery_id=uuid.uuid4(),
        ))  # fmt: skip
        session.commit()
    tokens = {
        e: login(client, e)["access_token"] for e in ("door@example.org", "admin@example.org")
    }

    def visible(email: str) -> int:
        response = client.get("/v1/verifications", headers=bearer(tokens[email]))
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    assert visible("admin@example.org") == 1
    assert visible("door@example.org") == 0
    with client.app.state.container.sessionmaker() as session:
        verify = client.app.state.container.auth.verify_access_token
        assert verify(session, tokens["door@example.org"]).gallery_ids == frozenset()
        assert verify(session, tokens["admin@example.org"]).gallery_ids is None
