"""Turning stored image bytes into an RGB picture a model can take, or a reason why not."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PIL import Image, ImageOps, UnidentifiedImageError

from fashion_assets.features.base import RowError

# Refuse images over this many pixels before their pixels are decoded: 40M is far above any product photo
# (8000 x 5000) and an RGB copy of it is 120 MB, so a hostile or broken header cannot exhaust memory.
MAX_PIXELS = 40_000_000

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_HIGH_BIT_MODES = {"I", "F"}  # 32-bit int / float single-channel; "I;16*" handled by prefix


class ImageDecodeError(ValueError):
    """Image bytes that cannot become an RGB picture; ``reason`` says why (empty, not an image, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_rgb(
    data: bytes | None, *, max_pixels: int = MAX_PIXELS, draft_size: tuple[int, int] | None = None
) -> Image.Image:
    """Decode ``data`` into an 8-bit RGB image.

    Any mode is accepted: transparent images (RGBA, LA, P with transparency) are composited on white,
    16-bit and float greyscale are scaled to 8 bits, CMYK and the rest are converted. EXIF orientation is
    applied; of an animation, the first frame is used. The pixel count is checked against ``max_pixels``
    from the header, before any pixel is decoded. ``draft_size`` lets JPEG decoding shrink by a power of
    two while staying at least that size (much faster for large photos a model shrinks anyway).

    Raises ImageDecodeError for None/empty bytes, bytes that are not an image, truncated or corrupt
    images and images over ``max_pixels``.
    """
    if not data:
        raise ImageDecodeError("empty image bytes" if data is not None else "no image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image too large (decompression bomb): {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(f"not an image ({len(data)} bytes of unknown format)") from exc
    except Exception as exc:  # a recognised format with a broken header
        raise ImageDecodeError(f"corrupt image header: {type(exc).__name__}: {exc}") from exc

    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image too large: {width}x{height} = {width * height:,} pixels over the {max_pixels:,} limit"
        )
    try:
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        image.load()
    except OSError as exc:
        reason = "truncated image" if "truncated" in str(exc) else f"corrupt image: {exc}"
        raise ImageDecodeError(f"{reason} ({image.format}, {width}x{height})") from exc
    except Exception as exc:
        raise ImageDecodeError(f"corrupt image ({image.format}): {type(exc).__name__}: {exc}") from exc
    try:
        return to_rgb(_oriented(image))
    except ImageDecodeError:
        raise
    except Exception as exc:
        raise ImageDecodeError(
            f"cannot convert {image.format} image of mode {image.mode} to RGB: {type(exc).__name__}: {exc}"
        ) from exc


def _oriented(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (unchanged when it has none or it is unreadable)."""
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:  # a broken EXIF block must not lose an otherwise good picture
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy of a loaded ``image`` of any mode; transparency is composited on white."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode.startswith("I;16") or mode in _HIGH_BIT_MODES:
        return _scaled_to_8bit(image).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _scaled_to_8bit(image: Image.Image) -> Image.Image:
    """A greyscale ``L`` image from a 16-bit, 32-bit int or float one."""
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if pixels.size and np.nanmax(pixels) <= 1.0 else 255.0
    elif image.mode.startswith("I;16") or (pixels.size and pixels.max() > 255):
        top = 65535.0
    else:
        top = 255.0
    scaled = np.clip(np.nan_to_num(pixels) * (255.0 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled)


@dataclass
class DecodedChunk:
    """Up to ``chunk_size`` consecutive rows of an image column: the pictures that decoded, by row index,
    and a RowError for each row that did not."""

    indices: list[int]
    images: list[Image.Image]
    errors: list[RowError]


def decode_chunks(
    column: pa.Array | pa.ChunkedArray, chunk_size: int, *, draft_size: tuple[int, int] | None = None
) -> Iterator[DecodedChunk]:
    """Decode an image-bytes column ``chunk_size`` rows at a time (so memory holds one chunk of pictures).

    Null rows are skipped without an error (whoever made the null owns that failure); rows that are empty
    or cannot be decoded get a RowError with the reason.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for start in range(0, len(column), chunk_size):
        chunk = DecodedChunk([], [], [])
        for offset, data in enumerate(column.slice(start, chunk_size).to_pylist()):
            if data is None:
                continue
            try:
                chunk.images.append(decode_rgb(data, draft_size=draft_size))
                chunk.indices.append(start + offset)
            except ImageDecodeError as exc:
                chunk.errors.append(RowError(start + offset, exc.reason))
        yield chunk
