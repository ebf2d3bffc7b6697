"""The OpenAPI document the service really honours: every error is declared as
``application/problem+json`` with one ``ProblemDetails`` schema (FastAPI's own 422
``HTTPValidationError`` is never sent, so it is not described), and each operation
lists the statuses it can answer. The problem types are listed in one place,
``x-problem-types``, built from the ``Problem`` classes themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field

from service.core.problems import MEDIA_TYPE, TYPE_BASE, Problem
from service.http.deps import get_principal
from service.http.ratelimit import limit_client_ip, limit_principal

REF = "#/components/schemas/ProblemDetails"
_REASONS = {
    400: "Bad request (a malformed cursor, image or body)",
    401: "No valid credentials",
    403: "The caller's role does not allow this",
    404: "No such object (or not visible to this caller)",
    405: "Method not allowed",
    409: "Conflicts with the current state",
    410: "Gone (expired)",
    413: "Upload too large",
    415: "Not a supported image",
    422: "The request is well-formed but cannot be processed",
    429: "Rate limit exceeded (see Retry-After)",
    503: "A dependency is unavailable",
}


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details. Some types add members (``errors`` for validation,
    ``faces``, ``problems``, ``retry_after``, ``model_id``, …)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description=f"A stable URI, {TYPE_BASE}<slug>; see x-problem-types.")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[FieldError] | None = Field(
        default=None, description="Field errors, with type …/validation-error."
    )


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route whose domain call raises problems of these statuses
    beyond what the route's shape implies (see :func:`statuses_of`)."""
    return {status: {"description": _REASONS.get(status, "Error")} for status in statuses}


def _all_problem_classes() -> Iterator[type[Problem]]:
    stack: list[type[Problem]] = [Problem]
    while stack:
        cls = stack.pop()
        yield cls
        stack.extend(cls.__subclasses__())


def problem_types() -> list[dict[str, Any]]:
    """Every problem type the service can send (slug, status, title), one entry per slug."""
    seen: dict[str, dict[str, Any]] = {}
    for cls in _all_problem_classes():
        seen.setdefault(cls.slug, {"type": TYPE_BASE + cls.slug, "status": cls.status,
                                    "title": cls.title})  # fmt: skip
    seen.setdefault("internal", {"type": TYPE_BASE + "internal", "status": 500,
                                 "title": "Internal error"})  # fmt: skip
    return sorted(seen.values(), key=lambda t: (t["status"], t["type"]))


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _uploads_image(route: Any) -> bool:
    body = (route.openapi_extra or {}).get("requestBody", {})
    return "multipart/form-data" in body.get("content", {})


def statuses_of(route: Any) -> set[int]:
    """The error statuses a route's shape implies: its dependencies (authentication,
    role, rate limit), its path (an id that may not exist), its parameters and body
    (validation), its cursor, its image upload."""
    calls = set(_calls(route.dependant))
    found: set[int] = set()
    if get_principal in calls:
        found.add(401)
    if any(getattr(c, "__qualname__", "").startswith("require.") for c in calls):
        found.add(403)
    if limit_principal in calls or limit_client_ip in calls:
        found.add(429)
    if route.dependant.path_params:
        found.add(404)
    query = {p.name for p in route.dependant.query_params}
    if "cursor" in query:
        found.add(400)
    if route.dependant.path_params or query or route.body_field is not None:
        found.add(422)
    if _uploads_image(route):
        # Corrupt or not base64, too large, not an image, no usable face, the model
        # not loadable.
        found.update({400, 413, 415, 422, 503})
    return found


def api_routes(app: FastAPI) -> Iterator[Any]:
    """Every API route as the app serves it: under its router's prefix, with the
    router's dependencies (FastAPI keeps included routers as contexts)."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def _problem_response(status: int) -> dict[str, Any]:
    return {
        "description": _REASONS.get(status, "Error"),
        "content": {MEDIA_TYPE: {"schema": {"$ref": REF}}},
    }


def build_schema(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    definitions = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(definitions.pop("$defs", {}))
    components["ProblemDetails"] = definitions
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        for method in route.methods:
            operation = schema["paths"][route.path_format][method.lower()]
            responses = operation.setdefault("responses", {})
            declared = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
            for status in sorted(declared | statuses_of(route)):
                described = responses.get(str(status), {})
                responses[str(status)] = _problem_response(status) | {
                    k: v for k, v in described.items() if k == "description"
                }
    schema["x-problem-types"] = problem_types()
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = [
    "ProblemDetails",
    "api_routes",
    "install_openapi",
    "problem_types",
    "problems",
    "statuses_of",
]
