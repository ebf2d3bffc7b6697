"""Every request body is capped while it streams, chunked or not, before it is parsed or
spooled: measured on a real uvicorn server over a raw socket, so nothing in between
buffers the body for the app."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from service.http.app import create_app
from service.http.server_protocol import NoDelayH11Protocol
from tests.conftest import make_key

CAP = 256 * 1024  # FACEPRINT_MAX_UPLOAD_BYTES for these tests
ENDLESS = 64 * 1024 * 1024  # what a hostile client would send, were it let
CHUNK = 64 * 1024


@pytest.fixture
def server(settings, db_url: str, pipeline) -> Iterator[tuple[int, object]]:  # noqa: ANN001
    app = create_app(
        settings.model_copy(update={"max_upload_bytes": CAP}), database_url=db_url,
        pipeline=pipeline,
    )  # fmt: skip
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, http=NoDelayH11Protocol, log_config=None, access_log=False)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    try:
        yield port, app
    finally:
        srv.should_exit = True
        thread.join(timeout=20)
        listener.close()


def _send(
    port: int, path: str, head: dict[str, str], body: Iterator[bytes], *, chunked: bool
) -> tuple[int, dict, int]:
    """Send a request, stopping when the server answers or hangs up; returns the status,
    the JSON body and how many body bytes went out."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    lines = [f"POST {path} HTTP/1.1", "Host: test", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in head.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    received = bytearray()
    answered = threading.Event()

    def read() -> None:
        try:
            while data := sock.recv(65536):
                received.extend(data)
                if b"\r\n\r\n" in received:
                    answered.set()
        except OSError:
            pass
        answered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent = 0
    try:
        for piece in body:
            if answered.is_set():
                break
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            sent += len(piece)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server hung up on the rest of the body: what the cap should do
    reader.join(30)
    sock.close()
    head_raw, _, rest = bytes(received).partition(b"\r\n\r\n")
    status = int(head_raw.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head_raw.lower():
        rest = rest.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return status, json.loads(rest) if rest.strip() else {}, sent


def _endless(prefix: bytes = b"") -> Iterator[bytes]:
    if prefix:  # an empty chunk would end a chunked body
        yield prefix
    for _ in range(ENDLESS // CHUNK):
        yield b"x" * CHUNK


def _multipart_endless(boundary: str) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    yield from _endless()


def _assert_capped(status: int, problem: dict, sent: int) -> None:
    assert status == 413, problem
    assert problem["type"].endswith("/payload-too-large")
    # The server stopped reading near the cap; it did not swallow the body whole.
    assert sent < 16 * 1024 * 1024, sent


def test_a_chunked_image_upload_is_cut_off_at_the_cap(server, pipeline) -> None:  # noqa: ANN001
    port, app = server
    key = _key(app)
    boundary = "faceprintboundary"
    status, problem, sent = _send(
        port, "/v1/detect",
        {"X-API-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        _multipart_endless(boundary), chunked=True,
    )  # fmt: skip
    _assert_capped(status, problem, sent)


def test_a_chunked_login_body_is_cut_off(server) -> None:  # noqa: ANN001
    port, _ = server
    status, problem, sent = _send(
        port, "/v1/auth/token", {"Content-Type": "application/json"},
        _endless(b'{"email": "a@b.c", "password": "'), chunked=True,
    )  # fmt: skip
    _assert_capped(status, problem, sent)
    form = _endless(b"username=a%40b.c&password=")
    status, problem, sent = _send(
        port, "/v1/auth/token", {"Content-Type": "application/x-www-form-urlencoded"},
        form, chunked=True,
    )  # fmt: skip
    _assert_capped(status, problem, sent)


def test_a_declared_oversize_login_body_is_refused_unread(server) -> None:  # noqa: ANN001
    port, _ = server
    status, problem, sent = _send(
        port, "/v1/auth/token",
        {"Content-Type": "application/json", "Content-Length": str(ENDLESS)},
        _endless(b'{"email": "a@b.c", "password": "'), chunked=False,
    )  # fmt: skip
    _assert_capped(status, problem, sent)


def test_a_chunked_json_body_on_an_api_route_is_cut_off(server) -> None:  # noqa: ANN001
    port, app = server
    key = _key(app)
    status, problem, sent = _send(
        port, "/v1/galleries", {"X-API-Key": key, "Content-Type": "application/json"},
        _endless(b'{"name": "'), chunked=True,
    )  # fmt: skip
    _assert_capped(status, problem, sent)


def test_bodies_under_the_caps_still_work(server, faces_dir) -> None:  # noqa: ANN001
    port, app = server
    key = _key(app)
    photo = (faces_dir / "identities" / "rose_leslie" / "rose1.jpg").read_bytes()
    assert len(photo) < CAP
    boundary = "faceprintboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    pieces = iter([body[i : i + CHUNK] for i in range(0, len(body), CHUNK)])
    status, answer, _ = _send(
        port, "/v1/detect",
        {"X-API-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        pieces, chunked=True,
    )  # fmt: skip
    assert status == 200, answer
    assert answer["faces"]


def _key(app) -> str:  # noqa: ANN001
    class _Shim:  # make_key wants something with .app
        pass

    shim = _Shim()
    shim.app = app  # type: ignore[attr-defined]
    return make_key(shim, "admin")
