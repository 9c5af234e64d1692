"""The state of one pytest session: options resolved once, device profiles, the executor.

Kept in `config.stash`, created on first use, so a session that collects no spec never builds it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pytest

from edgecheck.cache import ArtifactCache, default_cache_dir
from edgecheck.devices import DeviceProfile, load_profiles
from edgecheck.errors import DeviceError
from edgecheck.execute import Executor
from edgecheck.plan import PlannedCheck, plan_checks, validate_candidate
from edgecheck.spec import load_spec


class EdgeSession:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.strict: bool = bool(config.getoption("edge_strict") or config.getini("edge_strict"))
        self.backends: list[str] = list(config.getoption("edge_backends") or [])
        self._profiles: dict[str, DeviceProfile] | None = None

    def profiles(self) -> dict[str, DeviceProfile]:
        if self._profiles is None:
            folders = [Path(p) for p in self.config.getini("edge_devices_dir")]
            try:
                self._profiles = load_profiles(folders)
            except DeviceError as exc:
                raise pytest.UsageError(f"edgecheck: {exc}") from None
        return self._profiles

    def validate_options(self) -> None:
        """Raise a usage error for an unknown target or backend, or a broken profile folder."""
        self.selected_targets()
        if self.backends:
            from edgecheck.backends import known_backends

            known = {b for p in self.profiles().values() for b in p.backends} | set(known_backends())
            unknown = [b for b in self.backends if b not in known]
            if unknown:
                raise pytest.UsageError(f"--edge-backend: unknown backend {', '.join(map(repr, unknown))}; "
                                        f"known: {', '.join(sorted(known))}")

    def close(self) -> None:
        """End of session: remove scratch artifacts and forget backends registered during it."""
        from edgecheck.backends.registry import reset_registry

        if "executor" in self.__dict__:
            self.executor.close()
        reset_registry()

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
                f"--edge-target: unknown device {', '.join(map(repr, unknown))}; known: {', '.join(sorted(profiles))} "
                "(or 'all'). Add a profile with the ini option edge_devices_dir."
            )
        return list(dict.fromkeys(asked))

    def selected_targets(self) -> list[DeviceProfile]:
        names = self.target_names()
        return [self.profiles()[n] for n in names] if names else []

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
        return default_cache_dir(self.config.rootpath)

    @cached_property
    def executor(self) -> Executor:
        return Executor(ArtifactCache(self.cache_dir()))

    def plan(self, spec_path: Path) -> list[PlannedCheck]:
        """Load, validate and plan one spec file; raises an EdgecheckError naming what is wrong."""
        loaded = load_spec(spec_path, project_root=self.config.rootpath)
        model = self.executor.model_info(loaded.spec.model.path)
        if loaded.spec.candidate is not None:
            validate_candidate(loaded, model, self.executor.model_info(loaded.spec.candidate.path))
        return plan_checks(loaded, model, self.profiles(), self.target_names(), self.backends or None)

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.config.rootpath))
        except ValueError:
            return str(path)


STATE = pytest.StashKey[EdgeSession]()
