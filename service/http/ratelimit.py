"""Rate limits as router dependencies: per principal on ``/v1``, per client IP on the
unauthenticated ``/v1/auth/*`` routes (the algorithm is in ``service.core.ratelimit``)."""

from __future__ import annotations

from fastapi import Depends, Request, Response

from service.http.deps import ContainerDep, CurrentPrincipal


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def limit_principal(
    response: Response, principal: CurrentPrincipal, container: ContainerDep
) -> None:
    limiter = container.rate_limiter
    key = f"{principal.kind}:{principal.id}"
    limit = principal.rate_limit if principal.rate_limit is not None else limiter.per_minute
    response.headers.update(limiter.check(key, limit))


def limit_client_ip(request: Request, response: Response, container: ContainerDep) -> None:
    limiter = container.rate_limiter
    response.headers.update(limiter.check(f"ip:{client_ip(request)}", limiter.auth_per_minute))


PrincipalRateLimit = Depends(limit_principal)
ClientIpRateLimit = Depends(limit_client_ip)
