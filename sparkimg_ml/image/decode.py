"""Bytes to a Pillow image: identification by content, refusals, size guard, orientation tags."""

from __future__ import annotations

import functools
import io
import struct
import threading

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError, features

from ..errors import SourceError
from . import png
from .spec import ImageSpec

# Registering every plugin up front keeps ``Image.open`` from importing plugins
# lazily (which mutates Pillow's registry) while several threads decode.
Image.init()

#: Formats decoded, identified by content. MPO is the multi-picture JPEG many
#: phone cameras write; AVIF needs a Pillow built with it (Pillow >= 11.3 wheels
#: are) and HEIF/HEIC the ``[heif]`` extra (``pillow-heif``). Every other format
#: (TGA, PPM, PSD, ICO, EPS, PDF, SVG, ...) is refused with ``unsupported_format``
#: naming it; bytes that are no known image give ``decode``.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "TIFF", "BMP", "AVIF", "HEIF")
# The plugins to try when opening (Pillow's JPEG opener also returns MPO files).
# HEIF is opened only once its ftyp brands name it, after pillow-heif registered its plugin.
_OPENERS = tuple(name for name in ACCEPTED_FORMATS if name in Image.OPEN and name != "HEIF")
# Pillow's other plugins, only ever used to name what is refused (their headers are read, never pixels);
# those that check a signature first, so a signature-less format (TGA) never claims another's file.
_REFUSED_PLUGINS = tuple(sorted((name for name in Image.ID if name not in ACCEPTED_FORMATS),
                                key=lambda name: Image.OPEN[name][1] is None))
