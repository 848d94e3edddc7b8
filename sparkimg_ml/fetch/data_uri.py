"""``data:`` URIs (RFC 2397), base64 or percent-encoded, bounded by ``maxBytes`` before decoding."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote, unquote_to_bytes

from ..errors import SourceError


def read_data_uri(source: str, max_bytes: int) -> bytes:
    """The payload of the ``data:`` URI ``source``.

    Examples
    --------
    >>> read_data_uri("data:text/plain;base64,aGVsbG8=", 100), read_data_uri("data:,a%20b", 100)
    (b'hello', b'a b')
    """
    header, comma, payload = source[5:].partition(",")
    if not comma:
        raise SourceError("invalid_source", "data: URI without a comma")
    if header.lower().endswith(";base64"):
        text = re.sub(r"\s+", "", unquote(payload) if "%" in payload else payload)
        if len(text) // 4 * 3 > max_bytes + 2:
            raise SourceError("too_large", f"data: URI payload exceeds maxBytes {max_bytes}")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SourceError("invalid_source", "invalid base64 in data: URI") from None
    else:
        data = unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise SourceError("too_large", f"data: URI payload exceeds maxBytes {max_bytes}")
    return data
