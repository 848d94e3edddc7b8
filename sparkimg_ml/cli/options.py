"""Every Param of a stage as a command-line option, built from the stage's Params and its ``*ParamValues`` types.

``colorMode`` becomes ``--color-mode``; the type of the option follows the
keyword's type in the stage's ``TypedDict`` (``FeaturizerParamValues``,
``EmbedderParamValues``), its help is the Param's own documentation with Param
names written as flags, and its default is printed as a person writes it
(``1/255``, ``32x32``). Values are checked by the Params' own converters, before
Spark starts.
"""

from __future__ import annotations

import argparse
import collections.abc
import json
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

#: Where every Param is described at length.
PARAMS_URL = "https://sparkimg-ml.github.io/sparkimg_ml/reference/params/"


class UsageError(Exception):
    """A mistake in the command line or its inputs: printed as one line, exit code 2."""


def option_name(param_name: str) -> str:
    """``colorMode`` -> ``--color-mode``.

    Examples
    --------
    >>> option_name("maxConnectionsPerHost")
    '--max-connections-per-host'
    """
    return "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", param_name).lower()


def parse_bool(text: str) -> bool:
    """``true``/``yes``/``1``/``on`` or ``false``/``no``/``0``/``off``."""
    value = text.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parse_json_object(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object, e.g. '{{\"key\": \"value\"}}' ({exc.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _numbers_or_name(values: list[str]) -> Any:
    """``["imagenet"]`` -> ``"imagenet"``; ``["0.5", "0.5", "0.5"]`` -> floats."""
    if len(values) == 1:
        try:
            return [float(values[0])]
        except ValueError:
            return values[0]
    try:
        return [float(v) for v in values]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers or one preset name, got {' '.join(values)}") from None


def _size(text: str) -> Any:
    """``"224"`` -> 224, ``"224x160"`` stays text: ``imageSize`` takes both."""
    return int(text) if text.strip().isdigit() else text


#: ``typing.Union[...]`` and, on Python 3.10+, ``X | Y`` hints.
_UNION_ORIGINS = (typing.Union, getattr(types, "UnionType", typing.Union))


def _unwrap_optional(hint: Any) -> Any:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in _UNION_ORIGINS and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007 - built at run time from a list
    return hint


def _is_sequence(hint: Any) -> bool:
    return typing.get_origin(hint) in (list, tuple, collections.abc.Sequence)


def argument_for(hint: Any) -> tuple[dict[str, Any], Callable[[Any], Any] | None]:
    """argparse keywords for a constructor type hint, and a post-conversion of the parsed value.

    A size (a sequence of ints or one int) is ONE value, ``224`` or ``224x224``,
    so it never swallows the positional arguments after it.

    Examples
    --------
    >>> argument_for(bool)[0]["metavar"], argument_for(typing.List[int])[0]["nargs"]
    ('{true,false}', '+')
    >>> argument_for(typing.Union[typing.Sequence[int], int])[0]["metavar"]
    'N|HxW'
    """
    hint = _unwrap_optional(hint)
    sequences = [arg for arg in typing.get_args(hint) if _is_sequence(arg)]
    if typing.get_origin(hint) in _UNION_ORIGINS and int in typing.get_args(hint) and sequences:
        return {"type": _size, "metavar": "N|HxW"}, None
    if hint is bool:
        return {"type": parse_bool, "metavar": "{true,false}"}, None
    if hint in (int, float, str):
        return {"type": hint, "metavar": "TEXT" if hint is str else hint.__name__.upper()}, None
    if typing.get_origin(hint) in _UNION_ORIGINS:  # e.g. a list of numbers or a preset name
        return {"nargs": "+", "metavar": "VALUE"}, _numbers_or_name
    if _is_sequence(hint):
        item = (typing.get_args(hint) or (str,))[0]
        item = item if item in (int, float, str) else str
        return {"nargs": "+", "type": item, "metavar": "TEXT" if item is str else item.__name__.upper()}, None
    if typing.get_origin(hint) is dict or hint is dict:
        return {"type": _parse_json_object, "metavar": "JSON"}, None
    return {"type": json.loads, "metavar": "JSON"}, None


def human(value: Any, name: str = "") -> str:
    """A default as a person writes it on the command line.

    Examples
    --------
    >>> human(1 / 255), human([32, 32], "imageSize"), human(True), human([0.0]), human({}), human(52428800)
    ('1/255', '32x32', 'true', '0', '{}', '52428800')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        fraction = Fraction(value).limit_denominator(1000)
        if fraction.numerator == 1 and float(fraction) == value:
            return f"1/{fraction.denominator}"
        return repr(value)
    if isinstance(value, (list, tuple)):
        if name == "imageSize" and len(value) == 2:
            return f"{value[0]}x{value[1]}"
        return " ".join(human(item) for item in value) if value else "(none)"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def flag_text(text: str, names: Sequence[str], renames: Mapping[str, str]) -> str:
    """Param names inside a Param's documentation written as the command's flags.

    Examples
    --------
    >>> flag_text("fits imageSize: see padColor, scale", ["imageSize", "padColor", "scale"], {})
    'fits --image-size: see --pad-color, scale'
    """
    names = [name for name in names if name != name.lower()]  # "timeout" or "scale" may be plain words
    if not names:
        return text
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")\b")
    return pattern.sub(lambda m: renames.get(m.group(1), option_name(m.group(1))), text)


@dataclass
class StageOptions:
    """The options made from one stage's Params, and how to build the stage back from parsed arguments."""

    stage_type: type
    #: dest -> (Param name, post-conversion of the parsed value)
    options: dict[str, tuple[str, Callable[[Any], Any] | None]] = field(default_factory=dict)
    #: Values the command uses where the stage has another default.
    defaults: dict[str, Any] = field(default_factory=dict)
    #: Param name -> the flag that sets it, for messages.
    flags: dict[str, str] = field(default_factory=dict)

    def build(self, args: argparse.Namespace) -> Any:
        """The stage the options describe, each value checked by its Param's converter."""
        values = dict(self.defaults)
        for dest, (name, post) in self.options.items():
            value = getattr(args, dest)
            if value is not None:
                try:
                    values[name] = post(value) if post else value
                except argparse.ArgumentTypeError as exc:
                    raise UsageError(f"{self.flags[name]}: {exc}") from None
        stage = self.stage_type()
        for name, value in values.items():
            try:
                stage.setParams(**{name: value})
            except (TypeError, ValueError) as exc:
                raise UsageError(f"{self.flags[name]}: {flag_text(str(exc), [name], self.flags)}") from None
        return stage


def add_stage_options(
    parser: argparse.ArgumentParser, stage_type: type, hints_from: type, *,
    defaults: Mapping[str, Any] | None = None, renames: Mapping[str, str] | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None, shown_defaults: Mapping[str, str] | None = None,
    required: Sequence[str] = (), choices: Mapping[str, Sequence[str]] | None = None,
) -> StageOptions:
    """One option per Param of ``stage_type``, typed from the ``TypedDict`` ``hints_from``.

    ``renames`` gives a Param another flag (``outputFormat`` -> ``--tensor-format``),
    ``aliases`` more flags, ``defaults`` the command's own defaults, and
    ``shown_defaults`` a default described in words.
    """
    stage = stage_type()
    hints = typing.get_type_hints(hints_from)
    renames = dict(renames or {})
    names = sorted(param.name for param in stage.params)
    flags = {name: renames.get(name, option_name(name)) for name in names}
    group = parser.add_argument_group(
        f"{stage_type.__name__} Params",
        f"every Param of {stage_type.__name__} as --param-name; each is described at {PARAMS_URL}")
    result = StageOptions(stage_type, defaults=dict(defaults or {}), flags=flags)
    for param in sorted(stage.params, key=lambda p: p.name):
        keywords, post = argument_for(hints.get(param.name, str))
        if choices and param.name in choices:
            keywords["metavar"] = "{" + ",".join(choices[param.name]) + "}"
        if shown_defaults and param.name in shown_defaults:
            shown = f" (default: {shown_defaults[param.name]})"
        elif param.name in result.defaults:
            shown = f" (default: {human(result.defaults[param.name], param.name)})"
        elif stage.hasDefault(param) and stage.getOrDefault(param) is not None:
            shown = f" (default: {human(stage.getOrDefault(param), param.name)})"
        else:
            shown = ""
        help_text = (flag_text(param.doc, names, flags) + shown).replace("%", "%%")
        dest = f"param_{param.name}"
        parser_names = [flags[param.name]] + list((aliases or {}).get(param.name, []))
        group.add_argument(*parser_names, dest=dest, default=None, help=help_text,
                           required=param.name in required, **keywords)
        result.options[dest] = (param.name, post)
    return result
