"""Plugins a run had no use for stay out of it: Hypothesis' pytest plugin (installed with Hypothesis, which
edgecheck's `dev` extra brings) imports the whole hypothesis package in its terminal summary, about a
second on a small machine, to report on Hypothesis tests. A session whose every test was an edgecheck
check ran none, so that summary has nothing to say: the plugin is unregistered before it is called.
"""

from __future__ import annotations

import sys

import pytest

HYPOTHESIS_PLUGIN = "hypothesispytest"  # its pytest11 entry point's name
HYPOTHESIS_STATISTICS = "--hypothesis-show-statistics"


class UnusedHypothesis:
    """Counts the session's tests and which of them were edgecheck's (their reports carry a record, on an
    xdist controller too); at the end of a session of edgecheck checks alone, with hypothesis never
    imported here, Hypothesis' plugin is unregistered. Its summary hook is called after this hook (from the
    terminal reporter's wrapper of `pytest_sessionfinish`), so it never runs. Asked for statistics
    (--hypothesis-show-statistics), the plugin stays and prints its section."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.tests: set[str] = set()
        self.checks: set[str] = set()  # edgecheck's

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from edgecheck.results import RECORD_ATTRIBUTE  # here, not at import: a plain run imports nothing more

        self.tests.add(report.nodeid)
        if isinstance(getattr(report, RECORD_ATTRIBUTE, None), dict):
            self.checks.add(report.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if "hypothesis" in sys.modules or not self.tests or self.tests != self.checks:
            return  # hypothesis is here already, or a test that is not an edgecheck check ran: leave it be
        if self.config.getoption(HYPOTHESIS_STATISTICS, default=False):
            return
        plugin = self.config.pluginmanager.get_plugin(HYPOTHESIS_PLUGIN)
        if plugin is not None:
            self.config.pluginmanager.unregister(plugin)
