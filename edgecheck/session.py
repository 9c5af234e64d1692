"""The state of one pytest session: options resolved once, device profiles, the executor.

Kept in `config.stash`, created on first use, so a session that collects no spec never builds it.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # stored figures are read where --edge-baseline or --edge-save-baseline asks for them
    from edgecheck.baseline import Baseline
    from edgecheck.execute import Executor
    from edgecheck.plan import PlannedCheck

from edgecheck.boards.config import Board, BoardsError, check_devices, configured_boards
from edgecheck.devices import DeviceProfile, load_profiles
from edgecheck.errors import DeviceError, did_you_mean
from edgecheck.locks import pytest_notice
from edgecheck.processes import cores_per_worker, session_cores
from edgecheck.worker.client import WorkerPool, WorkerSettings, default_memory_limit_mb


class EdgeSession:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.strict: bool = bool(config.getoption("edge_strict") or config.getini("edge_strict"))
        self.backends: list[str] = list(config.getoption("edge_backends") or [])
        self.inconclusive: str = config.getoption("edge_inconclusive") or config.getini("edge_inconclusive") or "warn"
        self._profiles: dict[str, DeviceProfile] | None = None
        self._baseline: Baseline | None = None
        self._warned = False
        self._boards: list[Board] | None = None

    def profiles(self) -> dict[str, DeviceProfile]:
        if self._profiles is None:
            folders = [Path(p) for p in self.config.getini("edge_devices_dir")]
            try:
                self._profiles = load_profiles(folders)
            except DeviceError as exc:
                raise pytest.UsageError(f"edgecheck: {exc}") from None
        return self._profiles

    def validate_options(self) -> None:
        """Raise a usage error for an unknown target or backend, a broken profile or operator table
        folder, a bad worker limit, a baseline that is missing (to compare) or already there (to save),
        no spec patterns, or a folder or file the run would write that cannot be one."""
        self.selected_targets()
        self.validate_paths()
        if self.config.getini("edge_devices_dir"):
            self.profiles()  # a broken project profile is a usage error even when no --edge-target names it
        self.validate_op_tables()
        self.worker_settings()
        self.boards()
        if self.inconclusive not in ("warn", "fail"):
            raise pytest.UsageError(f"edge_inconclusive: {self.inconclusive!r} is neither warn nor fail")
        if not 0 <= self.config.getoption("edge_suggest_margin") < 1:
            raise pytest.UsageError("--edge-suggest-margin: give a fraction from 0 to below 1, such as 0.1 (10 %)")
        self.baseline()
        if self.config.getoption("edge_html"):
            import importlib.util

            if importlib.util.find_spec("matplotlib") is None:  # found now, not after every check has run
                raise pytest.UsageError("--edge-html: the HTML report draws its plots with matplotlib, which is not "
                                        "installed: pip install 'pytest-edgecheck[html]'")
        save = self.config.getoption("edge_save_baseline")
        if save:
            from edgecheck.baseline import BaselineError, baseline_path, check_name

            try:
                path = baseline_path(self.baseline_dir(), check_name(save))
            except BaselineError as exc:
                raise pytest.UsageError(f"--edge-save-baseline: {exc}") from None
            if path.exists() and not self.config.getoption("edge_overwrite_baseline"):
                raise pytest.UsageError(f"--edge-save-baseline: baseline {save!r} exists ({path}); add "
                                        "--edge-overwrite-baseline to replace it, or choose another name")
        if self.backends:
            from edgecheck.backends import known_backends

            known = {b for p in self.profiles().values() for b in p.backends} | set(known_backends())
            unknown = [b for b in self.backends if b not in known]
            if unknown:
                raise pytest.UsageError(f"--edge-backend: unknown backend {', '.join(map(repr, unknown))}; "
                                        f"known: {', '.join(sorted(known))}")

    def validate_paths(self) -> None:
        """The spec patterns, and the places the run writes: the cache and baseline folders must not be
        files, the latency JSON's folder must exist (found now, not after every check has run)."""
        if not self.config.getini("edge_spec_patterns"):
            raise pytest.UsageError("edge_spec_patterns: no patterns, so no spec would be collected; give at least "
                                    "one, such as specs/*.yaml (the default: specs/*.yaml specs/*.yml)")
        cache = self.cache_dir()
        if cache is not None and cache.exists() and not cache.is_dir():
            from edgecheck.cache import ENV_CACHE_DIR

            given = ("--edge-cache-dir" if self.config.getoption("edge_cache_dir") else
                     "edge_cache_dir" if self.config.getini("edge_cache_dir") else
                     f"${ENV_CACHE_DIR}" if os.environ.get(ENV_CACHE_DIR) else "edgecheck's cache")
            raise pytest.UsageError(f"{given}: {cache} is a file, not a folder; give a folder for the cache "
                                    "(it is created if missing)")
        baselines = self.baseline_dir()
        if baselines.exists() and not baselines.is_dir():
            raise pytest.UsageError(f"edge_baseline_dir: {baselines} is a file, not a folder of baselines")
        for option, example in (("edge_benchmark_json", "latency.json"), ("edge_markdown", "summary.md")):
            given_path = self.config.getoption(option)
            if given_path:
                path, flag = Path(given_path), "--" + option.replace("_", "-")
                if path.is_dir():
                    raise pytest.UsageError(f"{flag}: {path} is a folder; give the path of the file to write, such "
                                            f"as {example}")
                if not path.absolute().parent.is_dir():
                    raise pytest.UsageError(f"{flag}: the folder {path.absolute().parent} does not exist; create it "
                                            "or give a path in an existing folder")
        results = self.config.getoption("edge_results")
        given = "--edge-results" if results else "edge_results"
        results_path = Path(results) if results else (Path(self.config.getini("edge_results")[0])
                                                       if self.config.getini("edge_results") else None)
        if results_path is not None:
            if results_path.is_dir():
                raise pytest.UsageError(f"{given}: {results_path} is a folder; give the path of the file to write, "
                                        "such as results.json")
            blocking = next((p for p in results_path.absolute().parents if p.exists()), None)
            if blocking is not None and not blocking.is_dir():
                raise pytest.UsageError(f"{given}: {blocking} is a file, so {results_path} cannot be written")

    def ops_dirs(self) -> list[Path]:
        return [Path(p) for p in self.config.getini("edge_ops_dir")]

    def validate_op_tables(self) -> None:
        """Every operator table the ops checks could use must load: a broken one, or a mistyped folder,
        would otherwise turn each ops check into a skip and the session into a green run."""
        if not self.ops_dirs():
            return
        from edgecheck.analysis.optable import load_tables

        try:
            load_tables(self.ops_dirs())
        except DeviceError as exc:
            raise pytest.UsageError(f"edgecheck: edge_ops_dir: {exc}") from None

    def close(self) -> None:
        """End of session: remove scratch artifacts and forget backends registered during it."""
        from edgecheck.backends.registry import reset_registry
        from edgecheck.spec.kinds import reset_checks

        if "executor" in self.__dict__:
            self.executor.close()
        reset_registry()
        reset_checks()

    def target_names(self) -> list[str] | None:
        """The targets asked for, or None for 'each spec's own'."""
        asked = list(self.config.getoption("edge_targets") or []) or list(self.config.getini("edge_targets"))
        if not asked:
            return None
        profiles = self.profiles()
        if "all" in asked:
            return sorted(profiles)
        unknown = [name for name in asked if name not in profiles]
        if unknown:
            raise pytest.UsageError(
                f"--edge-target: unknown device {', '.join(map(repr, unknown))}{did_you_mean(unknown[0], profiles)} "
                f"(known: {', '.join(sorted(profiles))}, or 'all'); add a profile with the ini option edge_devices_dir"
            )
        return list(dict.fromkeys(asked))

    def selected_targets(self) -> list[DeviceProfile]:
        names = self.target_names()
        return [self.profiles()[n] for n in names] if names else []

    def boards(self) -> list[Board]:
        """The lab's boards for this run (edge_boards / $EDGECHECK_BOARDS, and --edge-board), read once; a
        usage error naming the file, board and field where they are wrong."""
        if self._boards is None:
            try:
                boards = configured_boards([str(p) for p in self.config.getini("edge_boards")],
                                           list(self.config.getoption("edge_board") or []), self.config.rootpath)
                check_devices(boards, set(self.profiles()), {n for n, p in self.profiles().items() if p.is_host})
            except BoardsError as exc:
                raise pytest.UsageError(f"edgecheck: {exc}") from None
            self._boards = boards
        return self._boards

    def cache_dir(self) -> Path | None:
        """Where artifacts and outputs are cached: --edge-cache-dir, ini edge_cache_dir,
        $EDGECHECK_CACHE_DIR, else .edgecheck/cache under the rootdir; None with --edge-no-cache."""
        if self.config.getoption("edge_no_cache"):
            return None
        option = self.config.getoption("edge_cache_dir")
        if option:
            return Path(option).expanduser().resolve()
        ini = self.config.getini("edge_cache_dir")
        if ini:
            return Path(ini[0]).resolve()
        from edgecheck.cache import default_cache_dir

        return default_cache_dir(self.config.rootpath)

    def worker_settings(self) -> WorkerSettings:
        """Timeout and memory limit of worker processes, from the options, the ini file or defaults."""
        timeout = self.config.getoption("edge_worker_timeout")
        memory = self.config.getoption("edge_worker_memory")
        try:
            timeout = float(timeout if timeout is not None else (self.config.getini("edge_worker_timeout") or 300))
            memory = int(memory if memory is not None else (self.config.getini("edge_worker_memory") or 0)) or None
        except ValueError as exc:
            raise pytest.UsageError(f"edge_worker_timeout / edge_worker_memory: {exc}") from None
        if timeout <= 0:
            raise pytest.UsageError(f"--edge-worker-timeout: {timeout:g} s; give a positive number of seconds")
        if memory is not None and memory < 64:
            raise pytest.UsageError(f"--edge-worker-memory: {memory} MiB is too little for any runtime; give >= 64")
        # this session's xdist workers, from xdist's own record (a pytest run inside a worker's test inherits
        # PYTEST_XDIST_WORKER_COUNT, not this)
        workers = int(getattr(self.config, "workerinput", {}).get("workercount", 1))
        return WorkerSettings(timeout_s=timeout, memory_limit_mb=memory or default_memory_limit_mb(),
                              recipe_threads=cores_per_worker(workers), cores=session_cores(workers))

    def baseline_dir(self) -> Path:
        ini = self.config.getini("edge_baseline_dir")
        return Path(ini[0]).resolve() if ini else self.config.rootpath / ".edgecheck" / "baselines"

    def baseline(self) -> Baseline | None:
        """The baseline named by --edge-baseline, loaded once; a usage error if it cannot be read."""
        name = self.config.getoption("edge_baseline")
        if name and self._baseline is None:
            from edgecheck.baseline import BaselineError, check_name, list_baselines, load_baseline

            try:
                self._baseline = load_baseline(self.baseline_dir(), check_name(name))
            except BaselineError as exc:
                known = ", ".join(list_baselines(self.baseline_dir())) or "none"
                raise pytest.UsageError(f"--edge-baseline: {exc} (baselines in {self.baseline_dir()}: {known})") from None
        return self._baseline

    def _baseline_figures(self, planned: PlannedCheck) -> tuple[str, dict[str, float] | None, bool] | None:
        baseline = self.baseline()
        if baseline is None:
            return None
        from edgecheck.baseline import item_key

        key = item_key(self.relative(planned.spec.path), planned.id)
        return baseline.name, baseline.figures(key), baseline.place(key)

    @cached_property
    def executor(self) -> Executor:
        from edgecheck.cache import ArtifactCache
        from edgecheck.execute import Executor, host_device
        from edgecheck.measure.runs import ModelRuns

        runs = ModelRuns(WorkerPool(self.worker_settings()), host_device())
        boards = None
        if self.boards():
            import uuid

            from edgecheck.boards.pool import BoardPool
            from edgecheck.boards.runs import BoardRuns
            from edgecheck.leftovers import owner_tag

            pool = BoardPool(self.boards(), f"{owner_tag()}-{uuid.uuid4().hex[:8]}", pytest_notice(self.config))
            boards = BoardRuns(pool, self.worker_settings(), runs.workers.scratch / "boards")
        return Executor(ArtifactCache(self.cache_dir(), pytest_notice(self.config)), runs, self._baseline_figures,
                        self.ops_dirs(), boards)

    def plan(self, spec_path: Path) -> list[PlannedCheck]:
        """Load, validate and plan one spec file; raises an EdgecheckError naming what is wrong."""
        from edgecheck.plan import plan_checks, validate_candidate
        from edgecheck.spec import load_spec

        self._warn_broken_plugins()
        loaded = load_spec(spec_path, project_root=self.config.rootpath)
        model = self.executor.model_info(loaded.spec.model.path)
        if loaded.spec.candidate is not None:
            validate_candidate(loaded, model, self.executor.model_info(loaded.spec.candidate.path))
        return plan_checks(loaded, model, self.profiles(), self.target_names(), self.backends or None)

    def _warn_broken_plugins(self) -> None:
        """Once a session: check kinds that could not be installed (an import error, a budget field another kind
        owns) are said aloud, not only when a spec happens to use their budget."""
        if self._warned:
            return
        self._warned = True
        from edgecheck.errors import PluginWarning, warn_at
        from edgecheck.spec.kinds import broken_checks

        for name, why in broken_checks().items():
            # located at the plug-in's entry point (its own words name the module), not at this line
            warn_at(PluginWarning(f"edgecheck check kind {name!r} is not installed: {why}"),
                    f"<entry point edgecheck.checks: {name}>")

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.config.rootpath))
        except ValueError:
            return str(path)


STATE = pytest.StashKey[EdgeSession]()
