"""Hostile and unusual images over HTTP: every one answers in bounded time with a
problem (4xx) or, for legitimate but unusual encodings of a real face, with the face;
never a 5xx."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.conftest import FACES_DIR

PHOTO = FACES_DIR / "identities" / "rose_leslie" / "rose1.jpg"
BOUND_S = 15.0  # generous: the test machine's cores are shared


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _png(width: int, height: int, idat: bytes, extra: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )  # fmt: skip


def _bomb_png() -> bytes:
    """20,000 × 20,000 RGB (1.2 GB decoded) from a few hundred kilobytes of zeros."""
    width, height = 20_000, 20_000
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * (width * 3)
    parts = [compressor.compress(row) for _ in range(200)]  # only the first rows: enough
    parts.append(compressor.flush())
    return _png(width, height, b"".join(parts))


def _text_bomb_png() -> bytes:
    """A valid small PNG with a zTXt chunk that inflates to 200 MB."""
    small = Image.new("RGB", (8, 8))
    buf = io.BytesIO()
    small.save(buf, "PNG")
    png = buf.getvalue()
    ztxt = b"Comment\x00\x00" + zlib.compress(b"A" * 200_000_000, 9)
    cut = png.index(b"IDAT") - 4
    return png[:cut] + _chunk(b"zTXt", ztxt) + png[cut:]


def _gif_huge_screen() -> bytes:
    header = b"GIF89a" + struct.pack("<HH", 65_000, 65_000) + b"\x00\x00\x00"
    image = b"\x2c" + struct.pack("<HHHH", 0, 0, 65_000, 65_000) + b"\x00" + b"\x02\x02\x4c\x01\x00"
    return header + image + b"\x3b"


def _encoded(mode: str, fmt: str, **save: object) -> bytes:
    photo = Image.open(PHOTO)
    photo.load()
    if mode == "I;16":
        grey = np.asarray(photo.convert("L"), dtype=np.uint16) * 257
        image = Image.frombytes("I;16", photo.size, grey.astype("<u2").tobytes())
    elif mode == "RGBA":
        image = photo.convert("RGBA")
        image.putalpha(200)
    else:
        image = photo.convert(mode)
    buf = io.BytesIO()
    image.save(buf, fmt, **save)
    return buf.getvalue()


HOSTILE = {
    "truncated JPEG": lambda: PHOTO.read_bytes()[: len(PHOTO.read_bytes()) // 3],
    "60k x 60k PNG header": lambda: _png(60_000, 60_000, zlib.compress(b"\x00" * 100)),
    "decompression bomb PNG": _bomb_png,
    "zTXt bomb PNG": _text_bomb_png,
    "GIF with a 65k x 65k frame": _gif_huge_screen,
    "HTML polyglot": lambda: b"<html><script>alert(1)</script>" + PHOTO.read_bytes(),
    "empty": lambda: b"",
    "zero-size PNG": lambda: _png(0, 0, zlib.compress(b"")),
    "garbage after a PNG signature": lambda: b"\x89PNG\r\n\x1a\n" + b"\xff" * 5000,
}

UNUSUAL = {
    "greyscale JPEG": lambda: _encoded("L", "JPEG"),
    "CMYK JPEG": lambda: _encoded("CMYK", "JPEG"),
    "16-bit PNG": lambda: _encoded("I;16", "PNG"),
    "RGBA PNG": lambda: _encoded("RGBA", "PNG"),
    "palette GIF": lambda: _encoded("P", "GIF"),
}


def _detect(client, admin_key: str, data: bytes):  # noqa: ANN001, ANN202
    started = time.monotonic()
    response = client.post(
        "/v1/detect",
        files={"image": ("x", data, "application/octet-stream")},
        headers={"X-API-Key": admin_key},
    )
    return response, time.monotonic() - started


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_images_are_problems_in_bounded_time(client, admin_key: str, name: str) -> None:
    response, elapsed = _detect(client, admin_key, HOSTILE[name]())
    assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert elapsed < BOUND_S, (name, elapsed)


@pytest.mark.parametrize("name", list(UNUSUAL))
def test_unusual_encodings_of_a_face_still_find_it(client, admin_key: str, name: str) -> None:
    response, elapsed = _detect(client, admin_key, UNUSUAL[name]())
    assert response.status_code == 200, (name, response.text)
    assert len(response.json()["faces"]) == 1
    assert elapsed < BOUND_S, (name, elapsed)
