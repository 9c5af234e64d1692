"""The end of a session: every edgecheck item's record, gathered (on the xdist controller, every
worker's), the files the options ask for, and what the terminal prints after the tests.

A plugin object of its own (registered by plugin.py), so the pytest hooks module stays hooks and options.
Loaded in every run where edgecheck is installed: everything heavy is imported inside the hooks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


class SummaryCollector:
    """Gathers every edgecheck item's record; on the xdist controller it sees every worker's. At the end
    of the session it (and only it: never an xdist worker) writes the files the options ask for — the
    results, the baseline, the pytest-benchmark JSON — and prints the summary and the suggested budgets."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.records: list[dict[str, Any]] = []
        self.messages: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from edgecheck.results import RECORD_ATTRIBUTE

        record = getattr(report, RECORD_ATTRIBUTE, None)
        if isinstance(record, dict):
            self.records.append(record)

    def _results_path(self) -> Path | None:
        option = self.config.getoption("edge_results")
        if option:
            return Path(option)
        ini = self.config.getini("edge_results")
        return Path(ini[0]) if ini else None

    def _baseline_dir(self) -> Path:
        from edgecheck.session import STATE

        state = self.config.stash[STATE] if STATE in self.config.stash else None
        return state.baseline_dir() if state else self.config.rootpath / ".edgecheck" / "baselines"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return  # an xdist worker: the controller writes
        results = self._results_path()
        save = self.config.getoption("edge_save_baseline")
        path = self.config.getoption("edge_benchmark_json")
        markdown = self.config.getoption("edge_markdown")
        page = self.config.getoption("edge_html")
        job_summary = os.environ.get("GITHUB_STEP_SUMMARY")  # set by GitHub Actions for each step
        if job_summary and not any(r.get("target") or r.get("check") for r in self.records):
            job_summary = None  # a run with no edgecheck item (the project's own tests) adds nothing
        if results is None and not save and not path and not markdown and not page and not job_summary:
            return  # nothing to write: a plain run imports nothing more
        from edgecheck.report.markdown import write_markdown
        from edgecheck.report.outputs import save_run_baseline, write_latency_json, write_run_results
        from edgecheck.results import ran

        if results is not None:
            self.messages.append(write_run_results(results, self.records))
        if markdown:
            self.messages.append(write_markdown(Path(markdown), self.records))
        if job_summary:
            self.messages.append(write_markdown(Path(job_summary), self.records, append=True))
        if (save or path) and not ran(self.records):  # --co, or -k selected nothing: an empty file would mislead
            self.messages.append("edgecheck: no check ran, so no baseline and no latency JSON were written")
        else:
            if save:
                overwrite = bool(self.config.getoption("edge_overwrite_baseline"))
                self.messages.append(save_run_baseline(self._baseline_dir(), save, self.records, overwrite))
            if path:
                self.messages.append(write_latency_json(Path(path), self.records))
        if page:  # last: drawing is the step most likely to go wrong, and must cost no other file
            from edgecheck.report.html import write_html
            from edgecheck.results import results_document

            self.messages.append(write_html(Path(page), results_document(self.records)))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        checked = [r for r in self.records if r.get("target")]  # a spec that did not load has its own failure
        if checked:
            from edgecheck.report.markdown import verdict_rank
            from edgecheck.report.terminal import format_tables, row_from_record

            terminalreporter.write_sep("=", "edgecheck summary")
            # sorted, so the table is the same whatever order xdist workers reported in; in each table what needs
            # attention first (failures, then inconclusive verdicts), then the passes, then the skips
            width = getattr(getattr(terminalreporter, "_tw", None), "fullwidth", 80)  # reasons wrap to the terminal
            rows = sorted(map(row_from_record, checked),
                          key=lambda r: (r.target, r.spec, verdict_rank(r.verdict), r.backend, r.recipe, r.check, r))
            for line in format_tables(rows, width):
                terminalreporter.write_line(line)
        for message in self.messages:
            terminalreporter.write_line(message)
        if self.config.getoption("edge_suggest") and not hasattr(self.config, "workerinput"):
            from edgecheck.report.suggest import format_suggestions, suggest_budgets
            from edgecheck.results import ran

            margin = self.config.getoption("edge_suggest_margin")
            terminalreporter.write_sep("=", "edgecheck suggested budgets")
            if not ran(self.records):
                terminalreporter.write_line("no edgecheck check ran: nothing to suggest from")
            else:
                terminalreporter.write_line(format_suggestions(suggest_budgets(self.records, margin), margin))
