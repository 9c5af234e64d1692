"""How a spec field's value is described in the spec's own words, so a mistake is answered with what the
field takes ("latency_ms: a mapping of percentiles in ms, e.g. {p95: 2}") instead of pydantic's type names.

A field says it through a `Says` in its annotation (`Mebibytes = Annotated[float, Says(...)]`), a model
through a `says` class attribute (`LatencyBudget.says`); a third party's budget does the same. The loader
(`describe_mistake`) finds the `Says` of the field an error is at and, for a number written with a unit
("10KB", "2ms", "5%"), works out the figure to write in the field's own unit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

# Per unit a field is in: the suffixes a user may write and how many of the field's unit each one is.
# kB, MB and GB are decimal (10 MB is 9.54 MiB), KiB, MiB and GiB binary; a bare k/m/g reads as binary.
_KIB, _MIB = 1 / 1024, 1.0
_SCALES: dict[str, dict[str, float]] = {
    "MiB": {"b": 1 / 2**20, "bytes": 1 / 2**20, "k": _KIB, "kb": 1e3 / 2**20, "kib": _KIB, "m": _MIB,
            "mb": 1e6 / 2**20, "mib": _MIB, "g": 1024.0, "gb": 1e9 / 2**20, "gib": 1024.0},
    "ms": {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "sec": 1e3},
    "s": {"ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0},
    "dB": {"db": 1.0},
    "fraction": {"%": 0.01},
    "points": {"%": 1.0, "pt": 1.0, "pts": 1.0, "points": 1.0},
}
_SHOWN_UNIT = {"k": "KiB", "kb": "kB", "kib": "KiB", "m": "MiB", "mb": "MB", "mib": "MiB", "g": "GiB", "gb": "GB",
               "gib": "GiB", "b": "bytes", "bytes": "bytes", "µs": "us", "sec": "s", "db": "dB",
               "pt": "points", "pts": "points"}
_WITH_UNIT = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ%]+)\s*$")
# pydantic error types that mean "not the kind of value this field takes" and those that mean "out of range"
_WRONG_KIND = {"model_type", "model_attributes_type", "dict_type", "float_type", "float_parsing", "int_type",
               "int_parsing", "int_from_float", "string_type", "list_type", "tuple_type", "bool_type",
               "bool_parsing", "finite_number"}
_BOUNDS = {"greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}",
           "less_than": "less than {lt}", "less_than_equal": "at most {le}"}


@dataclass(frozen=True)
class Says:
    """What a field takes, in the spec's words ('a number of MiB'), an example ('0.5'), and the unit a
    number written with a suffix is converted to ('MiB', 'ms', 's', 'dB', 'fraction'; '' for none)."""

    what: str
    example: str
    unit: str = ""


Mebibytes = Annotated[float, Says("a number of MiB (2**20 bytes)", "0.5", "MiB")]
Milliseconds = Annotated[float, Says("a number of milliseconds", "2", "ms")]
Seconds = Annotated[float, Says("a number of seconds", "0.5", "s")]
Decibels = Annotated[float, Says("a number of decibels", "30", "dB")]
Fraction = Annotated[float, Says("a fraction from 0 to 1", "0.98", "fraction")]
Cosine = Annotated[float, Says("a cosine similarity from -1 to 1", "0.999", "fraction")]
Ratio = Annotated[float, Says("a ratio (0.01 is 1 %)", "0.01", "fraction")]
Tolerance = Annotated[float, Says("a number in the output's own units", "0.001")]
Points = Annotated[float, Says("a number in the metric's unit (top1 and top-k are percent, 0-100)", "95", "points")]
Factor = Annotated[float, Says("a factor, original size / artifact size", "3")]
NodeCount = Annotated[int, Says("a whole number of nodes", "0")]


def says_of(annotation: Any, metadata: Sequence[Any] = ()) -> Says | None:
    """The `Says` of a field: in its own metadata, in its annotation (through Optional and Annotated),
    or the `says` of the model it is."""
    for item in metadata:
        if isinstance(item, Says):
            return item
    for option in _options(annotation):
        if get_origin(option) is Annotated:
            found = next((m for m in get_args(option)[1:] if isinstance(m, Says)), None)
            if found is not None:
                return found
            option = get_args(option)[0]
        found = getattr(option, "says", None)
        if isinstance(found, Says):
            return found
    return None


def _options(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Union or type(annotation).__name__ == "UnionType":
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def describe_mistake(says: Says, error: dict[str, Any]) -> str | None:
    """A pydantic error at a field that `says` describes, in the spec's words; None where the error is one
    of edgecheck's own messages (a validator's), which already are."""
    kind, given = error["type"], error.get("input")
    if kind in _BOUNDS:
        bound = _BOUNDS[kind].format(**{k: _number(v) for k, v in (error.get("ctx") or {}).items()})
        hint = _percent_hint(says, given)
        return f"{says.what}, {bound}, e.g. {says.example}{hint}; got {_shown(given)}"
    if kind not in _WRONG_KIND:
        return None
    example = says.example
    if isinstance(given, str) and (converted := _converted(says, given)) is not None:
        example = converted
    return f"{says.what}, e.g. {example}; got {_shown(given)}"


def _converted(says: Says, text: str) -> str | None:
    """'0.0098 for 10 KiB' for '10KB' in a MiB field: the figure in the field's unit, where the suffix is one."""
    match = _WITH_UNIT.match(text)
    scales = _SCALES.get(says.unit, {})
    if not match or match.group(2).lower() not in scales:
        return None
    value, suffix = float(match.group(1)), match.group(2).lower()
    figure = value * scales[suffix]
    if figure < 0:  # no field in a spec takes a negative figure: the usual example says more
        return None
    written = f"{_number(value)}%" if suffix == "%" else f"{_number(value)} {_SHOWN_UNIT.get(suffix, suffix)}"
    if says.unit == "MiB" and suffix in ("kb", "mb", "gb"):  # decimal: say so, a MiB is 2**20 bytes
        written += f" ({value * scales[suffix] * 2**20:,.0f} bytes)"
    return f"{_number(figure)} for {written}"


def _percent_hint(says: Says, given: Any) -> str:
    """' (0.9 for 90 %)' where a fraction field got a number of percent."""
    if says.unit == "fraction" and isinstance(given, (int, float)) and not isinstance(given, bool) \
            and 2 <= given <= 100:
        return f" ({_number(given / 100)} for {_number(given)} %)"
    return ""


def _number(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{round(value, 3):.12g}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"
    return str(value)


def _shown(value: Any) -> str:
    """The value as the user wrote it: a mapping and a list by their kind, text quoted."""
    if isinstance(value, dict):
        return f"a mapping {{{', '.join(map(str, value))}}}" if value else "an empty mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else _number(value)
