"""The run as one self-contained HTML page, for a reviewer who opens a CI artifact: per spec and target the
budget table (failures and inconclusive verdicts first, each with its whole reason), accuracy (or parity)
against artifact size with the budgets drawn and the entries that meet every budget marked, latency per entry
with its intervals and where each figure came from, and the per-layer error a backend gave for a failing entry.

Offline by construction: the plots are inline SVG (edgecheck/report/plots.py says why), the styles inline,
no script, and a Content-Security-Policy that forbids any fetch. Every string from a spec, a model or an
error message is escaped. Built from the results document (`edgecheck report results.json -o report.html`)
or, in a run, from the items' records (`--edge-html PATH`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from edgecheck.report.entries import STANDINGS, Section, latency_figures, layer_reports, sections, tradeoff
from edgecheck.report.figures import budget_text, figure_text
from edgecheck.report.markdown import ATTENTION, counts_text, ship_line, why
from edgecheck.report.terminal import row_from_record, short_reason
from edgecheck.results import record_result

HTML_SUFFIXES = (".html", ".htm")
# no script, no fetch of any kind: styles inline, plots inline SVG (`default-src 'none'` covers fonts and images)
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_ORDER = {verdict: rank for rank, verdict in enumerate((*ATTENTION, "pass", "skip"))}
_VERDICT_CLASS = {"FAIL": "fail", "FAIL (inconclusive)": "fail", "inconclusive": "inconc", "pass": "pass",
                  "skip": "skip"}
_STYLE = """
:root{color-scheme:light;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg2:#f6f8fa}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);
margin:0 auto;max-width:1200px;padding:16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 4px;border-bottom:1px solid var(--line);
padding-bottom:4px}h3{font-size:15px;margin:20px 0 6px}
.muted,.meta{color:var(--muted)}.meta{display:flex;flex-wrap:wrap;gap:4px 18px;margin:6px 0;padding:0}
.meta li{list-style:none}code{font-size:12.5px;background:var(--bg2);padding:1px 4px;border-radius:4px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;min-width:100%}
th,td{border:1px solid var(--line);padding:3px 6px;text-align:left;vertical-align:top}
th{background:var(--bg2);white-space:nowrap}td.num{white-space:nowrap}td.why{min-width:22em;max-width:48em}
.v{font-weight:600;border-radius:10px;padding:0 7px;white-space:nowrap;font-size:12px}
.v.fail{background:#ffebe9;color:#a40e26}.v.inconc{background:#fff8c5;color:#7d4e00}
.v.pass{background:#dafbe1;color:#116329}.v.skip{background:#eaeef2;color:#59636e}
svg.plot{width:100%;height:auto;max-width:820px;display:block}
.empty{border:1px dashed var(--line);padding:10px;color:var(--muted);max-width:800px}
details{margin:6px 0}summary{cursor:pointer;color:var(--muted)}
nav ul{padding-left:18px;margin:4px 0}dl.legend dt{font-weight:600}dl.legend dd{margin:0 0 4px 12px}
@media (max-width:640px){body{padding:8px;font-size:13px}td.why{min-width:12em}}
@media print{.scroll{overflow:visible}details{display:block}body{max-width:none}}
"""


def html_report(document: Mapping[str, Any]) -> str:
    """The page for a results document (its metadata and records)."""
    from edgecheck.report.plots import require_matplotlib

    require_matplotlib()
    records = [r for r in document.get("records", []) if isinstance(r, Mapping)]
    parts = [_head(records), _metadata(document), _contents(records), _legend()]
    broken = [r for r in records if not r.get("target")]
    if broken:
        parts.append("<h2>Spec files that did not load</h2><p>Nothing in them was checked.</p><ul>"
                     + "".join(f"<li><code>{_e(r.get('spec', ''))}</code>: {_e(why(r))}</li>" for r in broken)
                     + "</ul>")
    for number, section in enumerate(sections(records)):
        parts.append(_section(section, number))
    return "\n".join(parts) + "\n</body>\n</html>\n"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _ship(records: list[Mapping[str, Any]]) -> str:
    """The Markdown summary's ship line, as HTML: don't ship / not proven / passed what ran / ship."""
    checked = [r for r in records if r.get("target")]
    if not records:
        return ""
    line = ship_line([row_from_record(r).verdict for r in checked], len(records) - len(checked))
    words, colon, rest = line.replace("**", "").partition(":")
    return f'<p class="ship"><strong>{_e(words + colon)}</strong>{_e(rest)}</p>'


def _head(records: list[Mapping[str, Any]]) -> str:
    counts = counts_text(records)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>edgecheck: {_e(counts)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>edgecheck report</h1>\n<p><strong>{_e(counts)}</strong></p>{_ship(records)}")


def _metadata(document: Mapping[str, Any]) -> str:
    environment = document.get("environment")
    facts = [("edgecheck", document.get("edgecheck", "")), ("written", document.get("created", ""))]
    if isinstance(environment, Mapping):
        facts += [(str(k), v) for k, v in environment.items()]
    return '<ul class="meta">' + "".join(f"<li>{_e(k)}: <code>{_e(v)}</code></li>" for k, v in facts if v) + "</ul>"


def _contents(records: list[Mapping[str, Any]]) -> str:
    found = sections(records)
    if not found:
        return "<p class=\"empty\">No edgecheck check ran: there is nothing to show.</p>"
    items = "".join(f'<li><a href="#{s.anchor}">{_e(s.spec_name or s.spec)} on {_e(s.target)}</a> '
                    f'<span class="muted">({_e(counts_text(s.records))})</span></li>' for s in found)
    return f"<nav><ul>{items}</ul></nav>"


def _legend() -> str:
    return ("<details><summary>How to read this report</summary><dl class=\"legend\">"
            "<dt>pass / FAIL</dt><dd>The figure is within its budget, or not, beyond doubt.</dd>"
            "<dt>inconclusive</dt><dd>Neither pass nor fail can be said: the budget lies inside the measurement's "
            "noise (its 95% confidence interval), or inside the range an estimate leaves open, or the figure cannot "
            "be held to its budget at all (an uncalibrated estimate). pytest counts it as passed, with a warning, "
            "unless <code>--edge-inconclusive=fail</code>: then it reads FAIL (inconclusive). Measure on the device, "
            "or take more samples, to decide it.</dd>"
            "<dt>skip</dt><dd>The check could not run here (no backend, no board, no estimate); its reason is "
            "listed under the table.</dd>"
            "<dt>Entry</dt><dd>One artifact on one backend: a recipe (<code>none</code> is the original model). "
            "It <em>meets every budget</em> when every check planned for it ran and passed; it is <em>partly "
            "checked</em> when each check that ran passed but some were skipped.</dd>"
            "<dt>Where a latency came from</dt><dd><em>measured</em> on this host or on a board, with a 95% "
            "confidence interval; <em>estimate</em> from a cost model or a compiler, with the range it states "
            "(drawn hollow; an arrow is an open upper end: a lower bound).</dd></dl></details>")


def _section(section: Section, number: int) -> str:
    title = f"{section.spec_name or section.spec} on {section.target}"
    host = any(r.get("target_is_host") for r in section.records)
    parts = [f'<section id="{_e(section.anchor)}"><h2>{_e(title)}</h2>',
             f'<p class="muted">spec <code>{_e(section.spec)}</code> · target <code>{_e(section.target)}</code>'
             f'{" (this machine)" if host else ""} · {_e(counts_text(section.records))}</p>',
             ]
    attention, passed, skipped = _budget_rows(section)
    if attention:
        parts += [f"<h3>Needs attention ({len(attention)})</h3>", _table(attention, reason=True)]
    elif passed:
        parts.append(f'<p><span class="v pass">every check that ran passed</span> ({len(passed)})</p>')
    else:
        parts.append(_empty("No check of this spec ran on this target."))
    entries = section.entries()
    data = tradeoff(entries)
    salt = f"edgecheck-{number}"
    heading = "Accuracy against size" if data is None or data.quality == "accuracy" else "Parity against size"
    parts.append(f"<h3>{heading}</h3>")
    from edgecheck.report.plots import latency_svg, layers_svg, tradeoff_svg

    if data is None or not data.points:
        parts.append(_empty("No point to plot: " + _no_quality(section, data)))
    else:
        parts.append(tradeoff_svg(data, f"{data.quality} against artifact size, {section.target}", salt + "q"))
        standings = Counter(entry.standing for entry, _, _ in data.points)
        unrun = sum(entry.skipped for entry, _, _ in data.points if entry.standing == "partly checked")
        told = {"meets": "meet every budget",
                "partly checked": f"partly checked (passes what ran, {unrun} check{'s' * (unrun != 1)} skipped)"}
        parts.append('<p class="muted">' + _e(", ".join(f"{standings[s]} {told.get(s, s)}"
                                                         for s in STANDINGS if standings[s])) + "</p>")
    if data is not None and data.points and any(t.recipes for t in data.thresholds):
        parts.append("<details><summary>Which budget line holds for which recipe</summary><ul>"
                     + "".join(f"<li>{_e(t.label)}: {_e(', '.join(t.recipes) or 'every recipe')}</li>"
                               for t in data.thresholds) + "</ul></details>")
    if data is not None and data.missing:
        parts.append("<details><summary>Entries not on the plot</summary><ul>"
                     + "".join(f"<li>{_e(m)}</li>" for m in data.missing) + "</ul></details>")
    parts.append("<h3>Latency</h3>")
    figures = latency_figures(entries)
    svg = latency_svg(figures, f"latency per entry, {section.target}", salt + "l") if figures else None
    if svg is None:
        parts.append(_empty("No latency figure: " + _skipped_because(section, "latency")))
    else:
        parts += [svg, _latency_table(figures)]
    reports = layer_reports(entries)
    failing = [e for e in entries for c in ("parity", "accuracy")
               if (r := e.result(c)) is not None and r.verdict == "fail"]
    if reports or failing:
        parts.append("<h3>Per-layer error of failing entries</h3>")
    for report in reports:
        layer_svg = layers_svg(report, f"{report.entry.label}: {report.check}", f"{salt}e{len(parts)}")
        parts.append(f"<p>{_e(report.entry.label)}, {_e(report.check)}: {_e(report.heading)}</p>")
        parts.append(layer_svg if layer_svg is not None else _empty("The backend named no layer with figures."))
    named = {(r.entry.label, r.check) for r in reports}
    quiet = sorted({e.label for e in failing if not any((e.label, c) in named for c in ("parity", "accuracy"))})
    if quiet:
        parts.append(_empty("No per-layer error for " + ", ".join(quiet) + ": their backends do not report one "
                            "(rknn-toolkit2's accuracy_analysis is the one that does)."))
    if passed:
        parts += [f"<details><summary>Passed ({len(passed)})</summary>", _table(passed, reason=False), "</details>"]
    parts += [_skips(skipped), "</section>"]
    return "\n".join(parts)


def _empty(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


def _no_quality(section: Section, data: Any) -> str:
    checks = {str(r.get("check")) for r in section.records}
    if data is not None:
        return "no entry has both the figure and its artifact's size (listed below)."
    if not checks & {"accuracy", "parity"}:
        return "the spec asks for neither an accuracy nor a parity budget on this target."
    return _skipped_because(section, "accuracy", "parity")


def _skipped_because(section: Section, *checks: str) -> str:
    mine = [r for r in section.records if r.get("check") in checks]
    if not mine:
        return f"the spec asks for no {' or '.join(checks)} budget on this target."
    reasons = Counter(short_reason(str(r.get("outcome", "")), str(r.get("reason", ""))) or
                      row_from_record(r).verdict for r in mine if r.get("outcome") != "passed")
    if not reasons:
        return f"the {' and '.join(checks)} checks gave no figure to plot."
    return "; ".join(f"{n} × {reason}" for reason, n in reasons.most_common())


def _budget_rows(section: Section) -> tuple[list[str], list[str], Counter[str]]:
    """The table rows of the checks that need attention (failures first, then inconclusive verdicts), of those
    that passed, and the skips counted by reason."""
    rows = [(r, row_from_record(r)) for r in section.records]
    first_seen = {key: n for n, key in enumerate(dict.fromkeys(str(r.get("recipe", "")) for r, _ in rows))}
    shown = sorted((pair for pair in rows if pair[1].verdict != "skip"),
                   key=lambda p: (_ORDER.get(p[1].verdict, 1), first_seen[str(p[0].get("recipe", ""))],
                                  str(p[0].get("backend")), str(p[0].get("check"))))
    attention, passed = [], []
    for record, row in shown:
        try:
            result = record_result(record)
        except ValueError:
            result = None
        artifact = (result.facts.get("artifact", "") if result is not None else "")
        needs = row.verdict != "pass"
        (attention if needs else passed).append(
            f'<tr><td><span class="v {_VERDICT_CLASS.get(row.verdict, "skip")}">{_e(row.verdict)}</span></td>'
            f"<td>{_e(row.check)}</td><td>{_e(row.recipe)}"
            + (f'<br><span class="muted">{_e(artifact)}</span>' if artifact else "") + "</td>"
            f"<td>{_e(row.backend)}</td>"
            f'<td>{_e(row.measured)}</td><td class="num">{_e(row.budget)}</td><td class="num">{_e(row.margin)}</td>'
            + (f'<td class="why">{_e(why(record))}</td>' if needs else "") + "</tr>")
    skipped = Counter(short_reason("skipped", str(r.get("reason", ""))) for r, row in rows if row.verdict == "skip")
    return attention, passed, skipped


def _table(rows: list[str], reason: bool) -> str:
    header = "".join(f"<th>{h}</th>" for h in ("verdict", "check", "recipe / artifact", "backend", "figure", "budget",
                                               "margin", *(("reason",) if reason else ())))
    return f'<div class="scroll"><table><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _skips(skipped: Counter[str]) -> str:
    if not skipped:
        return ""
    return (f"<p><strong>Skipped</strong> ({sum(skipped.values())})</p><ul>"
            + "".join(f"<li>{n} × {_e(reason)}</li>" for reason, n in skipped.most_common()) + "</ul>")


def _latency_table(figures: list[Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(f.entry.label)}</td><td>{_e(f.figure.name)}</td><td class=\"num\">{_e(figure_text(f.figure, 'latency'))}"
        f"</td><td class=\"num\">{_e(budget_text(f.figure, 'latency'))}</td><td>{_e(f.source)}</td></tr>"
        for f in figures if f.figure.judged or f.figure.name.rsplit(".", 1)[-1] in ("p50", "p95", "p99"))
    sources = sorted({(f.source, f.source_text) for f in figures if f.source_text})
    said = "".join(f"<li><strong>{_e(source)}</strong>: {_e(text)}</li>" for source, text in sources)
    return ("<details><summary>The figures, and where they came from</summary><div class=\"scroll\"><table><thead>"
            "<tr><th>entry</th><th>figure</th><th>value</th><th>budget</th><th>source</th></tr></thead><tbody>"
            + rows + f"</tbody></table></div><ul>{said}</ul></details>")


def write_html(path: Path, document: Mapping[str, Any]) -> str:
    """Write the page atomically (only `path` changes); the line to print, saying NOT where it was not written."""
    from edgecheck.report.plots import PlotsUnavailable
    from edgecheck.results import write_atomically

    try:
        page = html_report(document).encode("utf-8")
        write_atomically(path, page)
    except (PlotsUnavailable, OSError) as exc:
        return f"edgecheck: HTML report NOT written to {path}: {exc}"
    except Exception as exc:  # noqa: BLE001  a plot that cannot be drawn must not end the session in a traceback
        return f"edgecheck: HTML report NOT written to {path}: {type(exc).__name__}: {exc}"
    return f"edgecheck: HTML report written to {path} ({len(page) / 1024:.0f} KiB)"


def html_command(results: Path, output: Path | None) -> int:
    """`edgecheck report RESULTS.json -o report.html`: 2 where the file cannot be read or matplotlib is missing,
    1 where the page could not be written."""
    import sys

    from edgecheck.report.plots import PlotsUnavailable, require_matplotlib
    from edgecheck.results import read_results_document

    try:
        require_matplotlib()
    except PlotsUnavailable as exc:
        print(f"edgecheck report: {exc}", file=sys.stderr)
        return 2
    try:
        document = read_results_document(results)
    except ValueError as exc:
        print(f"edgecheck report: {results} {exc}", file=sys.stderr)
        return 2
    if output is None:
        sys.stdout.write(html_report(document))
        return 0
    message = write_html(output, document)
    print(message)
    return 0 if " NOT " not in message else 1
