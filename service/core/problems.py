"""Domain errors, ready for RFC 9457 ``application/problem+json``.

Services raise :class:`Problem` subclasses that carry data; routes never build
error responses themselves. The HTTP rendering lives in ``service.http.errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Upload too large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Not a supported image"


class Unprocessable(Problem):
    status, slug, title = 422, "unprocessable", "Request could not be processed"


class ValidationFailed(Unprocessable):
    slug, title = "validation-error", "Request could not be processed"


def validation_problem(
    errors: Iterable[Mapping[str, Any]], detail: str = "the request is malformed"
) -> ValidationFailed:
    """The one shape of a field-validation failure (FastAPI's, pydantic's, a form's)."""
    listed = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    return ValidationFailed(detail, errors=listed)


class MissingImage(Unprocessable):
    slug, title = "missing-image", "No image in the request"


class RateLimited(Problem):
    status, slug, title = 429, "rate-limited", "Too many requests"


class Unavailable(Problem):
    status, slug, title = 503, "unavailable", "Service unavailable"


class DatabaseUnavailable(Unavailable):
    slug, title = "database-unavailable", "Database unavailable"


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
