"""Faster decoding of plain 8-bit PNGs through libspng, pixel-identical to Pillow's.

PNG is lossless, so any correct decoder gives the same pixels; libspng decodes
in about 60 % of Pillow's time. It comes with the optional ``pyspng`` wheel
(the ``[fast]`` extra), whose extension module exports libspng's C API; we call
that API through :mod:`ctypes`, which releases the GIL while a PNG decodes (the
``pyspng.load`` binding holds it, which would stall the fetch threads of a task).

libspng is used only for PNGs whose every pixel-, colour- or orientation-relevant
feature it and Pillow treat alike: 8-bit gray, RGB or RGBA, not interlaced,
with intact chunk checksums, and no ancillary chunk outside :data:`_INERT_CHUNKS`
(so no transparency key, EXIF, animation or unknown chunk), no text chunk whose
keyword Pillow reads an orientation from (EXIF or XMP in text), and no ICC
profile when the caller converts profiles. Anything else, any libspng failure,
and any image beyond Pillow's own decompression-bomb limit goes to Pillow as
before, so errors and results do not depend on whether ``pyspng`` is installed.

Text chunks carry no pixels, yet Pillow refuses a PNG whose compressed text or
ICC profile inflates past ``PngImagePlugin.MAX_TEXT_CHUNK`` (or whose text adds
up past ``MAX_TEXT_MEMORY``). :func:`without_unreadable_metadata` drops exactly
those chunks from a copy of the bytes before Pillow sees them, so such an image
reads on both paths without changing Pillow's global limits.

Examples
--------
>>> import io
>>> from PIL import Image, PngImagePlugin
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
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type -> Pillow mode, for 8-bit samples.
_MODES = {0: "L", 2: "RGB", 6: "RGBA"}
#: Ancillary chunks that change nothing Pillow or libspng return (neither applies gamma,
#: chromaticities or significant bits; ``bKGD`` is not composited by either).
_INERT_CHUNKS = frozenset((b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs", b"tIME", b"bKGD", b"hIST",
                           b"sPLT", b"oFFs", b"pCAL", b"sCAL", b"sTER"))
_TEXT_CHUNKS = frozenset((b"tEXt", b"zTXt", b"iTXt"))
#: Text keywords Pillow reads an EXIF block or an XMP ``tiff:Orientation`` from (``Image.getexif``):
#: libspng does not, so such a PNG goes to Pillow.
_ORIENTATION_KEYWORDS = frozenset((b"exif", b"Raw profile type exif", b"XML:com.adobe.xmp"))
_ICC_CHUNK = b"iCCP"

#: libspng's ``SPNG_FMT_PNG``: the PNG's own sample layout (for the modes above, Pillow's too).
_SPNG_FMT_PNG = 256
#: libspng's ``SPNG_CRC_USE``: do not verify chunk checksums. Pillow does not verify IDAT's
#: either, and :func:`plain_png_mode` has already verified every other chunk's.
_SPNG_CRC_USE = 2
#: Largest ancillary chunk / total chunk cache libspng may hold (as pyspng sets it).
_CHUNK_LIMIT = 64 * 1024 * 1024


def _load_libspng() -> tuple[Any | None, str | None]:
    """libspng's C API from the ``pyspng`` wheel's extension module and None, or None and why not."""
    try:
        spec = importlib.util.find_spec("pyspng")
    except (ImportError, ValueError) as exc:
        return None, f"pyspng cannot be located: {type(exc).__name__}: {exc}"
    if spec is None or not spec.submodule_search_locations:
        return None, "pyspng (the [fast] extra) is not installed"
    folder = Path(next(iter(spec.submodule_search_locations)))
    failures = []
    for path in sorted(folder.glob("_pyspng_c*")):
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
        except (OSError, AttributeError) as exc:
            failures.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        return lib, None
    if not failures:
        return None, f"pyspng is installed at {folder} but has no _pyspng_c extension module"
    return None, "pyspng is installed but libspng could not be loaded from it (" + "; ".join(failures) + ")"


_LIBSPNG, _UNAVAILABLE_REASON = _load_libspng()
if _UNAVAILABLE_REASON is not None and not _UNAVAILABLE_REASON.endswith("is not installed"):
    # Installed but unusable: say so once, instead of silently decoding every PNG with Pillow.
    warnings.warn(f"the libspng PNG fast path is off: {_UNAVAILABLE_REASON}", RuntimeWarning, stacklevel=1)


def available() -> bool:
    """Whether libspng is installed (``pip install 'sparkimg_ml[fast]'``)."""
    return _LIBSPNG is not None


def unavailable_reason() -> str | None:
    """Why the libspng fast path is off (not installed, or installed but not loadable), or None when it is on.

    Examples
    --------
    >>> (unavailable_reason() is None) == available()
    True
    """
    return _UNAVAILABLE_REASON


def _chunks(view: memoryview) -> Iterator[tuple[bytes, int, int]]:
    """``(kind, start, end)`` of each complete chunk after the signature (stops at truncation)."""
    position = 8
    while position + 12 <= len(view):
        length, kind = struct.unpack(">I4s", view[position:position + 8])
        end = position + 12 + length
        if end > len(view):
            return
        yield kind, position, end
        position = end


def _crc_ok(view: memoryview, start: int, end: int) -> bool:
    return zlib.crc32(view[start + 4:end - 4]) == struct.unpack(">I", view[end - 4:end])[0]


def _keyword(body: memoryview) -> bytes:
    """The keyword (or profile name) that starts a text or ``iCCP`` chunk body."""
    head = bytes(body[:80])
    return head.split(b"\0", 1)[0]


def plain_png_mode(data: bytes | bytearray | memoryview, color_managed: bool = False) -> str | None:
    """The Pillow mode of ``data`` if it is a PNG libspng decodes exactly as Pillow does, else None.

    ``color_managed``: the caller converts embedded ICC profiles, which libspng does not
    hand over, so a PNG carrying one is left to Pillow.
    """
    view = memoryview(data)
    if len(view) < 33 or bytes(view[:8]) != _SIGNATURE:
        return None
    mode = None
    for kind, start, end in _chunks(view):
        if kind == b"IHDR":
            if end - start != 25 or mode is not None:
                return None
            _, _, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", view[start + 8:start + 21])
            mode = _MODES.get(color) if depth == 8 and interlace == 0 else None
            if mode is None:
                return None
        elif mode is None:
            return None  # IHDR must come first
        elif kind in _TEXT_CHUNKS:
            if _keyword(view[start + 8:end - 4]) in _ORIENTATION_KEYWORDS:
                return None
        elif kind == _ICC_CHUNK:
            if color_managed:
                return None
        elif kind not in _INERT_CHUNKS and kind not in (b"IDAT", b"IEND"):
            return None  # transparency, EXIF, animation, palette or unknown: Pillow's handling
        if kind != b"IDAT" and not _crc_ok(view, start, end):
            return None  # Pillow refuses a damaged chunk where libspng might not look
        if kind == b"IEND":
            return mode
    return None


def _inflates_past(compressed: memoryview, limit: int) -> tuple[bool, int]:
    """Whether zlib data inflates to more than ``limit`` bytes (as Pillow checks it), and how far."""
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(compressed, limit)
    except zlib.error:
        return False, 0  # Pillow reads undecodable text as empty
    return bool(inflater.unconsumed_tail), len(inflated)


def _text_pillow_refuses(kind: bytes, body: memoryview, text_budget: int) -> tuple[bool, int]:
    """Whether Pillow would refuse this text or ``iCCP`` chunk, and the text length it counts."""
    limit = PngImagePlugin.MAX_TEXT_CHUNK
    keyword_end = len(_keyword(body))
    rest = body[keyword_end + 1:]
    if kind == b"tEXt":
        size = len(rest)
    elif kind in (b"zTXt", _ICC_CHUNK):
        if len(rest) and rest[0] != 0:
            return True, 0  # unknown compression method: Pillow raises
        too_big, size = _inflates_past(rest[1:], limit)
        if too_big:
            return True, 0
    else:  # iTXt: flag, method, language\0, translated keyword\0, text
        if len(rest) < 2:
            return False, 0
        parts = bytes(rest[2:]).split(b"\0", 2)
        text = parts[2] if len(parts) == 3 else b""
        if rest[0] and rest[1] == 0:
            too_big, size = _inflates_past(memoryview(text), limit)
            if too_big:
                return True, 0
        else:
            size = len(text)
    if kind == _ICC_CHUNK:
        return False, 0  # a profile does not count towards Pillow's text memory
    return size > text_budget, size


def without_unreadable_metadata(data: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    """``data`` without the text/``iCCP`` chunks that would make Pillow refuse a readable PNG.

    Pillow raises when a compressed text chunk or ICC profile inflates past
    ``PngImagePlugin.MAX_TEXT_CHUNK``, when a ``zTXt``/``iCCP`` names an unknown
    compression method, or when text adds up past ``MAX_TEXT_MEMORY``. Those chunks
    are dropped (limits read, never changed); damaged chunks are kept so Pillow still
    reports them. Returns ``data`` itself when nothing is dropped.

    Examples
    --------
    >>> import io, struct, zlib
    >>> from PIL import Image, PngImagePlugin
    >>> buffer = io.BytesIO()
    >>> Image.new("L", (2, 2)).save(buffer, "PNG")
    >>> png = buffer.getvalue()
    >>> without_unreadable_metadata(png) is png
    True
    >>> body = b"zTXtnote" + bytes(2) + zlib.compress(bytes(PngImagePlugin.MAX_TEXT_CHUNK + 1))
    >>> chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    >>> without_unreadable_metadata(png[:33] + chunk + png[33:]) == png
    True
    """
    view = memoryview(data)
    if len(view) < 33 or bytes(view[:8]) != _SIGNATURE:
        return data
    kept: list[memoryview] = []
    dropped = False
    text_budget = PngImagePlugin.MAX_TEXT_MEMORY
    last = 8
    for kind, start, end in _chunks(view):
        last = end
        if (kind in _TEXT_CHUNKS or kind == _ICC_CHUNK) and _crc_ok(view, start, end):
            refused, size = _text_pillow_refuses(kind, view[start + 8:end - 4], text_budget)
            if refused:
                dropped = True
                continue
            text_budget -= size
        kept.append(view[start:end])
    if not dropped:
        return data
    return b"".join([bytes(view[:8]), *kept, bytes(view[last:])])


def _decode(data: bytes, size: int) -> np.ndarray | None:
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


def decode_plain_png(data: bytes | bytearray | memoryview, max_pixels: int,
                     color_managed: bool = False) -> Image.Image | None:
    """The decoded image for a plain PNG within ``max_pixels`` (and Pillow's bomb limit), else None.

    None means "use Pillow": not a plain PNG (see :func:`plain_png_mode` for
    ``color_managed``), too large, libspng missing or refusing the file.
    """
    if _LIBSPNG is None:
        return None
    mode = plain_png_mode(data, color_managed)
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
