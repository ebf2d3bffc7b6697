"""Domain errors and their one mapping to RFC 9457 ``application/problem+json``.

Services raise :class:`Problem` subclasses that carry data; routes never build
error responses themselves.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

TYPE_BASE = "https://faceprint.dev/problems/"
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """A failure the client can act on. ``slug`` becomes the stable ``type`` URI."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Not allowed for this role"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Upload too large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Not a supported image"


class Unprocessable(Problem):
    status, slug, title = 422, "unprocessable", "Request could not be processed"


class RateLimited(Problem):
    status, slug, title = 429, "rate-limited", "Too many requests"


class Unavailable(Problem):
    status, slug, title = 503, "unavailable", "Service unavailable"


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
    405: Problem,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


class NoFaceProblem(Unprocessable):
    slug, title = "no-face", "No face found"


class MultipleFacesProblem(Unprocessable):
    slug, title = "multiple-faces", "More than one face"


class LowQualityProblem(Unprocessable):
    slug, title = "low-quality", "Face quality too low"


class CorruptImageProblem(Problem):
    status, slug, title = 400, "corrupt-image", "Image could not be decoded"


class ModelUnavailableProblem(Unavailable):
    slug, title = "model-unavailable", "Model unavailable"


def from_pipeline_error(exc: Exception) -> Problem:
    """The one mapping from face-pipeline failures to problems."""
    from indexing import errors

    detail = getattr(exc, "detail", str(exc))
    if isinstance(exc, errors.ImageTooLarge):
        return PayloadTooLarge(detail)
    if isinstance(exc, errors.UnsupportedImage):
        return UnsupportedMediaType(detail)
    if isinstance(exc, errors.CorruptImage):
        return CorruptImageProblem(detail)
    if isinstance(exc, errors.NoFace):
        return NoFaceProblem(detail)
    if isinstance(exc, errors.MultipleFaces):
        return MultipleFacesProblem(detail, faces=exc.count)
    if isinstance(exc, errors.LowQuality):
        return LowQualityProblem(detail, problems=exc.problems)
    if isinstance(exc, errors.ModelUnavailable):
        return ModelUnavailableProblem(detail, model_id=exc.model_id)
    return Unprocessable(detail)


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
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        problem = Unprocessable("the request is malformed", errors=errors)
        problem.slug = "validation-error"
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cls = _HTTP_SLUGS.get(exc.status_code, Problem)
        problem = cls(str(exc.detail))
        problem.status = exc.status_code
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        problem = Problem("an internal error occurred; it has been logged")
        problem.status, problem.slug, problem.title = 500, "internal", "Internal error"
        return problem_response(problem, request)
