"""Units edgecheck's figures and limits are written in, defined once, and how a figure reads to a person:
a few significant digits, in the unit that suits its size (0.000226 ms is 226 ns; 0.0169678 MiB is 17.4 KiB).

Every view that prints figures for people (the terminal table, the Markdown summary, failure messages) formats
them here, so one figure reads the same everywhere. Files for programs (results JSON, baselines, JUnit
properties) keep the raw numbers.
"""

from __future__ import annotations

import math

KIB = 2**10
MIB = 2**20  # bytes in a MiB: sizes, memory figures and data-file limits are all in MiB
GIB = 2**30
MINUS = "\u2212"  # a change's sign: "−9.1 %" (a figure itself keeps the ASCII "-", so it can be pasted into YAML)

_DURATIONS = ((1e3, "s"), (1.0, "ms"), (1e-3, "µs"), (1e-6, "ns"))  # milliseconds in each unit, largest first
_BYTES = ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB"), (1, "B"))


def significant(value: float, digits: int = 3) -> str:
    """A number with `digits` significant digits and no trailing zeros: 97.2, 0.015, 12346 (a whole number keeps
    every digit below a billion), 6.68e-6 below 0.0001, 4.47e36 from 1e9."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude < -4 or magnitude >= 9:  # 37 digits of an overflowing output read as noise: 4.47e36
        mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
        return f"{_trim(mantissa)}e{int(exponent)}"
    decimals = max(digits - 1 - magnitude, 0)
    text = _trim(f"{value:.{decimals}f}")
    return "0" if text in ("-0", "0") else text


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _scale(values: tuple[float, ...], scales: tuple[tuple[float, str], ...]) -> tuple[float, str]:
    """The unit for a group of figures: the largest one the biggest finite figure reaches (or the smallest)."""
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    biggest = max(finite, default=0.0)
    for factor, name in scales:
        if biggest >= factor * 0.9995:  # what rounds to 1000 µs reads as 1 ms, 1023.8 KiB as 1 MiB
            return factor, name
    return scales[-1] if finite else scales[1 if scales is _DURATIONS else -1]


def scale_for(unit: str, magnitude: float) -> tuple[float, str]:
    """(divisor, human unit) for figures of `unit` as large as `magnitude`: (1e-3, "µs") for 0.02 ms; a plot's
    axis divides by it. Units other than ms, MiB and B are kept as they are: (1, unit)."""
    if unit == "ms":
        return _scale((magnitude,), _DURATIONS)
    if unit in ("MiB", "B"):
        per = MIB if unit == "MiB" else 1
        factor, name = _scale((magnitude * per,), _BYTES)
        return factor / per, name
    return 1.0, unit


def scaled(values: tuple[float, ...], unit: str, digits: int = 3) -> tuple[list[str], str]:
    """Figures of one unit written in the one human unit that suits the largest: (["11.6", "66.4"], "µs") for
    (0.0116, 0.0664) ms. Units other than ms, MiB and B are kept as they are."""
    if unit not in ("ms", "MiB", "B"):
        return [significant(v, digits) for v in values], unit
    finite = [abs(v) for v in values if math.isfinite(v)]
    factor, name = scale_for(unit, max(finite, default=0.0))
    return [significant(v / factor, digits) for v in values], name


def quantity(value: float, unit: str, digits: int = 3) -> str:
    """A figure with its unit, as a person reads it: "226 ns", "17.4 KiB", "97.2 %", "0.4 pt", "2.7×", "1 node"."""
    (number,), name = scaled((value,), unit, digits)
    return join_unit(number, name, value)


def join_unit(number: str, unit: str, value: float = math.nan) -> str:
    """A number written with its unit: points as "pt", a ratio as "×", a count of one without its plural s."""
    if unit in ("pts", "pt"):
        return f"{number} pt"
    if unit == "x":
        return f"{number}×"
    if unit == "nodes" and value == 1:
        return f"{number} node"
    return f"{number} {unit}" if unit else number


def signed(value: float, unit: str, digits: int = 3) -> str:
    """A change with its sign: "+1.2 ms", "−9.1 %", "±0 pt"."""
    if value == 0:
        return "±" + quantity(0.0, unit, digits)
    text = quantity(abs(value), unit, digits)
    return ("+" if value > 0 else MINUS) + text
