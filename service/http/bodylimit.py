"""Every request body is capped while it streams, chunked or not.

The cap sits on ASGI ``receive``: whatever reads the body (FastAPI's JSON parsing, the
multipart parser that spools files, ``request.body()``) gets at most the cap's worth of
bytes and then a 413, so nothing is parsed or written to disk past it. A declared
``Content-Length`` over the cap is refused before the first byte is read.

Routes that take more than the default (image uploads) raise their own cap with
:func:`set_body_limit` before they read; routes that take less (login) lower it.
"""

from __future__ import annotations

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.problems import MEDIA_TYPE, PayloadTooLarge

_LIMIT_KEY = "body_limit"


class BodyTooLarge(HTTPException):
    """Raised out of ``receive``. An HTTPException, so that FastAPI's body parsing passes
    it on (it turns any other error into a 400) to the problem+json handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {limit} bytes")
        self.limit = limit


def set_body_limit(request: Request, limit: int) -> None:
    """This request's cap, in bytes; call before reading the body."""
    request.scope.setdefault("state", {})[_LIMIT_KEY] = limit


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, default_limit: int) -> None:
        self.app = app
        self.default_limit = default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state.setdefault(_LIMIT_KEY, self.default_limit)
        declared = _content_length(scope)
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            limit = int(state[_LIMIT_KEY])
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge as exc:
            # Read outside the routes' error handling (a middleware, a background read):
            # answer here, if the answer has not begun.
            if started:
                raise
            await _send_413(send, exc.limit, scope.get("path", ""))


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _send_413(send: Send, limit: int, path: str) -> None:
    import json

    problem = PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes", limit=limit)
    body = json.dumps(problem.body(instance=path)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
