"""Hostile access tokens, each signed or shaped the way an attacker would: every one is a
401 problem, and the genuine token built from the same claims is accepted (so each
rejection is the token's fault, not the test's)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.domain.auth.tokens import key_id
from tests.test_auth import add_user, assert_problem, bearer, login


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_hostile_tokens_are_401(client) -> None:  # noqa: ANN001
    user_id = add_user(client, "ada@example.org", role="admin")
    pair = login(client, "ada@example.org")
    secret = client.app.state.container.secrets.jwt_secret
    kid = key_id(secret)
    now = datetime.now(UTC)
    claims = {
        "iss": "faceprint",
        "sub": str(user_id),
        "role": "admin",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": uuid.uuid4().hex,
    }

    def signed(extra: dict | None = None, **kwargs: object) -> str:
        return jwt.encode(claims | (extra or {}), secret, headers={"kid": kid}, **kwargs)

    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = attacker.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forever = _b64({**_plain(claims), "iat": 0, "exp": 2**40})
    hostile = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{forever}.",
        "alg None, signed empty": f"{_b64({'alg': 'None', 'kid': kid})}.{forever}.e30",
        "RS256 with the attacker's key": jwt.encode(
            claims, attacker, algorithm="RS256", headers={"kid": kid}
        ),
        # HS/RS confusion: an HMAC keyed with a public key, as a verifier that takes the
        # algorithm from the header would check it.
        "HS256 keyed with a public key": _hmac_with(claims, public_pem, kid),
        "expired": signed({"iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)}),
        "not yet valid": signed({"nbf": now + timedelta(hours=1)}),
        "issued for another audience": signed({"aud": "some-other-service"}),
        "another issuer": signed({"iss": "evil"}),
        "no expiry": jwt.encode(
            {k: v for k, v in claims.items() if k != "exp"}, secret, headers={"kid": kid}
        ),
        "tampered payload": _tamper(signed(), {"sub": str(uuid.uuid4())}),
        "refresh token as access": pair["refresh_token"],
        "kid pointing nowhere": jwt.encode(claims, secret, headers={"kid": "../../etc/passwd"}),
        "huge token": "a." + "b" * 100_000 + ".c",
    }
    for name, token in hostile.items():
        response = client.get("/v1/api-keys", headers=bearer(token))
        assert response.status_code == 401, name
        assert_problem(response, 401, "unauthorized")
    assert client.get("/v1/api-keys", headers=bearer(signed())).status_code == 200
    # And the other way round: an access token is no refresh token.
    response = client.post("/v1/auth/refresh", json={"refresh_token": pair["access_token"]})
    assert response.status_code in (401, 422), response.text
    assert response.status_code != 200


def _hmac_with(claims: dict, key: bytes, kid: str) -> str:
    import hashlib
    import hmac

    header = _b64({"alg": "HS256", "typ": "JWT", "kid": kid})
    body = _b64(
        {k: (int(v.timestamp()) if isinstance(v, datetime) else v) for k, v in claims.items()}
    )
    mac = hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _plain(claims: dict) -> dict:
    return {k: int(v.timestamp()) if isinstance(v, datetime) else v for k, v in claims.items()}


def _tamper(token: str, change: dict) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{_b64(claims | change)}.{signature}"
