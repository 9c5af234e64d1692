"""The HTML report's plots, drawn by matplotlib as SVG text that the page inlines.

Why matplotlib and inline SVG: the report must be one file that opens offline, from a CI artifact or an email,
and prints. An inline SVG needs no JavaScript, no CDN and no font download (`svg.fonttype: none` leaves the
text as text, in the reader's own sans-serif font), scales to any window, and stays small (a few tens of KiB
a plot). A JavaScript charting library would have to be inlined whole (Plotly is ~3.5 MB, Vega ~800 KB) to
work offline, and the page's Content-Security-Policy then could not forbid scripts. matplotlib is the
reference plotting library of the Python ecosystem (every user's machine can install a wheel), it is imported
only when an HTML report is written (the `html` extra), and with the Agg/SVG canvas and no pyplot it keeps
no global state and touches no display or network.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from edgecheck.report.entries import LatencyFigure, LayerReport, Tradeoff
from edgecheck.units import scale_for, significant

INSTALL_HINT = "pip install 'pytest-edgecheck[html]'"
STANDING_STYLE = {  # marker, colour, filled, legend
    "meets": ("o", "#1a7f37", True, "meets every budget"),
    "partly checked": ("^", "#1a7f37", False, "passes what ran, some checks skipped"),
    "unproven": ("D", "#bf8700", False, "no budget failed, one is inconclusive"),
    "fails": ("X", "#cf222e", True, "fails a budget"),
    "not judged": ("s", "#6e7781", False, "nothing judged"),
}
_PERCENTILE = re.compile(r"^latency\.(?:estimate\.)?(p\d+(?:\.\d+)?|mean)$")
_PERCENTILE_MARKERS = {"p50": "o", "p90": "v", "p95": "^", "p99": "s", "mean": "d"}
_FONT = 9.0


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed: the HTML report cannot draw its plots."""


