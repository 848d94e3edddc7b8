"""Params that say what happens to rows whose image cannot be read: ``handleInvalid``, ``errorCol``."""

from __future__ import annotations

from typing import TypedDict, TypeVar

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasHandleInvalid

from ..schema import DEFAULT_HANDLE_INVALID, HANDLE_INVALID_OPTIONS
from . import converters as conv


class InvalidRowParamValues(TypedDict, total=False):
    """``handleInvalid`` and ``errorCol`` as constructor keywords (for type checkers)."""

    handleInvalid: str
    errorCol: str | None


R = TypeVar("R", bound="HasInvalidRowParams")


class HasInvalidRowParams(HasHandleInvalid):
    """Mixin: ``handleInvalid`` (error / skip / keep) and the optional ``errorCol`` of reasons.

    Examples
    --------
    >>> class Stage(HasInvalidRowParams):
    ...     pass
    >>> stage = Stage().setHandleInvalid("keep").setErrorCol("image_error")
    >>> stage.getHandleInvalid(), stage.getErrorCol()
    ('keep', 'image_error')
    """

    handleInvalid: Param[str] = Param(
        Params._dummy(), "handleInvalid",
        "how to handle rows whose image cannot be fetched or decoded: 'error' (fail the job, naming "
        "the row's source and the cause), 'skip' (drop the row) or 'keep' (null vector; the reason "
        "goes to errorCol when set).",
        typeConverter=conv.one_of("handleInvalid", HANDLE_INVALID_OPTIONS),
    )
    errorCol: Param[str] = Param(
        Params._dummy(), "errorCol",
        "optional output column of failure reasons ('code: detail', null when the row is fine).",
        typeConverter=TypeConverters.toString,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(handleInvalid=DEFAULT_HANDLE_INVALID)

    def setHandleInvalid(self: R, value: str) -> R:
        """Sets the value of :py:attr:`handleInvalid`."""
        return self._set(handleInvalid=value)

    def getErrorCol(self) -> str | None:
        """Gets the value of errorCol, or None when no reason column is written."""
        return self.getOrDefault(self.errorCol) if self.isDefined(self.errorCol) else None

    def setErrorCol(self: R, value: str) -> R:
        """Sets the value of :py:attr:`errorCol`."""
        return self._set(errorCol=value)
