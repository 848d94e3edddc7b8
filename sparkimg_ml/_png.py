"""Faster decoding of plain 8-bit PNGs through libspng, pixel-identical to Pillow's.

PNG is lossless, so any correct decoder gives the same pixels; libspng decodes
in about 60 % of Pillow's time. It comes with the optional ``pyspng`` wheel
(the ``[fast]`` extra), whose extension module exports libspng's C API; we call
that API through :mod:`ctypes`, which releases the GIL while a PNG decodes (the
``pyspng.load`` binding holds it, which would stall the fetch threads of a task).

libspng is used only for PNGs whose every pixel-relevant feature Pillow and
libspng treat alike: 8-bit gray, RGB or RGBA, not interlaced, with no
transparency key (``tRNS``), no EXIF, no animation, and intact chunk checksums.
Anything else, any libspng failure, and any image beyond Pillow's own
decompression-bomb limit goes to Pillow as before, so errors and results do not
depend on whether ``pyspng`` is installed.

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

import ctypes
import importlib.util
import struct
import zlib
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type -> Pillow mode, for 8-bit samples.
_MODES = {0: "L", 2: "RGB", 6: "RGBA"}
#: Chunks that change what Pillow returns beyond the plain pixels.
_PILLOW_SPECIFIC = {b"tRNS", b"eXIf", b"acTL"}
_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}
#: Pillow also reads EXIF from this text keyword (ImageMagick's way of storing it in PNG).
_EXIF_TEXT_KEYWORD = b"Raw profile type exif"

#: libspng's ``SPNG_FMT_PNG``: the PNG's own sample layout (for the modes above, Pillow's too).
_SPNG_FMT_PNG = 256
#: libspng's ``SPNG_CRC_USE``: do not verify chunk checksums. Pillow does not verify IDAT's
#: either, and :func:`plain_png_mode` has already verified every other chunk's.
_SPNG_CRC_USE = 2
#: Largest ancillary chunk / total chunk cache libspng may hold (as pyspng sets it).
_CHUNK_LIMIT = 64 * 1024 * 1024


def _load_libspng() -> Optional[Any]:
    """libspng's C API from the ``pyspng`` wheel's extension module, or None."""
    spec = importlib.util.find_spec("pyspng")
    if spec is None or not spec.submodule_search_locations:
        return None
    for path in Path(next(iter(spec.submodule_search_locations))).glob("_pyspng_c*"):
        try:
            lib = ctypes.CDLL(str(path))  # CDLL: the GIL is released during every call
            lib.spng_ctx_new.restype = ctypes.c_void_p
            lib.spng_ctx_new.argtypes = [ctypes.c_int]
            lib.spng_ctx_free.restype = None
            lib.spng_ctx_free.argtypes = [ctypes.c_void_p]
            lib.spng_set_png_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
            lib.spng_set_crc_action.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
            lib.spng_set_chunk_limits.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
            lib.spng_decoded_image_size.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_size_t)]
            lib.spng_decode_image.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                              ctypes.c_int]
        except (OSError, AttributeError):
            continue
        return lib
    return None


_LIBSPNG = _load_libspng()


def available() -> bool:
    """Whether libspng is installed (``pip install 'sparkimg_ml[fast]'``)."""
    return _LIBSPNG is not None


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
            # Pillow refuses a damaged ancillary chunk where libspng might not look.
            expected = struct.unpack(">I", view[end - 4:end])[0]
            if zlib.crc32(view[position + 4:end - 4]) != expected:
                return None
        if kind == b"IEND":
            return mode
        position = end
    return None


def _decode(data: bytes, size: int) -> Optional[np.ndarray]:
    """libspng's decode of ``data`` into ``size`` bytes, or None when it refuses the file."""
    lib: Any = _LIBSPNG
    ctx = lib.spng_ctx_new(0)
    if not ctx:
        return None
    try:
        decoded_size = ctypes.c_size_t()
        if (lib.spng_set_crc_action(ctx, _SPNG_CRC_USE, _SPNG_CRC_USE)
                or lib.spng_set_chunk_limits(ctx, _CHUNK_LIMIT, _CHUNK_LIMIT)
                or lib.spng_set_png_buffer(ctx, data, len(data))
                or lib.spng_decoded_image_size(ctx, _SPNG_FMT_PNG, ctypes.byref(decoded_size))
                or decoded_size.value != size):
            return None
        pixels = np.empty(size, dtype=np.uint8)
        if lib.spng_decode_image(ctx, pixels.ctypes.data, size, _SPNG_FMT_PNG, 0):
            return None
        return pixels
    finally:
        lib.spng_ctx_free(ctx)


def decode_plain_png(data: bytes | bytearray | memoryview, max_pixels: int) -> Optional[Image.Image]:
    """The decoded image for a plain PNG within ``max_pixels`` (and Pillow's bomb limit), else None.

    None means "use Pillow": not a plain PNG, too large, libspng missing or refusing the file.
    """
    if _LIBSPNG is None:
        return None
    mode = plain_png_mode(data)
    if mode is None:
        return None
    width, height = struct.unpack(">II", bytes(data[16:24]))
    bomb_limit = Image.MAX_IMAGE_PIXELS
    if width * height > max_pixels or (bomb_limit and width * height > bomb_limit):
        return None  # Pillow raises the same too_many_pixels as for any other format
    pixels = _decode(data if isinstance(data, bytes) else bytes(data), width * height * len(mode))
    if pixels is None:
        return None
    return Image.frombuffer(mode, (width, height), pixels, "raw", mode, 0, 1)
