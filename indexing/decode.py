"""Bytes → RGB uint8 array, validated before anything expensive happens.

Order matters for safety: the byte limit is checked first, then the format is
identified and the pixel count read from the header alone, and only then is the
image decoded. Every failure is one of the typed errors in ``indexing.errors``.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from indexing.errors import CorruptImage, ImageTooLarge, UnsupportedImage
from indexing.types import RGBImage

# Formats with mature, bounds-checked Pillow decoders; others are refused (415).
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies; Pillow's global bomb warning is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image has too many pixels (limit {max_pixels:,})") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImage(
            "not an image format we read (JPEG, PNG, WebP, GIF, BMP, TIFF)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a malformed header can raise anything
        raise CorruptImage(f"image header is unreadable: {type(exc).__name__}") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"image has no pixels ({width}×{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}×{height} = {width * height:,} pixels; limit {max_pixels:,}"
        )
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float grayscale: Pillow's "RGB" conversion would clip, so rescale.
        arr = np.asarray(image, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        scaled = (arr * (255.0 / hi)).astype(np.uint8) if hi > 0 else arr.astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent pixels keep arbitrary colour values; show them on white instead.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


# EXIF orientation → how to turn the stored pixels upright (what Pillow's
# ``exif_transpose`` does, on a NumPy array).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
_JPEG_EOI = b"\xff\xd9"


def _fast_jpeg(data: bytes, image: Image.Image) -> NDArray[np.uint8] | None:
    """Baseline RGB/grayscale JPEGs through OpenCV's libjpeg-turbo, several times
    faster than Pillow's decoder here, pixel-identical. Only complete files (ending in
    the end-of-image marker) take this path: OpenCV fills a truncated JPEG with grey
    where Pillow reports it, and that report must stay. None means "use Pillow"."""
    if image.format != "JPEG" or image.mode not in ("RGB", "L"):
        return None
    if not data.rstrip(b"\x00\r\n ").endswith(_JPEG_EOI):
        return None
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if array is None or array.shape[:2] != (image.height, image.width):
        return None
    try:
        orientation = int(image.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the photo
        orientation = 1
    turn = _ORIENT.get(orientation)
    return array if turn is None else turn(array)


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> RGBImage:
    """Decode ``data`` to an (h, w, 3) uint8 RGB array with EXIF orientation applied.

    Raises ``ImageTooLarge`` (bytes or pixels over the limit), ``UnsupportedImage``
    (not a format we read) or ``CorruptImage`` (truncated or undecodable).
    """
    if len(data) > max_bytes:
        raise ImageTooLarge(f"image is {len(data):,} bytes; limit {max_bytes:,}")
    if len(data) == 0:
        raise UnsupportedImage("empty upload: no image bytes")
    image = _open(data, max_pixels)
    try:
        fast = _fast_jpeg(data, image)
    except MemoryError as exc:
        raise ImageTooLarge("image needs more memory to decode than is available") from exc
    if fast is not None:
        return np.ascontiguousarray(fast)
    try:
        image.seek(0)  # animated GIF/WebP: the first frame
        image.load()
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the photo
            pass
        rgb = _to_rgb(image)
        array = np.asarray(rgb, dtype=np.uint8)
    except MemoryError as exc:
        raise ImageTooLarge("image needs more memory to decode than is available") from exc
    except Exception as exc:  # noqa: BLE001 - decoders signal truncation many ways
        raise CorruptImage(f"image data is truncated or corrupt: {exc}") from exc
    if array.ndim != 3 or array.shape[2] != 3:
        raise CorruptImage(f"decoded to an unexpected shape {array.shape}")
    return np.ascontiguousarray(array)
