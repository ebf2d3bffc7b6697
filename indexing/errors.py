"""Typed errors of the face pipeline. Each carries a human ``detail``; the API maps the
classes to problem+json statuses (413, 415, 400, 422), so nothing here knows HTTP."""

from __future__ import annotations


class ImageError(Exception):
    """The bytes are not an image the pipeline will read."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ImageTooLarge(ImageError):
    """Over the byte or pixel limit (checked before full decoding). API → 413."""


class UnsupportedImage(ImageError):
    """Not an image format we read. API → 415."""


class CorruptImage(ImageError):
    """A known format, but truncated or undecodable. API → 400."""


class FaceError(Exception):
    """The image decoded, but its faces do not allow the request. API → 422."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NoFace(FaceError):
    def __init__(self, detail: str = "no face found in the image") -> None:
        super().__init__(detail)


class MultipleFaces(FaceError):
    def __init__(self, count: int, detail: str | None = None) -> None:
        super().__init__(detail or f"{count} faces found; the image must show exactly one")
        self.count = count


class LowQuality(FaceError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("face quality too low: " + "; ".join(problems))
        self.problems = list(problems)


class ModelUnavailable(Exception):
    """A model id that is unknown, or known but cannot be built here (no model pack,
    no runtime). The API maps it to 422 for a request and 503 for readiness."""

    def __init__(self, model_id: str, reason: str) -> None:
        super().__init__(f"model {model_id!r} is unavailable: {reason}")
        self.model_id = model_id
        self.reason = reason
        self.detail = str(self)
