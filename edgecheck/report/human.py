"""Figures in units people read: 0.0169678 MiB is 17.4 KiB, 0.000226 ms is 226 ns. For views of results (the HTML
report); a budget keeps the spec's own words beside it, so the reader can find the line they wrote.
"""

from __future__ import annotations

import math

from edgecheck.checks.result import Measurement, fmt
from edgecheck.units import MIB

# each unit edgecheck writes figures in, as a ladder of (factor from that unit, name), smallest first
_BYTES = [(1.0, "B"), (2.0**10, "KiB"), (float(MIB), "MiB"), (2.0**30, "GiB")]
_LADDERS: dict[str, tuple[float, list[tuple[float, str]]]] = {
    "B": (1.0, _BYTES),
    "MiB": (float(MIB), _BYTES),
    "ms": (1e-3, [(1e-9, "ns"), (1e-6, "µs"), (1e-3, "ms"), (1.0, "s")]),
}


def scale(unit: str, magnitude: float) -> tuple[float, str]:
    """(divisor, unit) that shows `magnitude` (in `unit`) as 1 to 1023 of a human unit; (1, unit) for units
    without a ladder (points, %, dB, nodes, plain ratios)."""
    if unit not in _LADDERS or not math.isfinite(magnitude) or magnitude == 0:
        return 1.0, unit
    base, ladder = _LADDERS[unit]
    absolute = abs(magnitude) * base
    chosen = ladder[0]
    for factor, name in ladder:
        if absolute >= factor:
            chosen = (factor, name)
    return chosen[0] / base, chosen[1]


def number(value: float) -> str:
    """3 significant digits (4 from 1000), no float noise; nan and infinities by name."""
    if not math.isfinite(value):
        return fmt(value)
    if value == 0:
        return "0"
    digits = max(3, int(math.floor(math.log10(abs(value)))) + 1)
    text = f"{value:.{digits}g}"
    return text if "e" not in text else fmt(value)


def human(value: float, unit: str, like: float | None = None) -> str:
    """`value` in a human unit chosen for `like` (default: itself), e.g. human(0.0169678, 'MiB') == '17.4 KiB'."""
    divisor, name = scale(unit, value if like is None else like)
    return f"{number(value / divisor)} {name}".rstrip()


def figure_text(m: Measurement) -> str:
    """The figure with its interval or range, in one human unit: '54.4 µs (tail lower bound ≥ 18.1 µs)'."""
    text = human(m.value, m.unit)
    if m.interval is not None:
        low, high = m.interval
        if math.isinf(high) and high > 0:
            span = f"≥ {human(low, m.unit, like=m.value)}"
        else:
            divisor, name = scale(m.unit, m.value)
            span = f"{number(low / divisor)}–{number(high / divisor)} {name}".rstrip()
        text += f" ({m.interval_kind} {span})"
    return text


def budget_text(m: Measurement) -> str:
    """The budget as the spec said it, with the human unit after it where that reads differently:
    '≤ 0.05 MiB (51.2 KiB)'."""
    if not m.judged or m.budget is None:
        return ""
    sign = "≤" if m.bound == "max" else "≥"
    said = m.budget_text or f"{fmt(m.budget)} {m.unit}".rstrip()
    plain = human(m.budget, m.unit)
    return f"{sign} {said}" + (f" ({plain})" if _unit_of(plain) != m.unit and m.unit in _LADDERS else "")


def margin_text(m: Measurement) -> str:
    """Headroom in the figure's human unit, signed: '+5.0 KiB' left, '−1.2 pts' over."""
    margin = m.margin
    if margin is None or not math.isfinite(margin):
        return "" if margin is None else fmt(margin)
    sign = "+" if margin > 0 else "−" if margin < 0 else "±"
    return sign + human(abs(margin), m.unit, like=max(abs(m.value), abs(m.budget or 0.0)))


def _unit_of(text: str) -> str:
    return text.rsplit(" ", 1)[-1] if " " in text else ""
