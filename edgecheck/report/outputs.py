"""Files a session writes at its end from every item's record: the results, a baseline, the latency JSON.

Called only on the xdist controller (or a plain session), after every worker has reported, so one
process writes each file, atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgecheck.baseline import BaselineError, figures_from_record, save_baseline
from edgecheck.errors import EdgecheckError
from edgecheck.results import facts, ran, results_document, run_environment, write_results


def save_run_baseline(directory: Path, name: str, records: list[Mapping[str, Any]], overwrite: bool) -> str:
    """Store the figures of every item that produced a result as baseline `name`; the line to print."""
    done = ran(records)
    figures, places = {}, {}
    for record in done:
        found = figures_from_record(record)
        if found is not None:
            figures[found[0]] = found[1]
            place = facts(record).get("env.machine")
            if place:
                places[found[0]] = place
    try:
        path = save_baseline(directory, name, figures, run_environment(done), overwrite=overwrite, places=places)
    except BaselineError as exc:
        return f"edgecheck: baseline {name!r} NOT saved: {exc}"
    return f"edgecheck: baseline {name!r} saved: {len(figures)} checks' figures in {path}"


def write_latency_json(path: Path, records: list[Mapping[str, Any]]) -> str:
    from edgecheck.report.benchmark_json import benchmark_document, entries_from_records, machine_info, \
        write_benchmark_json

    entries = entries_from_records(ran(records))
    try:
        write_benchmark_json(path, benchmark_document(entries, machine_info()))
    except (OSError, EdgecheckError) as exc:
        return f"edgecheck: latency JSON NOT written to {path}: {exc}"
    return f"edgecheck: {len(entries)} latency results written in pytest-benchmark's format to {path}"


def write_run_results(path: Path, records: list[Mapping[str, Any]]) -> str:
    """Every item's record as one JSON document (`--edge-results`); the line to print."""
    try:
        write_results(path, results_document(records))
    except (OSError, ValueError) as exc:
        return f"edgecheck: results NOT written to {path}: {exc}"
    return f"edgecheck: {len(records)} results written to {path}"

