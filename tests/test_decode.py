"""Decoder: formats, orientation, colour modes, limits, and a fuzz run that may only
ever raise the typed ImageError."""

from __future__ import annotations

import io
import random
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from indexing.decode import decode_image
from indexing.errors import CorruptImage, ImageError, ImageTooLarge, UnsupportedImage
from tests.conftest import FACES_DIR

LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 40_000_000}


def _encode(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with Image.open(FACES_DIR / "identities" / "biden" / "biden1.jpg") as im:
        im = im.convert("RGB")
        im.thumbnail((240, 240))
        return im


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_formats_decode_to_rgb(photo: Image.Image, fmt: str) -> None:
    out = decode_image(_encode(photo, fmt), **LIMITS)
    assert out.dtype == np.uint8
    assert out.shape == (photo.height, photo.width, 3)


def test_exif_orientation_applied(photo: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = decode_image(_encode(photo, "JPEG", exif=exif.tobytes()), **LIMITS)
    assert out.shape == (photo.width, photo.height, 3)


def test_rgba_composited_on_white_and_grayscale_expanded() -> None:
    rgba = Image.new("RGBA", (8, 8), (10, 20, 30, 0))
    out = decode_image(_encode(rgba, "PNG"), **LIMITS)
    assert out.shape == (8, 8, 3) and int(out.min()) == 255
    gray = Image.new("L", (8, 4), 77)
    assert (decode_image(_encode(gray, "PNG"), **LIMITS) == 77).all()
    deep = Image.fromarray(np.full((4, 4), 4000, dtype=np.uint16))
    assert decode_image(_encode(deep, "PNG"), **LIMITS).max() == 255


def test_real_rgba_png_from_hard_set() -> None:
    out = decode_image((FACES_DIR / "hard" / "rgba_32bit.png").read_bytes(), **LIMITS)
    assert out.ndim == 3 and out.shape[2] == 3


def test_byte_limit_checked_first() -> None:
    with pytest.raises(ImageTooLarge, match="bytes"):
        decode_image(b"\x00" * 2048, max_bytes=1024, max_pixels=10)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width × height`` but carries a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def test_pixel_limit_checked_before_decoding() -> None:
    # A 100k × 100k header with no pixel data: refused from the header alone.
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode_image(_png_header_only(100_000, 100_000), **LIMITS)
    with pytest.raises(ImageTooLarge):
        decode_image(_encode(Image.new("RGB", (200, 200)), "PNG"), max_bytes=10**6, max_pixels=100)


def test_typed_errors_for_obvious_cases(photo: Image.Image) -> None:
    with pytest.raises(UnsupportedImage):
        decode_image(b"", **LIMITS)
    with pytest.raises(UnsupportedImage):
        decode_image(b"%PDF-1.7 not an image", **LIMITS)
    with pytest.raises(CorruptImage):
        decode_image(_encode(photo, "PNG")[:200], **LIMITS)


def _fuzz_cases(photo: Image.Image) -> list[bytes]:
    rng = random.Random(1234)
    encoded = [_encode(photo, f) for f in ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP")]
    cases: list[bytes] = []
    for blob in encoded:  # truncated at random points
        cases += [blob[: rng.randrange(1, len(blob))] for _ in range(30)]
    for blob in encoded:  # random bit flips and overwritten runs
        for _ in range(20):
            b = bytearray(blob)
            for _ in range(rng.randint(1, 12)):
                i = rng.randrange(len(b))
                b[i : i + rng.randint(1, 8)] = rng.randbytes(rng.randint(1, 8))
            cases.append(bytes(b))
    magics = [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a"]
    for magic in magics:  # mislabelled: one format's magic on another's body or noise
        cases += [magic + blob[len(magic) :] for blob in encoded]
        cases += [magic + rng.randbytes(rng.randint(0, 600)) for _ in range(8)]
    cases += [rng.randbytes(rng.randint(0, 3000)) for _ in range(60)]  # random bytes
    cases += [_png_header_only(w, h) for w, h in [(0, 5), (5, 0), (2**31 - 1, 2**31 - 1)]]
    return cases


def test_fuzz_only_typed_errors(photo: Image.Image) -> None:
    cases = _fuzz_cases(photo)
    assert len(cases) >= 300
    outcomes = {"ok": 0, "typed": 0}
    for data in cases:
        try:
            out = decode_image(data, max_bytes=1_000_000, max_pixels=4_000_000)
        except ImageError as exc:
            assert exc.detail
            outcomes["typed"] += 1
        else:
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
            outcomes["ok"] += 1
    # Most damaged inputs must be refused; a few (e.g. flipped pixel bytes) still decode.
    assert outcomes["typed"] > len(cases) // 2, outcomes


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_fast_path_matches_pillow(photo: Image.Image, orientation: int) -> None:
    """JPEGs are decoded by OpenCV; the pixels and the EXIF turn must be Pillow's."""
    from PIL import ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    photo.resize((64, 48)).save(buf, "JPEG", exif=exif, quality=92)
    data = buf.getvalue()
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    got = decode_image(data, max_bytes=10**7, max_pixels=10**7)
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_truncated_jpeg_is_reported_not_filled_in(photo: Image.Image) -> None:
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    with pytest.raises(CorruptImage):
        decode_image(data[: len(data) * 2 // 3], max_bytes=10**7, max_pixels=10**7)
