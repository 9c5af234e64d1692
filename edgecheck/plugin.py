"""pytest hooks and options only: spec files become test items; items delegate to the executor.

Loaded in every pytest run of every project where edgecheck is installed, so this module imports
nothing heavy: spec parsing, onnx and onnxruntime load inside hooks, on first use.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from edgecheck.plan import PlannedCheck
    from edgecheck.session import EdgeSession


def _leave_own_modules_unrewritten() -> None:
    """pytest rewrites the asserts of every module of a distribution that registers a pytest11 plugin, so a
    plugin's helpers fail with rich messages. edgecheck's asserts are internal invariants, not test assertions,
    and rewriting costs a parse and compile of each of its modules at import wherever pytest cannot keep the
    rewritten bytecode (where $PYTHONDONTWRITEBYTECODE is set, as many CI images set it, or site-packages is read
    only): about 1 s in every run, in the session and in every xdist worker. Modules imported after this one load
    as Python loads them, from their own bytecode. pytest has no public way to unmark a package; where its hook
    does not keep the names this way (another pytest), nothing changes."""
    for finder in sys.meta_path:
        marked = getattr(finder, "_must_rewrite", None)
        if type(finder).__name__ == "AssertionRewritingHook" and isinstance(marked, set):
            marked.discard("edgecheck")
            answered = getattr(finder, "_marked_for_rewrite_cache", None)
            if isinstance(answered, dict):  # names asked about already (this module, the package): asked again
                for name in [n for n in answered if n == "edgecheck" or n.startswith("edgecheck.")]:
                    del answered[name]


_leave_own_modules_unrewritten()

DEFAULT_PATTERNS = ["specs/*.yaml", "specs/*.yml"]
MARKER = "edge"
# What pytest_addoption declares (option dest or ini name → default), so pytest_configure can tell
# which settings a run gives; the same every time pytest declares them.
_OPTION_DEFAULTS: dict[str, Any] = {}
_INI_DEFAULTS: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgecheck", "edgecheck: model budgets per edge device")
    group.addoption(
        "--edge-target", action="append", dest="edge_targets", default=[], metavar="DEVICE",
        help="Check only for this device profile (repeatable; 'all' = every known profile). "
        "Default: ini edge_targets, else every target each spec names.",
    )
    group.addoption(
        "--edge-backend", action="append", dest="edge_backends", default=[], metavar="NAME",
        help="Check only on this backend (repeatable). Default: the spec's or the device profile's backends.",
    )
    group.addoption(
        "--edge-strict", action="store_true", dest="edge_strict", default=None,
        help="Fail, instead of skip, checks whose backend cannot run here (for CI). Default: off (ini edge_strict).",
    )
    group.addoption(
        "--edge-cache-dir", dest="edge_cache_dir", default=None, metavar="DIR",
        help="Cache of compressed models and outputs, by content. Default: ini edge_cache_dir, "
        "$EDGECHECK_CACHE_DIR, else .edgecheck/cache under the rootdir.",
    )
    group.addoption(
        "--edge-no-cache", action="store_true", dest="edge_no_cache", default=False,
        help="Neither read nor write the cache: every artifact is rebuilt and every model run again.",
    )
    group.addoption(
        "--edge-worker-timeout", dest="edge_worker_timeout", type=float, default=None, metavar="SECONDS",
        help="Wall-clock limit of one job in a worker process (load and run one artifact); a hung runtime is killed "
        "and its check fails. Default: ini edge_worker_timeout, else 300.",
    )
    group.addoption(
        "--edge-worker-memory", dest="edge_worker_memory", type=int, default=None, metavar="MIB",
        help="Memory limit of a worker process in MiB; a runtime that outgrows it fails its check. "
        "Default: ini edge_worker_memory, else half of this machine's memory.",
    )
    group.addoption(
        "--edge-inconclusive", dest="edge_inconclusive", choices=("warn", "fail"), default=None,
        help="A latency budget inside the measurement's noise: 'warn' passes with a warning, 'fail' fails. "
        "A spec's latency_ms.inconclusive wins. Default: ini edge_inconclusive, else warn.",
    )
    group.addoption(
        "--edge-save-baseline", dest="edge_save_baseline", default=None, metavar="NAME",
        help="Store this run's figures as baseline NAME (in ini edge_baseline_dir, default .edgecheck/baselines), "
        "refusing to replace an existing one unless --edge-overwrite-baseline. Default: none.",
    )
    group.addoption(
        "--edge-overwrite-baseline", action="store_true", dest="edge_overwrite_baseline", default=False,
        help="Let --edge-save-baseline replace a baseline of the same name. Default: off.",
    )
    group.addoption(
        "--edge-baseline", dest="edge_baseline", default=None, metavar="NAME",
        help="Compare this run against baseline NAME with the specs' regression budgets. Default: none.",
    )
    group.addoption(
        "--edge-benchmark-json", dest="edge_benchmark_json", default=None, metavar="PATH",
        help="Also write the latency figures in pytest-benchmark's JSON format (for `pytest-benchmark compare` "
        "and dashboards). Default: none.",
    )
    group.addoption(
        "--edge-suggest", action="store_true", dest="edge_suggest", default=False,
        help="Print budgets derived from this run's figures (with a margin, and parity no tighter than the "
        "noise between FP32 runs) as YAML to paste into a spec; never edits a spec. Default: off.",
    )
    group.addoption(
        "--edge-suggest-margin", dest="edge_suggest_margin", type=float, default=0.10, metavar="FRACTION",
        help="Margin of --edge-suggest over the measured figures. Default: 0.10.",
    )
    group.addoption(
        "--edge-results", dest="edge_results", default=None, metavar="PATH",
        help="Write every edgecheck item's record (identity, outcome, reason, figures, budgets, verdict) as one "
        "versioned JSON document, for reports and comparisons between runs. Default: ini edge_results, else none.",
    )
    group.addoption(
        "--edge-markdown", dest="edge_markdown", default=None, metavar="PATH",
        help="Write the run's summary as Markdown (a table per target, failures and inconclusive verdicts first "
        "with their whole reason). Under GitHub Actions it is also appended to $GITHUB_STEP_SUMMARY.",
    )
    group.addoption(
        "--edge-html", dest="edge_html", default=None, metavar="PATH",
        help="Write the run as one self-contained HTML page (budget tables, accuracy against size, latency with "
        "intervals; opens offline). Needs matplotlib: pip install 'pytest-edgecheck[html]'. Default: none.",
    )
    group.addoption(
        "--edge-board", action="append", dest="edge_board", default=[], metavar="DEVICE=SSH",
        help="Run DEVICE's items on this board for this run, e.g. rk3588=ssh://ci@10.0.0.5 or "
        "raspberry-pi-4b=pi@pi-1?python=/opt/edge/bin/python (repeatable; replaces the boards file's boards of "
        "that device). Default: the boards file (ini edge_boards, else $EDGECHECK_BOARDS).",
    )

    def addini(name: str, help: str, *, default: Any, **kwargs: Any) -> None:
        parser.addini(name, help, default=default, **kwargs)
        _INI_DEFAULTS[name] = default

    addini("edge_results", "As --edge-results (relative to the ini file). Default: none.", type="paths", default=[])
    addini("edge_cache_dir", "As --edge-cache-dir (relative to the ini file).", type="paths", default=[])
    addini("edge_worker_timeout", "As --edge-worker-timeout. Default: 300.", default="")
    addini("edge_worker_memory", "As --edge-worker-memory. Default: half of this machine's memory.", default="")
    addini("edge_inconclusive", "As --edge-inconclusive. Default: warn.", default="")
    addini("edge_baseline_dir", "Folder of stored baselines. Default: .edgecheck/baselines under the rootdir.",
           type="paths", default=[])
    addini("edge_spec_patterns", "Patterns of spec file paths relative to the rootdir, separated by "
           f"spaces or lines. Default: {' '.join(DEFAULT_PATTERNS)}.", type="args", default=DEFAULT_PATTERNS)
    addini("edge_targets", "Default device targets, as --edge-target. Default: none (the specs' own).",
           type="args", default=[])
    addini("edge_devices_dir", "Folder of project device profiles (*.yaml), added to or overriding the "
           "built-in ones. Default: none.", type="paths", default=[])
    addini("edge_ops_dir", "Folder of project operator tables (*.yaml), added to or overriding the "
           "built-in ones (edgecheck ops --tables lists them). Default: none.", type="paths", default=[])
    addini("edge_strict", "As --edge-strict. Default: false.", type="bool", default=False)
    addini("edge_progress_after", "Seconds a step (a conversion, a timing, reference outputs) runs before edgecheck "
           "says so on the terminal; 0: every step. Default: $EDGECHECK_PROGRESS_AFTER, else 2.", default="")
    addini("edge_boards", "The lab's boards file (YAML: boards: [{name, device, ssh, python}]); a device target "
           "with a board runs there. Default: $EDGECHECK_BOARDS, else none.", type="paths", default=[])
    _OPTION_DEFAULTS.update({option.dest: option.default for option in group.options})  # last: every option


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(target, backend, recipe, check): an edgecheck budget check; select with "
        f"-m \"{MARKER}(target='rk3588')\" or -m \"{MARKER}(check='parity')\"",
    )
    from edgecheck.summary import SummaryCollector

    config.pluginmanager.register(SummaryCollector(config), "edgecheck-summary")
    from edgecheck.terminal_progress import ProgressReporter

    config.pluginmanager.register(ProgressReporter(config), "edgecheck-progress")
    from edgecheck.unused_plugins import UnusedHypothesis

    config.pluginmanager.register(UnusedHypothesis(config), "edgecheck-unused-hypothesis")
    if given_settings(config):
        _state(config).validate_options()  # a typo is a usage error before collection, not "no tests ran"


def given_settings(config: pytest.Config) -> list[str]:
    """The edgecheck options and ini settings this run sets to other than their defaults: only a run
    that gives one pays for checking them (a project that never uses edgecheck imports nothing)."""
    options = [name for name, default in _OPTION_DEFAULTS.items() if config.getoption(name) != default]
    return options + [name for name, default in _INI_DEFAULTS.items() if config.getini(name) != default]


def pytest_unconfigure(config: pytest.Config) -> None:
    if "edgecheck.session" not in sys.modules:
        return  # no session state was ever made: nothing to close, and nothing to import
    from edgecheck.session import STATE

    if STATE in config.stash:
        config.stash[STATE].close()
        # an xdist worker, or a session alone; never xdist's controller, which ran no check
        if not config.pluginmanager.has_plugin("dsession"):
            freeze_at_exit()


def freeze_at_exit() -> None:
    """A process where edgecheck's session was made (it collected specs, or edgecheck options were given) and
    checks ran, an xdist worker or a session alone, exits without the garbage collector's passes over every object
    it still holds: interpreter shutdown runs several, 0.3 s for a worker's ~65,000 objects, which the controller
    (or the user's shell) waits for before the run ends. Its reports were sent and written. The atexit handlers
    still run (this one first: weakref.finalize, logging, tempfile), and Python never promised to finalize what
    is alive at exit: an unclosed file left in a reference cycle keeps what it had not flushed."""
    import atexit
    import gc

    atexit.register(gc.freeze)


def _state(config: pytest.Config) -> EdgeSession:
    from edgecheck.session import STATE, EdgeSession

    if STATE not in config.stash:
        config.stash[STATE] = EdgeSession(config)
    return config.stash[STATE]


def _matches(path: Path, root: Path, patterns: list[str]) -> bool:
    """Patterns match the path relative to the rootdir (so docs/specs/api.yaml is not a spec)."""
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        relative = path.as_posix()
    return any(fnmatch.fnmatchcase(relative, pattern) for pattern in patterns)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    config = parent.config
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    patterns = config.getini("edge_spec_patterns")
    if _matches(file_path, config.rootpath, patterns):
        return SpecFile.from_parent(parent, path=file_path)
    line = _named_spec(file_path, config)
    if line:  # outside the patterns, yet the user asked for this very spec
        from edgecheck.errors import SpecLocationWarning, warn_at

        warn_at(SpecLocationWarning(  # located at the spec's `edgecheck:` line, not at this one
            f"{file_path} is outside edge_spec_patterns ({' '.join(patterns)}): it runs because it was named on the "
            "command line, but a run of its folder would not collect it; add a pattern to the ini option "
            "edge_spec_patterns (or move the file)"), file_path, line)
        return SpecFile.from_parent(parent, path=file_path)
    return None


def _named_spec(file_path: Path, config: pytest.Config) -> int | None:
    """The line of its top-level `edgecheck:` key (in its first lines), where the file was named on the command
    line and so reads as an edgecheck spec; None for any other file: other YAML files are never claimed."""
    named = {(config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in config.args}
    if file_path.resolve() not in named:
        return None
    try:
        with open(file_path, "rb") as source:
            head = source.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    return next((number for number, line in enumerate(head.splitlines(), 1) if line.startswith("edgecheck:")), None)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Any:
    """A broken spec is never deselected by -k/-m: its failure must reach the report."""
    broken = [item for item in items if isinstance(item, BrokenSpecItem)]
    items[:] = [item for item in items if not isinstance(item, BrokenSpecItem)]
    result = yield
    items[:0] = broken
    return result


class SpecFile(pytest.File):
    """One spec file. Parsing and planning happen here, at collection; a broken spec becomes one
    failing item naming file, line and field, so the other specs still run."""

    def collect(self) -> Iterator[pytest.Item]:
        from edgecheck.errors import EdgecheckError

        state = _state(self.config)
        try:
            planned = state.plan(self.path)
        except EdgecheckError as exc:
            yield BrokenSpecItem.from_parent(self, name="spec", error=exc)
            return
        for check in planned:
            yield EdgeCheckItem.from_parent(self, name=check.id, planned=check)


class BrokenSpecItem(pytest.Item):
    """Stands for a spec that could not be collected: fails with the reason, every run."""

    def __init__(self, *, error: Exception, **kwargs: Any):
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise self.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return f"invalid spec: {excinfo.value}"

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = getattr(self.error, "line", None)
        return self.path, (line - 1 if line else None), self.name


class EdgeCheckItem(pytest.Item):
    """One (target, backend, recipe, check): measures, records every figure, fails on a breach."""

    def __init__(self, *, planned: PlannedCheck, **kwargs: Any):
        super().__init__(**kwargs)
        self.planned = planned
        labels = {"target": planned.target.name, "backend": planned.backend, "recipe": planned.recipe,
                  "check": planned.check}
        self.add_marker(getattr(pytest.mark, MARKER)(**labels))
        if self.config.pluginmanager.hasplugin("xdist"):
            # with --dist loadgroup, one artifact's checks share a worker and its runs
            self.add_marker(pytest.mark.xdist_group(f"{planned.spec.path.name}::{planned.target.name}::{planned.recipe}"))
        self.extra_keyword_matches.update(labels.values())

    def runtest(self) -> None:
        from edgecheck.compress import RecipeNotApplicable
        from edgecheck.errors import BackendUnavailable, BudgetExceeded, CannotJudge, InconclusiveWarning, ModelFitWarning
        from edgecheck.report.properties import identity_properties, result_properties

        state = _state(self.config)
        planned = self.planned
        self.user_properties.extend(identity_properties(
            state.relative(planned.spec.path), planned.spec.name, planned.target.name, planned.backend,
            planned.recipe, planned.check))
        try:
            result = state.executor.run(planned)
        except (BackendUnavailable, RecipeNotApplicable, CannotJudge) as exc:
            if state.strict:
                pytest.fail(f"{exc} (--edge-strict turns this skip into a failure)", pytrace=False)
            _skip_at_spec(str(exc))
        self.check_result = result  # the record's result (pytest_runtest_makereport); the JUnit view below
        self.user_properties.extend(result_properties(result))
        for message in result.warnings:
            self._warn(ModelFitWarning(message))
        if result.verdict == "fail":
            raise BudgetExceeded(result)
        if result.verdict == "inconclusive":
            from edgecheck.checks.base import get_check

            own, setting = get_check(planned.check).inconclusive_policy(planned.budgets)  # the spec's, if it says
            policy = own or state.inconclusive
            if policy == "fail":
                raise BudgetExceeded(result)
            from edgecheck.report.figures import verdict_summary

            how = "--edge-inconclusive=fail" + (f" or {setting}" if setting else "")
            self._warn(InconclusiveWarning(f"{verdict_summary(result)} (passed: {how} fails it)"),
                       regression=all(m.name.startswith("regression.") for m in result.measurements
                                      if m.verdict == "inconclusive"))

    def _warn(self, warning: Warning, regression: bool = False) -> None:
        """A warning located at the spec line of the budget it is about, so pytest's warnings summary shows the
        user's spec line (under the test id it already names), not edgecheck's own source."""
        from edgecheck.errors import warn_at

        warn_at(warning, self.planned.spec.path, self.planned.budget_line(("regression",) if regression else ()) or 1)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        from edgecheck.errors import BudgetExceeded, EdgecheckError
        from edgecheck.report.failure import describe_breach

        if isinstance(excinfo.value, BudgetExceeded):
            return describe_breach(self.planned, excinfo.value.result)
        if isinstance(excinfo.value, EdgecheckError):
            return f"{self.planned.id}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.planned.line
        return self.path, (line - 1 if line else None), self.name


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `-n` without a --dist of the user's: one artifact's checks on one worker (edgecheck.scheduling)."""
    from edgecheck.scheduling import make_scheduler

    return make_scheduler(config, log)


def _skip_at_spec(reason: str) -> None:
    """Skip, located at the item (its spec's target line) rather than this line: `-rs` then names the user's spec."""
    try:  # pytest's own way for skip markers (private: a pytest without it skips at this line)
        raise pytest.skip.Exception(reason, _use_item_location=True)
    except TypeError:
        pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """An edgecheck item's report carries its record (identity, outcome, reason, result) as a plain JSON-able
    attribute: pytest's report serialisation takes it to the xdist controller with the report."""
    report = yield
    if isinstance(item, EdgeCheckItem) and (report.when == "call" or (report.when == "setup" and not report.passed)):
        from edgecheck.results import RECORD_ATTRIBUTE, make_record, reason_of

        from edgecheck.errors import EdgecheckError

        planned = item.planned
        reason = reason_of(report)
        error = call.excinfo.value if call.excinfo is not None else None
        if report.failed and isinstance(error, Exception) and not isinstance(error, EdgecheckError):
            reason = f"{type(error).__name__}: {error}"  # a bug in a check (a plug-in's): its own words, not a trace line
        setattr(report, RECORD_ATTRIBUTE, make_record(
            spec=_state(item.config).relative(planned.spec.path), spec_name=planned.spec.name,
            target=planned.target.name, backend=planned.backend, recipe=planned.recipe, check=planned.check,
            target_is_host=planned.target.is_host,
            outcome=report.outcome, reason=reason,
            result=getattr(item, "check_result", None) if report.when == "call" else None))
    elif isinstance(item, BrokenSpecItem) and report.when == "call":  # a spec that did not load is in the results
        from edgecheck.results import BROKEN_SPEC, RECORD_ATTRIBUTE, make_record, reason_of

        setattr(report, RECORD_ATTRIBUTE, make_record(
            spec=_state(item.config).relative(item.path), spec_name=item.path.name, target="", backend="",
            recipe="", check=BROKEN_SPEC, target_is_host=False, outcome=report.outcome, reason=reason_of(report),
            result=None))
    return report


# Fixtures for tests written in Python, beside spec files.


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "edge_device" in metafunc.fixturenames:
        state = _state(metafunc.config)
        profiles = state.selected_targets() or [state.profiles()["host"]]
        metafunc.parametrize("edge_device", profiles, ids=[p.name for p in profiles])


@pytest.fixture
def edge_run(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """`edge_run(model, feed, backend=None, threads=1)` → outputs by name; a relative `model` path starts
    at the rootdir; without a backend, the one whose outputs are the reference for the model's format
    (ONNX Runtime for an .onnx file).

    Skips (or fails under --edge-strict) when the backend cannot run here.
    """
    from edgecheck.errors import BackendUnavailable

    state = _state(request.config)

    def run(model: str | Path, feed: dict[str, Any], backend: str | None = None, threads: int = 1) -> dict[str, Any]:
        import numpy as np

        from edgecheck.data import InputSet
        from edgecheck.execute import reference_backend
        from edgecheck.formats import format_owning, inspect_model

        path = request.config.rootpath / model  # relative paths start at the rootdir, as in spec runs
        try:
            found = state.executor.backend(backend or reference_backend(path))
        except BackendUnavailable as exc:
            if state.strict:
                pytest.fail(str(exc), pytrace=False)
            pytest.skip(str(exc))
        owner = format_owning(path)
        if owner is not None and owner.self_contained:
            inspect_model(path)  # a broken or hostile file is a ModelError naming it, before any runtime sees it
        # in a worker process, like every run of a spec: a runtime that crashes fails this test only
        inputs = InputSet(({name: np.asarray(value) for name, value in feed.items()},), "edge_run")
        return state.executor.runs.outputs(found, path, threads, inputs)

    return run
