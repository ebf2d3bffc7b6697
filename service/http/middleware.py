"""Request ids, per-route Prometheus metrics and one structured log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.request_context import set_request_id

log = logging.getLogger("faceprint.access")

REQUESTS = Counter("faceprint_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "faceprint_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware) so streaming uploads are not buffered twice."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        set_request_id(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                # The server's whole share of the request, from the first byte read to
                # the answer: beside the route's own entries (pipeline stages), it shows
                # what parsing, auth, the index query and the history write cost.
                now = time.perf_counter()
                total = f"total;dur={(now - started) * 1000:.2f}"
                received = scope.get("state", {}).get("body_received_at")
                if received is not None:
                    # Without the upload's transfer time, which the client and network set.
                    total += f", handling;dur={(now - received) * 1000:.2f}"
                total = total.encode()
                timing = [i for i, (k, _) in enumerate(headers) if k.lower() == b"server-timing"]
                if timing:
                    key, value = headers[timing[0]]
                    headers[timing[0]] = (key, value + b", " + total)
                else:
                    headers.append((b"server-timing", total))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", "unmatched")
            method = scope["method"]
            # Who asked (set by the auth dependency), so every request, the console's
            # included, is attributable to the signed-in principal without its secret.
            principal = scope.get("state", {}).get("principal")
            REQUESTS.labels(method, route_path, str(status_holder["status"])).inc()
            LATENCY.labels(method, route_path).observe(elapsed)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": route_path,
                    "status": status_holder["status"],
                    "duration_ms": round(elapsed * 1000, 2),
                    "principal": f"{principal.kind}:{principal.id}" if principal else None,
                },
            )
