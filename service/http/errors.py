"""The one mapping from domain errors (and the framework's own) to RFC 9457
``application/problem+json`` responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.core.problems import (
    MEDIA_TYPE,
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
        cls = _HTTP_SLUGS.get(exc.status_code, Problem)
        problem = cls(str(exc.detail))
        problem.status = exc.status_code
        response = problem_response(problem, request)
        if exc.headers:
            # Starlette's 405 names the allowed methods in Allow.
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        problem = Problem("an internal error occurred; it has been logged")
        problem.status, problem.slug, problem.title = 500, "internal", "Internal error"
        return problem_response(problem, request)
