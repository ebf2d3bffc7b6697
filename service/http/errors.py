"""The one mapping from domain errors (and the framework's own) to RFC 9457
``application/problem+json`` responses."""

from __future__ import annotations

import logging

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.core.problems import (
    MEDIA_TYPE,
    DatabaseUnavailable,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Problem,
    Unauthorized,
    UnsupportedMediaType,
    from_pipeline_error,
    validation_problem,
)

log = logging.getLogger(__name__)

DB_RETRY_AFTER_S = 2


def database_unreachable(exc: BaseException) -> bool:
    """A lost or refused database connection (not a bad query): the pool's timeout, a
    connection invalidated mid-request, or the driver's OperationalError."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError)
    return False


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(problem, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer, ApiKey header="X-API-Key"'
    retry_after = problem.extra.get("retry_after")
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    return JSONResponse(
        problem.body(instance=request.url.path),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


_HTTP_SLUGS = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def install_problem_handlers(app: FastAPI) -> None:
    from indexing.errors import FaceError, ImageError, ModelUnavailable

    @app.exception_handler(ImageError)
    @app.exception_handler(FaceError)
    @app.exception_handler(ModelUnavailable)
    async def _pipeline(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(from_pipeline_error(exc), request)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(exc.errors()), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        limit = getattr(exc, "limit", None)  # a body cut off at the cap (http.bodylimit)
        if exc.status_code == 413 and limit is not None:
            return problem_response(PayloadTooLarge(str(exc.detail), limit=limit), request)
        cls = _HTTP_SLUGS.get(exc.status_code, Problem)
        problem = cls(str(exc.detail))
        problem.status = exc.status_code
        response = problem_response(problem, request)
        if exc.headers:
            # Starlette's 405 names the allowed methods in Allow.
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(sqlalchemy.exc.DBAPIError)
    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if not database_unreachable(exc):
            return await _unexpected(request, exc)
        # The database went away (crash, restart, failover): the client may retry; nothing
        # this request wrote was committed.
        log.warning("database unavailable: %s", type(exc).__name__)
        problem = DatabaseUnavailable(
            "the database is unavailable; retry shortly", retry_after=DB_RETRY_AFTER_S
        )
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        problem = Problem("an internal error occurred; it has been logged")
        problem.status, problem.slug, problem.title = 500, "internal", "Internal error"
        return problem_response(problem, request)
