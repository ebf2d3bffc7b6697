"""POST /v1/auth/token (email + password) and POST /v1/auth/refresh (rotate).

The token endpoint takes JSON ``{"email", "password"}`` or the OAuth2 password-grant
form (``username``, ``password``) that Swagger UI's "Authorize" dialog sends.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, ValidationError

from service.core.problems import UnsupportedMediaType, validation_problem
from service.domain.auth.login import AuthService, TokenPair
from service.http.bodylimit import set_body_limit
from service.http.deps import ContainerDep, SessionDep
from service.http.openapi import problems
from service.http.ratelimit import ClientIpRateLimit

router = APIRouter(prefix="/v1/auth", tags=["auth"], dependencies=[ClientIpRateLimit])


# An email (320) and a password (1024), encoded, with room for form or JSON framing.
_LOGIN_BODY_LIMIT = 16 * 1024


class LoginBody(BaseModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class RefreshBody(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="Single use: each refresh returns a new one.")


_LOGIN_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginBody.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string", "description": "The email."},
                        "password": {"type": "string", "format": "password"},
                    },
                }
            },
        },
    }
}


async def login_body(request: Request) -> LoginBody:
    """Read the credentials from whichever of the two encodings the client used."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # Unauthenticated: the tightest cap of all, enforced while the body streams.
    set_body_limit(request, _LOGIN_BODY_LIMIT)
    try:
        if content_type == "application/json":
            return LoginBody.model_validate_json(await request.body())
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            fields = {"email": form.get("username"), "password": form.get("password")}
            return LoginBody.model_validate(fields)
    except ValidationError as exc:
        raise validation_problem(exc.errors(), "the credentials are missing or malformed") from exc
    raise UnsupportedMediaType("send JSON {email, password} or an OAuth2 form (username, password)")


def _no_store(response: Response, pair: TokenPair) -> TokenResponse:
    # RFC 6749 5.1: responses carrying tokens must not be cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenResponse(
        access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token
    )


def _auth(container: ContainerDep) -> AuthService:
    return container.auth


Auth = Annotated[AuthService, Depends(_auth)]


@router.post(
    "/token",
    response_model=TokenResponse,
    openapi_extra=_LOGIN_BODY_DOC,
    responses=problems(401, 415, 422),
)
def token(
    body: Annotated[LoginBody, Depends(login_body)],
    auth: Auth,
    session: SessionDep,
    response: Response,
) -> TokenResponse:
    """Log in with email and password: a short-lived access JWT and a refresh token."""
    return _no_store(response, auth.login(session, email=body.email, password=body.password))


@router.post("/refresh", response_model=TokenResponse, responses=problems(401))
def refresh(
    body: RefreshBody, auth: Auth, session: SessionDep, response: Response
) -> TokenResponse:
    """Trade a refresh token for a new pair. Each refresh token works once; presenting one
    again revokes every token descended from the same login."""
    return _no_store(response, auth.refresh(session, refresh_token=body.refresh_token))
