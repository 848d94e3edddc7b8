"""Faster decoding of plain 8-bit PNGs through libspng, pixel-identical to Pillow's.

PNG is lossless, so any correct decoder gives the same pixels; libspng (through
the optional ``pyspng`` package, the ``[fast]`` extra) does it in about 60 % of
Pillow's time. It is used only for PNGs whose every pixel-relevant feature
Pillow and libspng treat alike: 8-bit gray, RGB or RGBA, not
interlaced, with no transparency key (``tRNS``), no EXIF orientation, no
animation, and intact chunk checksums. Anything else, any libspng failure, and
any image beyond Pillow's own decompression-bomb limit goes to Pillow as
before, so errors and results do not depend on whether ``pyspng`` is installed.

Examples
--------
>>> import io
>>> from PIL import Image
>>> buffer = io.BytesIO()
>>> Image.new("RGB", (3, 2), (9, 8, 7)).save(buffer, "PNG")
>>> plain_png_mode(buffer.getvalue())
'RGB'
>>> plain_png_mode(b"GIF89a...") is None
True
"""

from __future__ import annotations

import struct
import zlib
from typing import Optional

import numpy as np
from PIL import Image

try:  # optional accelerator: pip install "sparkimg_ml[fast]"
    import pyspng
except ImportError:  # pragma: no cover - exercised where pyspng is absent
    pyspng = None

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type -> Pillow mode, for 8-bit samples (libspng cannot output 8-bit gray+alpha).
_MODES = {0: "L", 2: "RGB", 6: "RGBA"}
#: Chunks that change what Pillow returns beyond the plain pixels.
_PILLOW_SPECIFIC = {b"tRNS", b"eXIf", b"acTL"}
_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}
#: Pillow also reads EXIF from this text keyword (ImageMagick's way of storing it in PNG).
_EXIF_TEXT_KEYWORD = b"Raw profile type exif"


def available() -> bool:
    """Whether the libspng decoder is installed."""
    return pyspng is not None


def plain_png_mode(data: bytes | bytearray | memoryview) -> Optional[str]:
    """The Pillow mode of ``data`` if it is a PNG libspng decodes exactly as Pillow does, else None."""
    view = memoryview(data)
    if len(view) < 33 or bytes(view[:8]) != _SIGNATURE:
        return None
    position, mode = 8, None
    while position + 8 <= len(view):
        length, kind = struct.unpack(">I4s", view[position:position + 8])
        end = position + 12 + length
        if end > len(view):
            return None  # truncated: let Pillow report it
        if kind == b"IHDR":
            if length != 13:
                return None
            _, _, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", view[position + 8:position + 21])
            mode = _MODES.get(color) if depth == 8 and interlace == 0 else None
            if mode is None:
                return None
        elif mode is None or kind in _PILLOW_SPECIFIC:
            return None  # IHDR must come first; these chunks need Pillow's handling
        elif kind in _TEXT_CHUNKS and bytes(view[position + 8:position + 8 + len(_EXIF_TEXT_KEYWORD)]) \
                == _EXIF_TEXT_KEYWORD:
            return None
        if kind != b"IDAT":
            # Pillow refuses a damaged ancillary chunk where libspng would not look.
            expected = struct.unpack(">I", view[end - 4:end])[0]
            if zlib.crc32(view[position + 4:end - 4]) != expected:
                return None
        if kind == b"IEND":
            return mode
        position = end
    return None


def decode_plain_png(data: bytes | bytearray | memoryview, max_pixels: int) -> Optional[Image.Image]:
    """The decoded image for a plain PNG within ``max_pixels`` (and Pillow's bomb limit), else None.

    None means "use Pillow": not a plain PNG, too large, libspng missing or failing.
    """
    if pyspng is None:
        return None
    mode = plain_png_mode(data)
    if mode is None:
        return None
    width, height = struct.unpack(">II", bytes(data[16:24]))
    bomb_limit = Image.MAX_IMAGE_PIXELS
    if width * height > max_pixels or (bomb_limit and width * height > bomb_limit):
        return None  # Pillow raises the same too_many_pixels as for any other format
    try:
        pixels = pyspng.load(bytes(data))
    except (RuntimeError, ValueError):
        return None
    if pixels.dtype != np.uint8 or pixels.shape[:2] != (height, width):
        return None
    pixels = np.ascontiguousarray(pixels)
    return Image.frombuffer(mode, (width, height), pixels, "raw", mode, 0, 1)
