"""Validating Param type converters, shared by every stage.

pyspark's converters check types only; these also check values, raise
``TypeError`` for a wrong type and ``ValueError`` for a wrong value, and list
what is allowed so a configuration mistake says how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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


def off_or_at_least(name: str, minimum: float) -> Callable[[Any], float]:
    """A converter for ``0`` (off) or a finite float ``>= minimum``.

    Examples
    --------
    >>> off_or_at_least("reducingGap", 2.0)(3)
    3.0
    >>> off_or_at_least("reducingGap", 2.0)(1.5)
    Traceback (most recent call last):
    ...
    ValueError: reducingGap must be 0 (off) or a finite number >= 2.0; got 1.5.
    """

    def convert(value: Any) -> float:
        if isinstance(value, bool) or not TypeConverters._is_numeric(value):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
        number = float(value)
        if not (number == 0 or minimum <= number < float("inf")):
            raise ValueError(f"{name} must be 0 (off) or a finite number >= {minimum}; got {value!r}.")
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


def image_size(name: str) -> Callable[[Any], list]:
    """A converter for ``[height, width]``; one integer means a square (as torchvision takes it), and
    ``"HxW"`` is height by width.

    Examples
    --------
    >>> image_size("imageSize")(224), image_size("imageSize")((32, 48)), image_size("imageSize")("96x128")
    ([224, 224], [32, 48], [96, 128])
    """
    pair = int_list(name, 2)

    def convert(value: Any) -> list:
        if isinstance(value, str):
            height, sep, width = value.lower().partition("x")
            if not (sep and height.strip().isdigit() and width.strip().isdigit()):
                raise ValueError(f"{name} must be [height, width], one number for a square, or 'HxW' such as "
                                 f"'224x224'; got {value!r}.")
            value = [int(height), int(width)]
        elif TypeConverters._is_integer(value) and not isinstance(value, bool):
            value = [value, value]
        elif isinstance(value, (list, tuple)) and len(value) == 1:  # ``--size 224`` on the command line
            value = [value[0], value[0]]
        return pair(value)

    return convert


def boolean(name: str) -> Callable[[Any], bool]:
    """A converter accepting only ``True`` or ``False`` (not 0/1 or strings).

    Examples
    --------
    >>> boolean("exifTranspose")(False)
    False
    """

    def convert(value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {type(value).__name__}: {value!r}")
        return value

    return convert


def rgb_color(name: str) -> Callable[[Any], list]:
    """A converter for an ``[R, G, B]`` colour: three integers in [0, 255].

    Examples
    --------
    >>> rgb_color("padColor")((114, 114, 114))
    [114, 114, 114]
    >>> rgb_color("padColor")([0, 0, 256])
    Traceback (most recent call last):
    ...
    ValueError: padColor must be three integers in [0, 255] (R, G, B); got [0, 0, 256].
    """
    to_list = int_list(name, 3, minimum=0)

    def convert(value: Any) -> list:
        try:
            numbers = to_list(value)
        except ValueError:
            numbers = []
        if len(numbers) != 3 or any(v > 255 for v in numbers):
            raise ValueError(f"{name} must be three integers in [0, 255] (R, G, B); got {value!r}.")
        return numbers

    return convert


def float_list_or_preset(name: str, presets: Sequence[str], lengths: Sequence[int],
                         positive: bool = False) -> Callable[[Any], Any]:
    """A converter for a list of finite floats (of one of ``lengths``) or a preset name.

    A preset is stored by name (lower case) so its values can follow other
    Params; a list is stored as plain floats.

    Examples
    --------
    >>> convert = float_list_or_preset("std", ["imagenet"], [1, 3, 4], positive=True)
    >>> convert("ImageNet"), convert((0.5, 0.5, 0.5))
    ('imagenet', [0.5, 0.5, 0.5])
    >>> convert([0.0])
    Traceback (most recent call last):
    ...
    ValueError: std values must be > 0; got [0.0].
    """
    presets = [p.lower() for p in presets]
    sizes = " or ".join(str(n) for n in lengths)

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            if value.lower() in presets:
                return value.lower()
            raise ValueError(f"{name} must be a list of {sizes} numbers or one of {presets}; got {value!r}.")
        if isinstance(value, bytes) or not TypeConverters._can_convert_to_list(value):
            raise TypeError(f"{name} must be a list of numbers or one of {presets}, got {value!r}")
        items = list(value)
        if len(items) not in lengths or not all(
            TypeConverters._is_numeric(v) and not isinstance(v, bool) for v in items
        ):
            raise ValueError(f"{name} must be a list of {sizes} numbers or one of {presets}; got {value!r}.")
        numbers = [float(v) for v in items]
        if not all(float("-inf") < v < float("inf") for v in numbers):
            raise ValueError(f"{name} values must be finite; got {numbers}.")
        if positive and any(v <= 0 for v in numbers):
            raise ValueError(f"{name} values must be > 0; got {numbers}.")
        return numbers

    return convert


def string_list(name: str, check: Callable[[str], Any] | None = None) -> Callable[[Any], list]:
    """A converter for a list of strings, each passed to ``check`` (which raises ``ValueError``).

    Examples
    --------
    >>> string_list("allowedHosts")(("a.example", "b.example"))
    ['a.example', 'b.example']
    >>> string_list("allowedHosts")("a.example")
    Traceback (most recent call last):
    ...
    TypeError: allowedHosts must be a list of strings, got 'a.example'
    """

    def convert(value: Any) -> list:
        if isinstance(value, (str, bytes)) or not TypeConverters._can_convert_to_list(value):
            raise TypeError(f"{name} must be a list of strings, got {value!r}")
        items = list(value)
        for item in items:
            if not isinstance(item, str):
                raise TypeError(f"{name} must be a list of strings; got {type(item).__name__}: {item!r}")
            if check is not None:
                check(item)
        return items

    return convert


def json_object(name: str, check: Callable[[list[str], Any], Any] | None = None
                ) -> Callable[[Any], dict]:
    """A converter for a JSON-native dict with string keys (nested dicts, lists and scalars).

    ``check(path, value)`` is called for every scalar, with ``path`` the list of
    keys leading to it, and may raise ``ValueError``. The result is a deep copy.

    Examples
    --------
    >>> json_object("storageOptions")({"s3": {"anon": True, "retries": [1, 2]}})
    {'s3': {'anon': True, 'retries': [1, 2]}}
    >>> json_object("storageOptions")({"s3": {"retries": (1, 2)}})
    Traceback (most recent call last):
    ...
    TypeError: storageOptions must hold only JSON values (dict, list, str, int, float, bool, None); got tuple at s3.retries
    """

    def copy(value: Any, path: list[str]) -> Any:
        if isinstance(value, dict):
            result = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(f"{name} keys must be strings; got {key!r} at {'.'.join(path) or 'top level'}")
                result[key] = copy(item, path + [key])
            return result
        if isinstance(value, list):
            return [copy(item, path) for item in value]
        if value is None or isinstance(value, (str, bool, int, float)):
            if check is not None:
                check(path, value)
            return value
        raise TypeError(
            f"{name} must hold only JSON values (dict, list, str, int, float, bool, None); "
            f"got {type(value).__name__} at {'.'.join(path)}"
        )

    def convert(value: Any) -> dict:
        if not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict, got {type(value).__name__}: {value!r}")
        return copy(value, [])

    return convert


def non_empty_string(name: str) -> Callable[[Any], str]:
    """A converter for a string with at least one non-blank character.

    Examples
    --------
    >>> non_empty_string("modelUri")("  ")
    Traceback (most recent call last):
    ...
    ValueError: modelUri must not be empty.
    """

    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__}: {value!r}")
        if not value.strip():
            raise ValueError(f"{name} must not be empty.")
        return value

    return convert


def _integers(name: str, value: Any) -> list[int]:
    if isinstance(value, (str, bytes)) or not TypeConverters._can_convert_to_list(value):
        raise TypeError(f"{name} must be a list of integers, got {type(value).__name__}: {value!r}")
    items = list(value)
    if not items or not all(TypeConverters._is_integer(v) and not isinstance(v, bool) for v in items):
        raise ValueError(f"{name} must be a non-empty list of integers; got {value!r}.")
    return [int(v) for v in items]


def shape_list(value: Any) -> list[int]:
    """Converter for a tensor ``shape``: positive sizes, at most one ``-1`` (inferred, as in numpy).

    Examples
    --------
    >>> shape_list((32, 32, 3))
    [32, 32, 3]
    >>> shape_list([-1, 32, -1])
    Traceback (most recent call last):
    ...
    ValueError: shape may contain at most one -1 (the inferred size); got [-1, 32, -1].
    """
    sizes = _integers("shape", value)
    if any(size < 1 and size != -1 for size in sizes):
        raise ValueError(f"shape sizes must be positive integers or -1; got {sizes}.")
    if sizes.count(-1) > 1:
        raise ValueError(f"shape may contain at most one -1 (the inferred size); got {sizes}.")
    return sizes


def axes_list(value: Any) -> list[int]:
    """Converter for ``axes``: a permutation of ``0 .. n-1`` (numpy ``transpose`` order).

    Examples
    --------
    >>> axes_list([2, 0, 1])
    [2, 0, 1]
    >>> axes_list([0, 0, 1])
    Traceback (most recent call last):
    ...
    ValueError: axes must be a permutation of 0..2 (each axis exactly once); got [0, 0, 1].
    """
    axes = _integers("axes", value)
    if sorted(axes) != list(range(len(axes))):
        raise ValueError(
            f"axes must be a permutation of 0..{len(axes) - 1} (each axis exactly once); got {axes}."
        )
    return axes
