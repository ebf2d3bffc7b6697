"""Bytes → RGB uint8 array, validated before anything expensive happens.

Order matters for safety: the byte limit is checked first, then the format is
identified and the pixel count read from the header alone, and only then is the
image decoded. Every failure is one of the typed errors in ``indexing.errors``.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
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
