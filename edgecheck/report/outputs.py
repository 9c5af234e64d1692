"""Files a session writes at its end from every item's properties: a baseline, the latency JSON.

Called only on the xdist controller (or a plain session), after every worker has reported, so one
process writes each file, atomically.
"""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from edgecheck.baseline import BaselineError, figures_from_properties, save_baseline
from edgecheck.errors import EdgecheckError


def run_environment(items: list[dict[str, str]]) -> dict[str, str]:
    """What the figures depend on, from the items' own facts (the first one that says)."""
    environment = {"python": platform.python_version()}
    for item in items:
        # the runtime and threads differ per item: each record's own figures are what is compared
        for key, name in (("edge.env.machine", "machine"), ("edge.host", "host"), ("edge.env.governor", "governor")):
            if key in item:
                environment.setdefault(name, item[key])
    return environment


def save_run_baseline(config: pytest.Config, name: str, items: list[dict[str, str]]) -> str:
    from edgecheck.session import STATE

    state = config.stash[STATE] if STATE in config.stash else None
    directory = state.baseline_dir() if state else config.rootpath / ".edgecheck" / "baselines"
    records = dict(found for found in map(figures_from_properties, items) if found is not None)
    try:
        path = save_baseline(directory, name, records, run_environment(items),
                             overwrite=bool(config.getoption("edge_overwrite_baseline")))
    except BaselineError as exc:
        return f"edgecheck: baseline {name!r} NOT saved: {exc}"
    return f"edgecheck: baseline {name!r} saved: {len(records)} checks' figures in {path}"


def write_latency_json(path: Path, items: list[dict[str, str]]) -> str:
    from edgecheck.report.benchmark_json import benchmark_document, entries_from_properties, machine_info, \
        write_benchmark_json

    entries = entries_from_properties(items)
    try:
        write_benchmark_json(path, benchmark_document(entries, machine_info()))
    except (OSError, EdgecheckError) as exc:
        return f"edgecheck: latency JSON NOT written to {path}: {exc}"
    return f"edgecheck: {len(entries)} latency results written in pytest-benchmark's format to {path}"
