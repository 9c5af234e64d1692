"""The run as Markdown, for a pull request or a CI job summary: one section per target, what needs attention
first (failures and inconclusive verdicts, each with its whole reason), then what passed, then the skips
counted by reason. Built from the items' records, like the terminal table, so it reads the same with or
without xdist, and from a results file (`edgecheck report results.json`) as from a live run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edgecheck.report.figures import record_reasons
from edgecheck.report.terminal import row_from_record, short_reason
from edgecheck.results import read_results_records

ATTENTION = ("FAIL", "FAIL (inconclusive)", "inconclusive")
# the order rows are told in: failures, then inconclusive verdicts, then passes, then the rest (skips)
VERDICT_ORDER = {"FAIL": 0, "FAIL (inconclusive)": 0, "inconclusive": 1, "pass": 2}


def verdict_rank(verdict: str) -> int:
    return VERDICT_ORDER.get(verdict, len(set(VERDICT_ORDER.values())))


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes and HTML escaped."""
    text = " ".join(str(text).split())
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("`", "'"))


def why(record: Mapping[str, Any]) -> str:
    """The whole reason of a failure or an inconclusive verdict, as the terminal table gives it under the row (the
    figure, budget and margin have their columns): every breach and doubt the check gave, else the failure's own
    message."""
    return "; ".join(record_reasons(record))


def counts_text(records: Iterable[Mapping[str, Any]]) -> str:
    """'1 failed, 2 inconclusive, 60 passed, 3 skipped': a spec file that did not load counts as failed."""
    counts: Counter[str] = Counter()
    for record in records:
        verdict = row_from_record(record).verdict if record.get("target") else "FAIL"
        counts["failed" if verdict.startswith("FAIL") else verdict] += 1
    words = {"failed": "failed", "inconclusive": "inconclusive", "pass": "passed", "skip": "skipped"}
    return ", ".join(f"{counts[key]} {word}" for key, word in words.items() if counts[key]) or "no edgecheck check ran"


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def markdown_summary(records: Iterable[Mapping[str, Any]], title: str = "edgecheck") -> str:
    """The run's Markdown: a headline with the counts, then per target the attention table, the passes and the
    skips. Records of spec files that did not load are listed first: nothing of them was checked."""
    records = list(records)
    rows = sorted(((r, row_from_record(r)) for r in records if r.get("target")), key=lambda pair: pair[1])
    broken = [r for r in records if not r.get("target")]
    lines = [f"## {title}: " + counts_text(records), ""]
    if rows or broken:  # (with no record the headline says that no check ran)
        lines += [ship_line([row.verdict for _, row in rows], len(broken)), ""]
    if broken:
        lines += ["**Spec files that did not load** (nothing in them was checked)", ""]
        lines += [f"- `{cell(str(r.get('spec', '')))}`: {cell(why(r))}" for r in broken] + [""]
    compared = any(row.baseline for _, row in rows)  # --edge-baseline: the changes against it get a column
    change = ("vs baseline",) if compared else ()
    for target in dict.fromkeys(row.target for _, row in rows):
        mine = [(r, row) for r, row in rows if row.target == target]
        attention = [(r, row) for r, row in mine if row.verdict in ATTENTION]
        attention.sort(key=lambda pair: verdict_rank(pair[1].verdict))  # failures before inconclusive
        passed = [row for _, row in mine if row.verdict == "pass"]
        skipped = Counter(short_reason("skipped", str(r.get("reason", ""))) for r, row in mine if row.verdict == "skip")
        lines += [f"### target {target}", ""]
        if attention:
            lines += ["**Needs attention**", ""]
            lines += markdown_table(("verdict", "spec", "check", "backend", "recipe", "measured", "budget", "margin",
                                     *change, "why"),
                                    [(row.verdict, row.spec, row.check, row.backend, row.recipe, row.measured,
                                      row.budget, row.margin, *((row.baseline,) if compared else ()), why(r))
                                     for r, row in attention]) + [""]
        if passed:
            lines += [f"<details><summary><b>Passed</b> ({len(passed)})</summary>", ""]  # folded: a PR reads the rest
            lines += markdown_table(("spec", "check", "backend", "recipe", "measured", "budget", "margin", *change),
                                    [(row.spec, row.check, row.backend, row.recipe, row.measured, row.budget,
                                      row.margin, *((row.baseline,) if compared else ())) for row in passed])
            lines += ["", "</details>", ""]
        if skipped:
            lines += [f"**Skipped** ({sum(skipped.values())})", ""]
            lines += [f"- {n} × {cell(reason)}" for reason, n in skipped.most_common()] + [""]
    return "\n".join(lines).rstrip() + "\n"


def ship_line(verdicts: list[str], broken: int = 0) -> str:
    """The answer a pull request wants first, from the verdicts: a failure is "don't ship"; no failure but an
    inconclusive verdict is not a pass; skips are said, never counted as checked."""
    failed = sum(v.startswith("FAIL") for v in verdicts) + broken
    unsure = verdicts.count("inconclusive")
    skipped = verdicts.count("skip")
    if failed:
        return f"**Don't ship:** {failed} check{'s' * (failed != 1)} failed" + (" or did not load" if broken else "") + "."
    if unsure:
        return (f"**Not proven:** nothing failed, but {unsure} verdict{'s are' if unsure != 1 else ' is'} "
                "inconclusive (the figure cannot be told from its budget; each says why below).")
    if skipped:
        return f"**Passed what ran:** {skipped} check{'s' * (skipped != 1)} skipped and {'were' if skipped != 1 else 'was'} not checked."
    return "**Ship:** every check passed." if verdicts else "**Nothing was checked.**"


def report_command(results: Path, output: Path | None) -> int:
    """Print or write the Markdown of a results file; 2 with the reason where the file cannot be read."""
    import sys

    try:
        records = read_results_records(results)
    except ValueError as exc:
        print(f"edgecheck report: {results} {exc}", file=sys.stderr)
        return 2
    text = markdown_summary(records)
    if output is None:
        sys.stdout.write(text)
        return 0
    message = write_markdown(output, records)
    print(message)
    return 0 if " NOT " not in message else 1


def write_markdown(path: Path, records: list[Mapping[str, Any]], append: bool = False) -> str:
    """The run's Markdown summary (`--edge-markdown`, or appended to $GITHUB_STEP_SUMMARY); the line to print."""
    text = markdown_summary(records)
    if not append:
        return write_text(path, text, "Markdown summary")
    try:  # a job summary collects every step's part: a blank line after what is there
        with open(path, "ab") as out:
            end = out.tell()
        if end:
            with open(path, "rb") as existing:
                existing.seek(end - 1)
                text = ("\n" if existing.read(1) == b"\n" else "\n\n") + text
        with open(path, "a", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        return f"edgecheck: Markdown summary NOT appended to {path}: {exc}"
    return f"edgecheck: Markdown summary appended to {path}"


def write_text(path: Path, text: str, what: str) -> str:
    """Write a Markdown document atomically; the line to print."""
    from edgecheck.results import write_atomically

    try:
        write_atomically(path, text.encode("utf-8"))
    except OSError as exc:
        return f"edgecheck: {what} NOT written to {path}: {exc}"
    return f"edgecheck: {what} written to {path}"
