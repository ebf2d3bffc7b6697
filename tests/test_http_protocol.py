"""Every connection the server accepts has Nagle's algorithm off, also on the shared
listening socket that ``serve --workers N`` hands to its worker processes."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.http.server_protocol import NoDelayH11Protocol


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _nodelay_seen(protocol: type[H11Protocol]) -> int:
    seen: list[int] = []

    class Probe(protocol):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    # Made as uvicorn's multiprocess mode makes it: protocol number 0.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app, http=Probe, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"
        conn.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
    assert len(seen) == 1
    return seen[0]


def test_accepted_connections_have_tcp_nodelay() -> None:
    assert _nodelay_seen(NoDelayH11Protocol) != 0


def test_the_test_socket_reproduces_the_problem() -> None:
    """Why the protocol exists: asyncio leaves these connections with Nagle on (if a
    future asyncio fixes that, this fails and the protocol can go)."""
    assert _nodelay_seen(H11Protocol) == 0
