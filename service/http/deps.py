"""Request dependencies as typed aliases: the app's container, the database session
and the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.orm import Session

from service.core.principal import Principal, Role
from service.core.problems import Forbidden, Unauthorized
from service.domain.auth.api_keys import AUTH_WROTE, KEY_PREFIX, authenticate_api_key
from service.domain.components import Components
from service.domain.liveness.runtime import LivenessRuntime
from service.http.container import Container


async def get_container(request: Request) -> Container:  # async: no thread hop
    return request.app.state.container  # type: ignore[no-any-return]


ContainerDep = Annotated[Container, Depends(get_container)]


def get_session(container: ContainerDep) -> Iterator[Session]:
    session: Session = container.sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": commit (or roll back) when the route returns, before the response is
# sent. FastAPI's default ends a yield dependency after the response has gone out, so a
# client could see 201/204 for a write not yet committed (or then rolled back), and a
# request right after it would not read it.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_read_session(container: ContainerDep) -> Iterator[Session]:
    """A session on the read replica (the primary when none is configured), for views
    that may lag a little behind the last write. It never commits: a standby refuses
    writes, and these views make none."""
    session: Session = container.read_sessionmaker()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]


# Declared for the OpenAPI docs ("Authorize" button); get_principal reads the headers.
_bearer_doc = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)
_api_key_doc = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_principal(
    request: Request,
    session: SessionDep,
    container: ContainerDep,
    _bearer: Annotated[str | None, Depends(_bearer_doc)] = None,
    _api_key: Annotated[str | None, Depends(_api_key_doc)] = None,
) -> Principal:
    api_key = request.headers.get("x-api-key")
    principal: Principal | None = None
    if api_key:
        principal = authenticate_api_key(session, api_key)
        if principal is None:
            raise Unauthorized("the API key is unknown or revoked")
    else:
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.startswith(KEY_PREFIX):
            raise Unauthorized(
                "that is an API key: send it as X-API-Key: <key>; Authorization: Bearer takes"
                " an access token from POST /v1/auth/token"
            )
        if scheme.lower() == "bearer" and token:
            principal = container.auth.verify_access_token(session, token)
            if principal is None:
                raise Unauthorized("the access token is invalid or expired")
        if principal is None:
            raise Unauthorized("send an X-API-Key header or an Authorization: Bearer token")
    request.state.principal = principal
    # Commit last_used_at now: a later failure in the route must not undo it. Most
    # requests wrote nothing, and skip the round trip.
    if session.info.pop(AUTH_WROTE, False):
        session.commit()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits callers of ``role`` or above."""

    async def check(principal: CurrentPrincipal) -> Principal:  # async: no thread hop
        if not principal.can_act_as(role):
            raise Forbidden(f"this needs the {role.value} role; the caller is {principal.role}")
        return principal

    return check


AdminPrincipal = Annotated[Principal, Depends(require(Role.admin))]
OperatorPrincipal = Annotated[Principal, Depends(require(Role.operator))]
ClientPrincipal = Annotated[Principal, Depends(require(Role.client))]


async def get_components(container: ContainerDep) -> Components:
    return container.components


ComponentsDep = Annotated[Components, Depends(get_components)]


async def get_liveness(container: ContainerDep) -> LivenessRuntime:
    return container.liveness


LivenessDep = Annotated[LivenessRuntime, Depends(get_liveness)]