def require_matplotlib() -> None:
    """Import matplotlib now, or say how to install it (a message for the user, not a traceback)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotsUnavailable(f"the HTML report draws its plots with matplotlib, which is not installed: "
                               f"{INSTALL_HINT}") from None


@contextmanager
def _style(salt: str) -> Iterator[None]:
    import warnings

    # matplotlib's UserWarnings say what it did instead (very long names leave no room to lay out: drawn as they
    # are; all-zero latencies make set_xlim(0, 0): the axis widened); a project's `filterwarnings = error`
    # would turn them into errors and lose the page
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with _rc(salt):
            yield


@contextmanager
def _rc(salt: str) -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context({
        "svg.fonttype": "none",  # text stays text: the reader's font, no glyph outlines, small
        "svg.hashsalt": salt,  # ids are deterministic, and differ between the page's plots
        "text.parse_math": False,  # a '$' in a recipe or layer name is text, never TeX
        "font.family": "sans-serif",
        "font.size": _FONT,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#d0d7de",
        "grid.linewidth": 0.5,
    }):
        yield


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=72, layout="constrained")
    FigureCanvasSVG(figure)
    return figure, figure.add_subplot()


def _svg(figure: Any, label: str) -> str:
    """The figure as an <svg> element for inlining: no XML prolog, scaling with its container."""
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = out.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    from html import escape

    return text.replace("<svg", f'<svg class="plot" role="img" aria-label="{escape(label)}"', 1)


def tradeoff_svg(data: Tradeoff, title: str, salt: str) -> str:
    """Quality against artifact size, a point per entry marked by its standing, the budgets as lines."""
    sizes = [size for _, size, _ in data.points]
    divisor, unit = scale_for("B", max(sizes))
    with _style(salt):
        figure, ax = _figure(7.5, 4.2)
        for standing, (marker, colour, filled, legend) in STANDING_STYLE.items():
            mine = [(size / divisor, value) for entry, size, value in data.points if entry.standing == standing]
            if mine:
                ax.scatter([x for x, _ in mine], [y for _, y in mine], marker=marker, s=48, linewidths=1.5,
                           c=colour if filled else "white", edgecolors=colour, label=legend, zorder=3)
        for line in data.thresholds:  # the recipes each holds for are listed under the plot, in the page
            if line.axis == "x":
                ax.axvline(line.value / divisor, color="#8250df", linestyle="--", linewidth=1, zorder=1)
                ax.annotate(line.label, (line.value / divisor, 0), xycoords=("data", "axes fraction"),
                            rotation=90, ha="right", va="bottom", fontsize=_FONT - 1.5, color="#8250df",
                            xytext=(-2, 2), textcoords="offset points")
            else:
                ax.axhline(line.value, color="#0969da", linestyle=":", linewidth=1, zorder=1)
                ax.annotate(line.label, (0, line.value), xycoords=("axes fraction", "data"), ha="left",
                            va="bottom", fontsize=_FONT - 1.5, color="#0969da", xytext=(2, 1),
                            textcoords="offset points")
        xs = [size / divisor for size in sizes] + [t.value / divisor for t in data.thresholds if t.axis == "x"]
        ys = [value for _, _, value in data.points] + [t.value for t in data.thresholds if t.axis == "y"]
        _limits(ax.set_xlim, xs, floor=0.0)
        _limits(ax.set_ylim, ys)
        ax.set_xlabel(f"artifact size ({unit})")
        better = "higher is better" if data.higher_is_better else "lower is better"
        ax.set_ylabel(f"{data.quality} ({data.unit}, {better})" if data.unit else f"{data.quality} ({better})")
        ax.set_title(title, loc="left", fontsize=_FONT + 1)
        figure.legend(loc="outside lower center", ncols=4, fontsize=_FONT - 1, frameon=False)
        figure.draw_without_rendering()  # the layout settles first: labels are placed in its coordinates
        _label_points(ax, [(e.label, size / divisor, value) for e, size, value in data.points])
        return _svg(figure, title)


def _limits(setter: Any, values: list[float], floor: float | None = None) -> None:
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or abs(high) * 0.05 or 1.0
    low = low - pad if floor is None else max(floor, low - pad)
    setter(low, high + pad)


def _label_points(ax: Any, points: list[tuple[str, float, float]]) -> None:
    """Each point's name beside it, placed where it overlaps no other name or point (greedy, in points)."""
    to_screen = ax.transData.transform
    inside = ax.get_window_extent()
    taken = [_box(*to_screen((x, y)), -4, -4, 8, 8) for _, x, y in points]
    height = _FONT
    for name, x, y in points:
        px, py = to_screen((x, y))
        width = 0.55 * (_FONT - 1) * len(name)
        tries = [(dx, dy) for step in (0, 9, 18, 27) for dx, dy in ((6, 2 + step), (6, -height - 2 - step),
                                                                    (-6 - width, 2 + step),
                                                                    (-6 - width, -height - 2 - step))]
        fits = [t for t in tries if _within(_box(px, py, *t, width, height), inside)] or tries
        chosen = next((t for t in fits if not any(_overlap(_box(px, py, *t, width, height), b) for b in taken)),
                      fits[0])
        taken.append(_box(px, py, *chosen, width, height))
        far = abs(chosen[1] + (height / 2 if chosen[1] < 0 else 0)) > 10  # away from its point: a thin line to it
        ax.annotate(name, (x, y), xytext=chosen, textcoords="offset points", fontsize=_FONT - 1, va="bottom",
                    ha="left", color="#24292f",
                    arrowprops={"arrowstyle": "-", "color": "#8c959f", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3}
                    if far else None)


def _box(px: float, py: float, dx: float, dy: float, width: float, height: float) -> tuple[float, float, float, float]:
    return (px + dx, py + dy, px + dx + width, py + dy + height)


def _within(box: tuple[float, ...], extent: Any) -> bool:
    return extent.x0 <= box[0] and box[2] <= extent.x1 and extent.y0 <= box[1] and box[3] <= extent.y1


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _plotted(figures: list[LatencyFigure]) -> list[LatencyFigure]:
    """Of each entry's percentiles, the typical one (p50) and those with a budget (p95 where none has): more
    would hide each other; the table under the plot lists them all."""
    chosen = []
    for label in dict.fromkeys(f.entry.label for f in figures):
        mine = [f for f in figures if f.entry.label == label and _PERCENTILE.match(f.figure.name)]
        budgeted = [f for f in mine if f.figure.judged]
        kept = budgeted or [f for f in mine if f.figure.name.endswith(".p95")] or mine[:1]
        chosen += [f for f in mine if f.figure.name.endswith(".p50") and f not in kept] + kept
    return chosen


