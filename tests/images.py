"""Image bytes of every kind a catalogue can hold, good and bad, for tests of anything that reads images.

Each function returns the encoded bytes (cached: they are immutable). ``GOOD_IMAGES`` and ``BAD_IMAGES``
map a case name to its maker, for ``pytest.mark.parametrize``; every bad case should be refused with a
reason, every good one decoded to RGB.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image


def pattern(width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """An RGB uint8 array with gradients and a seeded colour, so different seeds give different pictures."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=3)
    y, x = np.mgrid[0:height, 0:width]
    red = (x * 255 // max(width - 1, 1) + base[0]) % 256
    green = (y * 255 // max(height - 1, 1) + base[1]) % 256
    blue = ((x + y) * 4 + base[2]) % 256
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """``image`` encoded as ``fmt`` (PNG, JPEG, GIF, WEBP, TIFF, ...)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def rgb_image(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """A PIL RGB image of :func:`pattern`."""
    return Image.fromarray(pattern(width, height, seed))


@functools.cache
def rgb_jpeg(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """An ordinary RGB JPEG, the common case."""
    return encode(rgb_image(width, height, seed), "JPEG", quality=90)


@functools.cache
def rgb_png(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """An RGB PNG."""
    return encode(rgb_image(width, height, seed), "PNG")


@functools.cache
def grey_jpeg() -> bytes:
    """An 8-bit greyscale (mode L) JPEG."""
    return encode(rgb_image(seed=1).convert("L"), "JPEG")


@functools.cache
def bilevel_png() -> bytes:
    """A 1-bit black-and-white (mode 1) PNG."""
    return encode(rgb_image(seed=2).convert("1"), "PNG")


@functools.cache
def palette_png() -> bytes:
    """A palette (mode P) PNG."""
    return encode(rgb_image(seed=3).convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")


@functools.cache
def palette_transparent_png() -> bytes:
    """A palette PNG with one transparent palette entry (tRNS chunk)."""
    image = rgb_image(seed=4).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


@functools.cache
def transparent_gif() -> bytes:
    """A GIF with a transparent colour, like many web product cut-outs."""
    image = rgb_image(seed=5).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "GIF", transparency=0)


@functools.cache
def rgba_png() -> bytes:
    """An RGBA PNG with a gradient alpha channel (a cut-out product)."""
    rgb = pattern(seed=6)
    alpha = np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None, :].repeat(rgb.shape[0], axis=0)
    return encode(Image.fromarray(np.dstack([rgb, alpha])), "PNG")


@functools.cache
def la_png() -> bytes:
    """A greyscale-with-alpha (mode LA) PNG."""
    return encode(Image.open(io.BytesIO(rgba_png())).convert("LA"), "PNG")


@functools.cache
def cmyk_jpeg() -> bytes:
    """A CMYK JPEG (print workflows)."""
    return encode(rgb_image(seed=7).convert("CMYK"), "JPEG")


@functools.cache
def i16_png() -> bytes:
    """A 16-bit greyscale PNG (opens as mode I;16)."""
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")


@functools.cache
def webp() -> bytes:
    """An RGB WebP."""
    return encode(rgb_image(seed=8), "WEBP")


@functools.cache
def png_named_jpg() -> bytes:
    """PNG bytes, as found in a file called ``*.jpg``: decoding must go by content, not name."""
    return rgb_png(seed=9)


@functools.cache
def one_pixel_png() -> bytes:
    """A 1x1 image."""
    return encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG")


@functools.cache
def large_jpeg() -> bytes:
    """A 4000x3000 photo: big, but a real camera size that must decode."""
    return encode(rgb_image(400, 300, 10).resize((4000, 3000), Image.Resampling.BILINEAR), "JPEG", quality=85)


def empty() -> bytes:
    """Zero bytes."""
    return b""


def text_as_image() -> bytes:
    """Text where an image should be (an HTML error page saved as .jpg)."""
    return b"<html><body>404 Not Found</body></html>\n"


@functools.cache
def corrupt_jpeg() -> bytes:
    """A JPEG start-of-image marker followed by garbage."""
    rng = np.random.default_rng(11)
    return b"\xff\xd8\xff\xe0" + rng.integers(0, 256, size=2000, dtype=np.uint8).tobytes()


@functools.cache
def truncated_jpeg() -> bytes:
    """A JPEG cut off half way (an interrupted download)."""
    data = rgb_jpeg(256, 192, 12)
    return data[: len(data) // 2]


@functools.cache
def truncated_png() -> bytes:
    """A PNG cut off half way."""
    data = rgb_png(256, 192, 13)
    return data[: len(data) // 2]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


@functools.cache
def bomb_png(width: int = 8000, height: int = 6000) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels in a few hundred bytes.

    The default (48M pixels) is above the decoder's 40M limit but below Pillow's own bomb check;
    ``huge_bomb_png`` is above Pillow's too. Decoding either in full would need gigabytes.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    row = b"\x00" + b"\x00" * width
    pixels = zlib.compressobj(9).compress(row * min(height, 64))  # the rest is "missing": never read
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def huge_bomb_png() -> bytes:
    """A PNG header claiming 50,000 x 50,000 pixels (2.5G): Pillow itself refuses it at open."""
    return bomb_png(50_000, 50_000)


GOOD_IMAGES: dict[str, Callable[[], bytes]] = {
    "rgb_jpeg": rgb_jpeg,
    "rgb_png": rgb_png,
    "grey_L": grey_jpeg,
    "bilevel_1": bilevel_png,
    "palette_P": palette_png,
    "palette_transparent": palette_transparent_png,
    "transparent_gif": transparent_gif,
    "rgba": rgba_png,
    "la": la_png,
    "cmyk": cmyk_jpeg,
    "i16": i16_png,
    "webp": webp,
    "png_named_jpg": png_named_jpg,
    "one_pixel": one_pixel_png,
    "large_4000x3000": large_jpeg,
}

BAD_IMAGES: dict[str, Callable[[], bytes]] = {
    "empty": empty,
    "text": text_as_image,
    "corrupt_jpeg": corrupt_jpeg,
    "truncated_jpeg": truncated_jpeg,
    "truncated_png": truncated_png,
    "bomb": bomb_png,
    "huge_bomb": huge_bomb_png,
}