# ISO media (ftyp) brands of AVIF and of HEVC-coded HEIF; ``mif1``/``msf1`` alone are generic HEIF.
_AVIF_BRANDS = frozenset((b"avif", b"avis"))
_HEVC_BRANDS = frozenset((b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"))
_HEIF_BRANDS = frozenset((b"mif1", b"msf1"))
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset((5, 6, 7, 8))
# The orientation whose transpose undoes each one (only the quarter turns differ).
_UNDO = {**{orientation: orientation for orientation in _TRANSPOSE}, 6: 8, 8: 6}
# Which upright axes (x, y) run against the stored ones after each transpose.
_FLIPS = {2: (True, False), 3: (True, True), 4: (False, True), 5: (False, False),
          6: (True, False), 7: (True, True), 8: (False, True)}
# Everything Pillow raises for malformed, truncated or hostile image data (its AVIF plugin and
# pillow-heif report decoder failures as RuntimeError).
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, struct.error, IndexError, RuntimeError)


def _iso_media_format(head: bytes) -> str | None:
    """``"AVIF"``, ``"HEIC"`` or ``"HEIF"`` from an ISO media ``ftyp`` box's brands, else None.

    Examples
    --------
    >>> _iso_media_format(b"\\x00\\x00\\x00\\x18ftypheic\\x00\\x00\\x00\\x00mif1heic")
    'HEIC'
    >>> _iso_media_format(b"\\x00\\x00\\x00\\x1cftypmif1\\x00\\x00\\x00\\x00mif1avifmiaf")
    'AVIF'
    """
    if head[4:8] != b"ftyp":
        return None
    box_end = min(len(head), max(16, struct.unpack(">I", head[:4])[0]))
    brands = {head[8:12]} | {head[at:at + 4] for at in range(16, box_end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "AVIF"
    if brands & _HEVC_BRANDS:
        return "HEIC"
    return "HEIF" if brands & _HEIF_BRANDS else None


_heif_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _heif_available() -> bool:
    """Register pillow-heif's Pillow plugin (once, on first HEIF input); False when not installed."""
    with _heif_lock:
        try:
            import pillow_heif
        except ImportError:
            return False
        pillow_heif.register_heif_opener()
        return "HEIF" in Image.OPEN


def _pillow_format_name(data: bytes | bytearray | memoryview) -> str | None:
    """The name of a Pillow plugin we refuse whose header parser takes ``data`` (no pixel is decoded)."""
    try:
        with Image.open(io.BytesIO(data), formats=_REFUSED_PLUGINS) as image:
            return image.format
    except Exception:  # noqa: BLE001 - Pillow's header parsers raise many types on foreign bytes
        return None


def _refused(name: str, why: str = "") -> SourceError:
    return SourceError("unsupported_format", f"{name} ({why})" if why else name)


def _describe_unidentified(data: bytes | bytearray | memoryview) -> SourceError:
    """Name what the bytes are when no accepted format claims them.

    No content is echoed: the detail only names a kind of document or format.
    """
    head, length = bytes(data[:1024]), len(data)
    if not length:
        return SourceError("decode", "empty input (0 bytes)")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"%pdf-"):
        return _refused("PDF", "documents are not accepted")
    if text.startswith(b"%!ps") or head.startswith(b"\xc5\xd0\xd3\xc6"):
        return _refused("EPS", "PostScript is not accepted")
    if b"<svg" in text and text.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")):
        return _refused("SVG", "vector graphics are not accepted")
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return SourceError("decode", "the bytes are an HTML document, not an image")
    if head[4:8] == b"ftyp":
        return _refused(f"ISO media {head[8:12].decode('latin-1')!r}", "not an AVIF or HEIF image")
    for magic, name in ((b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL ", "JPEG XL")):
        if head.startswith(magic):
            return _refused(name)
    pillow_format = _pillow_format_name(data)
    if pillow_format is not None:
        return _refused(pillow_format)
    return SourceError("decode", f"not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)}); "
                                 f"{length} bytes")


def _too_many(width: int, height: int, spec: ImageSpec) -> SourceError:
    return SourceError("too_many_pixels", f"{width}x{height} = {width * height} pixels > maxPixels "
                                          f"{spec.max_pixels}")


def _openers_for(data: bytes | bytearray | memoryview) -> tuple[str, ...]:
    """The plugins that may open ``data``: AVIF and HEIF by their ftyp brands, the rest by signature."""
    iso_format = _iso_media_format(bytes(data[:64]))
    if iso_format == "AVIF":
        if "AVIF" not in _OPENERS or not features.check("avif"):
            raise _refused("AVIF", "this Pillow build has no AVIF decoder; Pillow >= 11.3 wheels have one")
        return ("AVIF",)
    if iso_format is not None:
        if not _heif_available():
            raise _refused(iso_format, "install sparkimg_ml[heif]")
        return ("HEIF",)
    return _OPENERS


def _open(data: bytes | bytearray | memoryview, spec: ImageSpec) -> Image.Image:
    """Identify ``data`` among the accepted formats and check its size from the header.

    A PNG's text chunks that Pillow would refuse to read (they carry no pixels) are
    dropped first, so the image reads as it does through libspng.
    """
    data = png.without_unreadable_metadata(data)
    openers = _openers_for(data)
    try:
        image = Image.open(io.BytesIO(data), formats=openers)
    except UnidentifiedImageError:
        if len(openers) == 1:  # its brands name AVIF or HEIF, yet the plugin cannot parse it
            raise SourceError("decode", f"corrupt or truncated {openers[0]} data") from None
        raise _describe_unidentified(data) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (its warning too, when warnings are errors) fires inside
        # ``open`` for sizes beyond its global limit: same reason as ours.
        raise SourceError("too_many_pixels", str(exc)) from None
    except _DECODE_ERRORS as exc:
        raise SourceError("decode", f"corrupt or truncated data: {exc}") from None
    if image.width * image.height > spec.max_pixels:
        image.close()
        raise _too_many(image.width, image.height, spec)
    return image


def exif_orientation(image: Image.Image) -> int | None:
    """The EXIF ``Orientation`` tag (1-8) as stored, None when absent, unreadable or out of range."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation)
    except _DECODE_ERRORS:
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _orientation(image: Image.Image) -> int:
    """The orientation to apply (1 when absent or unreadable: a broken EXIF block must not lose the pixels)."""
    value = exif_orientation(image)
    return value if value in _TRANSPOSE else 1


def _rgb16_keyed_png(image: Image.Image) -> bytes | None:
    """The file's bytes if ``image`` is a not yet decoded 16-bit RGB PNG with a ``tRNS`` key, else None.

    Pillow decodes such a PNG to 8-bit RGB (the high bytes) but keeps the 16-bit
    key, which no 8-bit pixel can equal: :func:`_with_rgb16_key_alpha` needs the
    file again to read the low bytes.
    """
    if (not isinstance(image, ImageFile.ImageFile) or image.format != "PNG" or image.mode != "RGB"
            or not isinstance(image.info.get("transparency"), tuple) or not image.tile
            or image.tile[0].args != "RGB;16B" or image.fp is None):
        return None
    position = image.fp.tell()
    image.fp.seek(0)
    source = image.fp.read()
    image.fp.seek(position)
    return source


def _with_rgb16_key_alpha(image: Image.Image, source: bytes) -> Image.Image:
    """The decoded 16-bit RGB PNG as RGBA, alpha 0 exactly where all 48 bits equal the ``tRNS`` key.

    The low bytes come from a second decode of ``source`` whose raw mode takes
    the other byte of each sample (same PNG filtering, other unpacking).
    """
    with Image.open(io.BytesIO(source), formats=("PNG",)) as low:
        low.tile = [tile._replace(args="RGB;16L") for tile in low.tile]
        low_bytes = np.asarray(low)
    high_bytes = np.asarray(image)
    samples = high_bytes.astype(np.uint16) << 8 | low_bytes
    key = np.asarray(image.info["transparency"], dtype=np.uint16)
    alpha = np.where((samples == key).all(axis=2), 0, 255).astype(np.uint8)
    keyed = Image.fromarray(np.dstack([high_bytes, alpha]), "RGBA")
    keyed.info = {name: value for name, value in image.info.items() if name != "transparency"}  # EXIF, ICC
    return keyed
