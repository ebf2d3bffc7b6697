"""Reading image requests: multipart ``image`` (and other file fields) or JSON
``image_base64``, with the byte limit enforced before anything is decoded, and their
other fields parsed into the use case's input model."""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from indexing.face_choice import BadFaceSelector, FaceSelector
from service.core.problems import (
    MissingImage,
    PayloadTooLarge,
    Problem,
    Unprocessable,
    UnsupportedMediaType,
    validation_problem,
)
from service.http.bodylimit import set_body_limit

# Form fields and JSON framing around the image; a generous allowance, still bounded.
_OVERHEAD = 64 * 1024
_CHUNK = 64 * 1024


class BadBase64(Problem):
    status, slug, title = 400, "bad-base64", "image_base64 is not valid base64"


@dataclass
class Upload:
    images: dict[str, bytes] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)

    def image(self, name: str = "image") -> bytes:
        data = self.images.get(name)
        if data is None:
            raise MissingImage(
                f"send the image as multipart field {name!r} or as JSON {name + '_base64'!r}"
            )
        return data


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the upload exceeds the limit of {limit} bytes", limit=limit)


async def _read_capped(upload: UploadFile, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := await upload.read(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_body_capped(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _b64(value: object, name: str, limit: int) -> bytes:
    if not isinstance(value, str):
        raise BadBase64(f"{name} must be a base64 string")
    if len(value) > limit * 4 // 3 + 8:
        raise _too_large(limit)
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadBase64(f"{name} is not valid base64") from exc


async def read_upload(
    request: Request, *, image_fields: tuple[str, ...] = ("image",), max_images: int = 2
) -> Upload:
    """Parse an image request. Raises 413 past the byte limit, 415 for a body that is
    neither multipart nor JSON, 422 for missing parts. Never decodes the image itself."""
    limit: int = request.app.state.container.settings.max_upload_bytes
    total_limit = limit * max_images + _OVERHEAD
    # The stream itself stops at total_limit, before the multipart parser spools it.
    set_body_limit(request, total_limit)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > total_limit:
        raise _too_large(limit)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload = Upload()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=max_images, max_fields=32)
        # The body is in: from here on the time is the service's, not the network's.
        request.state.body_received_at = time.perf_counter()
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key in image_fields:
                    upload.images[key] = await _read_capped(value, limit)
            else:
                upload.fields[key] = value
        return upload
    if content_type in ("application/json", ""):
        body = await _read_body_capped(request, total_limit)
        request.state.body_received_at = time.perf_counter()
        try:
            payload = json.loads(body) if body else {}
        except ValueError as exc:
            raise Unprocessable("the body is not valid JSON") from exc
        if not isinstance(payload, dict):
            raise Unprocessable("the JSON body must be an object")
        for name in image_fields:
            encoded = payload.pop(f"{name}_base64", None)
            if encoded is not None:
                upload.images[name] = _b64(encoded, f"{name}_base64", limit)
        upload.fields.update(payload)
        return upload
    raise UnsupportedMediaType(
        f"send multipart/form-data with an 'image' file, or JSON with 'image_base64'; "
        f"got {content_type!r}"
    )


def image_request_body(*fields: str, extra: dict[str, dict[str, Any]] | None = None) -> dict:
    """OpenAPI description of an image request, for routes that parse the body themselves."""
    names = fields or ("image",)
    multipart: dict[str, Any] = {n: {"type": "string", "format": "binary"} for n in names}
    as_json: dict[str, Any] = {f"{n}_base64": {"type": "string", "format": "byte"} for n in names}
    for name, schema in (extra or {}).items():
        multipart[name] = schema
        as_json[name] = schema
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": multipart, "required": [names[0]]}
                },
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": as_json,
                        "required": [f"{names[0]}_base64"],
                    }
                },
            },
        }
    }


M = TypeVar("M", bound=BaseModel)


def parse_fields(model: type[M], fields: dict[str, object]) -> M:
    """The request's non-image fields as ``model``; a 422 validation problem if not."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise validation_problem(exc.errors(), "the request fields are malformed") from exc


def face_selector(value: str) -> FaceSelector:
    """The ``face`` query parameter; a 422 validation problem if it is neither a mode
    nor a box."""
    try:
        return FaceSelector.parse(value)
    except BadFaceSelector as exc:
        raise validation_problem(
            [{"loc": ["query", "face"], "msg": str(exc), "type": "value_error"}], str(exc)
        ) from exc
