"""Facts about an image's source, read from bytes already in hand: size, format, mode, orientation, length, SHA-256.

:func:`source_info` reads only the header (no pixel is decoded) and hashes the
bytes; it is what ``sourceInfoCol`` writes for every row, and it can be called on
one image in a plain Python process. It never raises: a fact that cannot be read
from the bytes is None (bytes that are no image still have a length and a hash).

Examples
--------
>>> import io
>>> from PIL import Image
>>> buffer = io.BytesIO()
>>> Image.new("RGB", (40, 30)).save(buffer, "PNG")
>>> info = source_info(buffer.getvalue())
>>> info.width, info.height, info.format, info.mode, info.orientation
(40, 30, 'PNG', 'RGB', None)
>>> info.bytes == len(buffer.getvalue()), len(info.sha256)
(True, 64)
>>> source_info(b"<html>not an image</html>").format is None
True
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import astuple, dataclass

from PIL import Image

from ..errors import SourceError
from . import png
from .decode import _DECODE_ERRORS, _openers_for, exif_orientation

#: The fields of a source-info struct and their Spark SQL types, in order.
SOURCE_INFO_FIELDS: tuple[tuple[str, str], ...] = (
    ("width", "int"), ("height", "int"), ("format", "string"), ("mode", "string"),
    ("bytes", "bigint"), ("orientation", "int"), ("sha256", "string"),
)
#: Pillow-style mode of the Spark image struct's channel counts (its pixels are stored BGR(A)).
_STRUCT_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class SourceInfo:
    """What a row's source is, before any decoding or resizing.

    Attributes
    ----------
    width, height : int or None
        Size in pixels as stored (before the EXIF orientation is applied).
    format : str or None
        The format identified from the content (Pillow's name: ``"JPEG"``, ``"PNG"``, ``"WEBP"``, ...).
    mode : str or None
        Pillow's mode of the stored pixels (``"RGB"``, ``"L"``, ``"P"``, ``"RGBA"``, ``"CMYK"``, ``"I;16"``, ...).
    bytes : int or None
        Length of the encoded bytes.
    orientation : int or None
        The EXIF ``Orientation`` tag (1-8), None when the image has none.
    sha256 : str or None
        Hex SHA-256 of the encoded bytes (the same bytes give the same hash, whatever their name).
    """

    width: int | None = None
    height: int | None = None
    format: str | None = None
    mode: str | None = None
    bytes: int | None = None
    orientation: int | None = None
    sha256: str | None = None

    def as_tuple(self) -> tuple:
        """The values in :data:`SOURCE_INFO_FIELDS` order."""
        return astuple(self)


def source_info(data: bytes | bytearray | memoryview) -> SourceInfo:
    """The :class:`SourceInfo` of encoded image bytes, from their header and a hash (no pixel is decoded)."""
    length = len(data)
    digest = hashlib.sha256(data).hexdigest()  # releases the GIL on large buffers
    try:
        data = png.without_unreadable_metadata(data)  # as the decoder does: text chunks carry no pixels
        with Image.open(io.BytesIO(data), formats=_openers_for(data)) as image:
            return SourceInfo(image.width, image.height, image.format, image.mode, length,
                              exif_orientation(image), digest)
    except (SourceError, Image.DecompressionBombError, Image.DecompressionBombWarning, *_DECODE_ERRORS):
        return SourceInfo(bytes=length, sha256=digest)


def struct_source_info(height: int, width: int, n_channels: int) -> SourceInfo:
    """The :class:`SourceInfo` of a Spark image struct row: already decoded, so no format, bytes or hash.

    Examples
    --------
    >>> struct_source_info(30, 40, 3)
    SourceInfo(width=40, height=30, format=None, mode='RGB', bytes=None, orientation=None, sha256=None)
    """
    return SourceInfo(width=width, height=height, mode=_STRUCT_MODES.get(n_channels))