def latency_svg(figures: list[LatencyFigure], title: str, salt: str) -> str | None:
    """Per entry, its latency percentiles with their intervals (an open upper end as an arrow), estimates
    hollow, each budget as a red tick on the entry's row. None where no figure is a percentile."""
    plotted = _plotted(figures)
    if not plotted:
        return None
    rows = list(dict.fromkeys(f.entry.label for f in plotted))
    values = [f.figure.value for f in plotted] + [f.figure.budget for f in plotted if f.figure.budget is not None]
    ends = [x for f in plotted if f.figure.interval for x in f.figure.interval if math.isfinite(x)]
    positive = [v for v in values + ends if v > 0]
    divisor, unit = scale_for("ms", max(values))
    logarithmic = len(positive) > 1 and max(positive) / min(positive) > 30
    with _style(salt):
        figure, ax = _figure(7.5, 1.2 + 0.28 * len(rows))
        high_end = max(values + ends) / divisor * (3 if logarithmic else 1.1)
        seen: set[str] = set()
        for f in plotted:
            row = rows.index(f.entry.label)
            short = _PERCENTILE.match(f.figure.name).group(1)  # type: ignore[union-attr]
            y = row + (-0.12 if short == "p50" else 0.12)
            estimate = f.source == "estimate"
            colour = "#6e7781" if estimate else "#0969da"
            if f.figure.interval is not None:
                low, high = (x / divisor for x in f.figure.interval)
                open_end = not math.isfinite(high)
                ax.plot([low, high_end if open_end else high], [y, y], color=colour, linewidth=1.2, zorder=2,
                        marker="|", markevery=[0] if open_end else [0, 1], markersize=5)
                if open_end:
                    ax.annotate("", (high_end, y), xytext=(high_end * (0.8 if logarithmic else 0.97), y),
                                arrowprops={"arrowstyle": "->", "color": colour, "linewidth": 1.2})
            label = f"{short} ({'estimate' if estimate else 'measured'})"
            ax.scatter([f.figure.value / divisor], [y], marker=_PERCENTILE_MARKERS.get(short, "o"), s=30,
                       c="white" if estimate else colour, edgecolors=colour, linewidths=1.2, zorder=3,
                       label=label if label not in seen else None)
            seen.add(label)
            if f.figure.judged and f.figure.budget is not None:
                ax.plot([f.figure.budget / divisor] * 2, [row - 0.35, row + 0.35], color="#cf222e", linewidth=1.5,
                        zorder=4, label="budget" if "budget" not in seen else None)
                seen.add("budget")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        if logarithmic:
            from matplotlib.ticker import FuncFormatter, NullFormatter

            ax.set_xscale("log")  # its default labels are TeX, which text.parse_math turns off: plain numbers
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: significant(value)))
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.set_xlim(0, high_end)
        ax.set_xlabel(f"latency ({unit}){', log scale' if logarithmic else ''}")
        ax.set_title(title, loc="left", fontsize=_FONT + 1)
        figure.legend(loc="outside lower center", fontsize=_FONT - 1, frameon=False, ncols=4)
        return _svg(figure, title)


def layers_svg(report: LayerReport, title: str, salt: str) -> str | None:
    """Each named layer's cosine against the float model: alone and accumulated to it. None where the
    backend named no layer with figures."""
    layers = [layer for layer in report.layers if layer.single_cos is not None or layer.entire_cos is not None]
    if not layers:
        return None
    with _style(salt):
        figure, ax = _figure(7.5, 1.3 + 0.35 * len(layers))
        names = [f"[{layer.op_type}] {layer.name}" for layer in layers]
        positions = range(len(layers))
        # the error, 1 - cosine: cosines of 0.9999x differ in their last digits, the errors by factors
        single = [1 - layer.single_cos if layer.single_cos is not None else math.nan for layer in layers]
        entire = [1 - layer.entire_cos if layer.entire_cos is not None else math.nan for layer in layers]
        ax.barh([p - 0.18 for p in positions], single, height=0.34, color="#cf222e", label="the layer alone")
        ax.barh([p + 0.18 for p in positions], entire, height=0.34, color="#6e7781", label="accumulated to it")
        ax.set_xlim(left=0)
        ax.set_yticks(list(positions), names)
        ax.invert_yaxis()
        ax.set_xlabel("1 − cosine against the float model (0 is identical)")
        ax.set_title(title, loc="left", fontsize=_FONT + 1)
        figure.legend(loc="outside lower center", fontsize=_FONT - 1, frameon=False, ncols=2)
        return _svg(figure, title)
