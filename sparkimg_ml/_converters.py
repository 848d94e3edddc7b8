"""Validating Param type converters.

pyspark's converters check types only; these also check values, raise
``TypeError`` for a wrong type and ``ValueError`` for a wrong value, and list
what is allowed so a configuration mistake says how to fix it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from pyspark.ml.param import TypeConverters


def one_of(name: str, allowed: Sequence[str], case_insensitive: bool = False) -> Callable[[Any], str]:
    """A converter accepting only the strings in ``allowed``.

    Examples
    --------
    >>> one_of("colorMode", ["RGB", "L"])("rgb")
    Traceback (most recent call last):
    ...
    ValueError: colorMode must be one of 'RGB', 'L'; got 'rgb'.
    """
    allowed = list(allowed)

    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__}: {value!r}")
        if case_insensitive:
            for option in allowed:
                if option.lower() == value.lower():
                    return option
        elif value in allowed:
            return value
        options = ", ".join(repr(option) for option in allowed)
        raise ValueError(f"{name} must be one of {options}; got {value!r}.")

    return convert


def positive_int(name: str, allow_zero: bool = False) -> Callable[[Any], int]:
    """A converter for an integer ``> 0`` (or ``>= 0`` with ``allow_zero``)."""

    def convert(value: Any) -> int:
        if isinstance(value, bool) or not TypeConverters._is_integer(value):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__}: {value!r}")
        number = int(value)
        if number < 0 or (number == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name} must be {bound}; got {number}.")
        return number

    return convert


def positive_float(name: str, allow_zero: bool = False) -> Callable[[Any], float]:
    """A converter for a finite float ``> 0`` (or ``>= 0`` with ``allow_zero``)."""

    def convert(value: Any) -> float:
        if isinstance(value, bool) or not TypeConverters._is_numeric(value):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
        number = float(value)
        if not (number == number and abs(number) != float("inf")):
            raise ValueError(f"{name} must be finite; got {number}.")
        if number < 0 or (number == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name} must be {bound}; got {number}.")
        return number

    return convert


def int_list(name: str, length: int, minimum: int = 1) -> Callable[[Any], list]:
    """A converter for a list of ``length`` integers each ``>= minimum`` (JSON-native list).

    Examples
    --------
    >>> int_list("imageSize", 2)((224, 224))
    [224, 224]
    """

    def convert(value: Any) -> list:
        if isinstance(value, (str, bytes)) or not TypeConverters._can_convert_to_list(value):
            raise TypeError(f"{name} must be a list of {length} integers, got {value!r}")
        items = list(value)
        if len(items) != length or not all(
            TypeConverters._is_integer(v) and not isinstance(v, bool) for v in items
        ):
            raise ValueError(f"{name} must be a list of {length} integers; got {value!r}.")
        numbers = [int(v) for v in items]
        if any(v < minimum for v in numbers):
            raise ValueError(f"{name} values must be >= {minimum}; got {numbers}.")
        return numbers

    return convert
