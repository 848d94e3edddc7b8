"""The ``sourceInfoCol`` Param: an optional struct column of facts about each row's source."""

from __future__ import annotations

from typing import TypedDict, TypeVar

from pyspark.ml.param import Param, Params, TypeConverters


class SourceInfoParamValues(TypedDict, total=False):
    """``sourceInfoCol`` as a constructor keyword (for type checkers)."""

    sourceInfoCol: str | None


S = TypeVar("S", bound="HasSourceInfoCol")


class HasSourceInfoCol(Params):
    """Mixin: the optional ``sourceInfoCol``, a struct per row of what its source is.

    The struct holds ``width``, ``height`` (as stored, before EXIF orientation),
    ``format``, ``mode``, ``bytes``, ``orientation`` (the EXIF tag, null when absent)
    and ``sha256`` of the encoded bytes, read from the header of bytes already
    fetched (no pixel is decoded for it). It is null when nothing was read (a
    failed fetch or a null source); a row whose bytes do not decode keeps its
    ``bytes`` and ``sha256``.

    Examples
    --------
    >>> class Stage(HasSourceInfoCol):
    ...     pass
    >>> Stage().getSourceInfoCol() is None
    True
    >>> Stage().setSourceInfoCol("source").getSourceInfoCol()
    'source'
    """

    sourceInfoCol: Param[str] = Param(
        Params._dummy(), "sourceInfoCol",
        "optional output column: a struct per row of the source's width, height, format, mode, bytes, "
        "EXIF orientation and SHA-256, read from the bytes already fetched (null when nothing was read).",
        typeConverter=TypeConverters.toString,
    )

    def getSourceInfoCol(self) -> str | None:
        """Gets the value of sourceInfoCol, or None when no source-info column is written."""
        return self.getOrDefault(self.sourceInfoCol) if self.isDefined(self.sourceInfoCol) else None

    def setSourceInfoCol(self: S, value: str) -> S:
        """Sets the value of :py:attr:`sourceInfoCol`."""
        return self._set(sourceInfoCol=value)
