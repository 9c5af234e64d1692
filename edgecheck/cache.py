"""A content-addressed cache of artifacts (compressed models) and of model outputs.

An entry's key is a hash of everything that decides its content — the input model's bytes (external
data included), the recipe, its parameters, the calibration data, the versions of the tools and of
edgecheck — so an edited model or changed parameter can never reuse a stale entry, and a rerun with
nothing changed skips the work. Entries are written into a temporary folder, then renamed into place
under a per-key file lock: two pytest-xdist workers or two sessions sharing one cache never see a
half-written entry, and only one of them does the work. Every file's SHA-256 is recorded and
checked on read; a corrupt entry is rebuilt with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgecheck.compress import Artifact
from edgecheck.errors import EdgecheckError, RecipeError
from edgecheck.model import file_sha256

ENV_CACHE_DIR = "EDGECHECK_CACHE_DIR"
DEFAULT_CACHE_DIR = Path(".edgecheck") / "cache"
LOCK_TIMEOUT_S = 3600.0  # a recipe on a large model may take minutes; a crashed holder releases at once
ENTRY_FILE = "entry.json"
Outputs = dict[str, np.ndarray]


class CacheWarning(UserWarning):
    """A cache entry was unreadable or corrupt and has been rebuilt."""


class CacheError(RecipeError):
    """The cache folder cannot be used (read-only, full, locked); the artifact's checks fail with how to fix it."""


def content_key(**parts: Any) -> str:
    """SHA-256 of the parts as canonical JSON: equal inputs, equal key, whatever the dict order."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _tree_stamp(venv: Path) -> str:
    """When a venv's installed distributions last changed (their .dist-info folders' times)."""
    infos = list(venv.glob("lib/python*/site-packages/*.dist-info"))
    return f"{len(infos)} distributions, newest {max((p.stat().st_mtime for p in infos), default=0):.0f}"


def tool_versions(tools: tuple[str, ...]) -> dict[str, str]:
    """Versions of the tools a recipe uses, read from the imported module (so onnxruntime-gpu or
    -openvino count as onnxruntime), else from the installed distribution; `env:NAME` is a tool
    environment's (edgecheck env), as recorded when it was created."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in tools:
        if name.startswith("env:"):
            from edgecheck.envs import find_env

            env = find_env(name[4:])
            if env is None:
                found[name] = "absent"
            else:  # a team's own venv (EDGECHECK_ENV_<NAME>) records no version: key by its packages' state
                found[name] = env.tool_version or f"{env.path}: {_tree_stamp(env.path)}"
            continue
        try:
            found[name] = str(importlib.import_module(name.replace("-", "_")).__version__)
        except (ImportError, AttributeError):
            try:
                found[name] = version(name)
            except PackageNotFoundError:
                found[name] = "absent"
    return found


def default_cache_dir(root: Path) -> Path:
    """$EDGECHECK_CACHE_DIR if set, else .edgecheck/cache under the project root."""
    configured = os.environ.get(ENV_CACHE_DIR)
    return Path(configured).expanduser() if configured else root / DEFAULT_CACHE_DIR


class ArtifactCache:
    """Artifacts and outputs by key, in `root` (created on first write), or nowhere when disabled.

    Disabled, artifacts are built into a scratch folder removed by `close()` and nothing is reused
    across sessions.
    """

    def __init__(self, root: Path | None):
        self.root = root
        self._scratch: Path | None = None
        self._built: dict[str, Artifact] = {}  # without a cache: what this session already built

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
            self._built.clear()

    # artifacts

    def artifact(self, key: str, build: Callable[[Path], Artifact]) -> tuple[Artifact, bool]:
        """The artifact stored under `key`, building it with `build(empty_folder)` if absent or corrupt.

        Returns the artifact and whether it came from the cache. A cache folder that cannot be
        written (read-only, full, a lock held for an hour) is a `CacheError` saying how to move it.
        """
        try:
            return self._artifact(key, build)
        except _BuildFailed as failed:
            raise failed.error from failed.error.__cause__
        except (OSError, TimeoutError) as exc:  # filelock.Timeout is a TimeoutError
            raise CacheError(f"the artifact cache {self.root or self._scratch} cannot be used: "
                             f"{type(exc).__name__}: {exc} (move it with --edge-cache-dir, or run with "
                             "--edge-no-cache)") from exc

    def _artifact(self, key: str, build: Callable[[Path], Artifact]) -> tuple[Artifact, bool]:
        if self.root is None:
            if key in self._built:
                return self._built[key], False
            if self._scratch is None:
                self._scratch = Path(tempfile.mkdtemp(prefix="edgecheck-"))
            folder = self._scratch / key
            folder.mkdir(parents=True)
            self._built[key] = _build(build, folder)
            return self._built[key], False
        final = self.root / "artifacts" / key[:2] / key
        found = self._read_artifact(final)
        if found is not None:
            return found, True
        with self._lock(key):
            found = self._read_artifact(final, warn=False)  # another worker may have built it meanwhile
            if found is not None:
                return found, True
            work = self._temporary(key)
            try:
                built = _build(build, work)
                entry = {
                    "key": key,
                    "artifact": built.path.relative_to(work).as_posix(),
                    "recipe": built.recipe,
                    "notes": built.notes,
                    "files": {p.relative_to(work).as_posix(): file_sha256([p])
                              for p in sorted(work.rglob("*")) if p.is_file()},
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
                (work / ENTRY_FILE).write_text(json.dumps(entry, indent=1, sort_keys=True))
                self._discard(final)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.rename(work, final)  # atomic: readers see no entry or a whole one
            finally:
                shutil.rmtree(work, ignore_errors=True)
        found = self._read_artifact(final)
        if found is None:
            raise CacheError(f"cache entry {final} vanished or was corrupted right after it was written")
        return found, False

    def _read_artifact(self, folder: Path, warn: bool = True) -> Artifact | None:
        """The stored artifact if the entry is whole and every file matches its recorded hash."""
        manifest = folder / ENTRY_FILE
        if not folder.exists():
            return None
        problem = None
        try:
            entry = json.loads(manifest.read_text())
            files = entry["files"]
            if not isinstance(files, dict) or entry["artifact"] not in files:
                raise ValueError("its file list is malformed or does not hold the artifact")
            for name, digest in files.items():
                path = folder / name
                if not path.is_file():
                    problem = f"{name} is missing"
                elif file_sha256([path]) != digest:
                    problem = f"{name} does not match its recorded SHA-256"
                if problem:
                    break
            artifact = Artifact(folder / entry["artifact"], str(entry["recipe"]), dict(entry["notes"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            problem = f"{ENTRY_FILE} unreadable ({type(exc).__name__}: {exc})"
        if problem:
            if not warn:
                return None
            warnings.warn(CacheWarning(f"edgecheck cache entry {folder} is corrupt ({problem}); rebuilding it"),
                          stacklevel=3)
            return None
        return artifact

    # outputs

    def outputs(self, key: str, compute: Callable[[], Outputs]) -> tuple[Outputs, bool]:
        """Outputs stored under `key`, else `compute()` stored atomically. Returns them and whether cached."""
        if self.root is None:
            return compute(), False
        path = self.root / "outputs" / key[:2] / f"{key}.npz"
        found = self._read_outputs(path)
        if found is not None:
            return found, True
        outputs = compute()
        names = list(outputs)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self._temporary(key, directory=False)
            try:
                with temporary.open("wb") as handle:
                    np.savez(handle, __names__=np.array(names, dtype=str),
                             **{f"output_{i}": outputs[name] for i, name in enumerate(names)})
                os.replace(temporary, path)  # equal keys, equal content: the last writer wins harmlessly
            finally:
                temporary.unlink(missing_ok=True)
        except OSError as exc:  # storing is an optimisation: the outputs are valid, the next run recomputes
            warnings.warn(CacheWarning(f"edgecheck could not store outputs in the cache {self.root}: {exc}"),
                          stacklevel=2)
        return outputs, False

    def _read_outputs(self, path: Path) -> Outputs | None:
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                names = [str(n) for n in archive["__names__"]]
                return {name: archive[f"output_{i}"] for i, name in enumerate(names)}
        except Exception as exc:  # a truncated zip raises a variety of errors; any of them means rebuild
            warnings.warn(CacheWarning(f"edgecheck cache entry {path} is corrupt ({type(exc).__name__}: {exc}); "
                                       "recomputing it"), stacklevel=3)
            path.unlink(missing_ok=True)
            return None

    # housekeeping

    def _lock(self, key: str):
        from filelock import FileLock

        folder = self.root / "locks"  # type: ignore[operator]
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(folder / f"{key}.lock", timeout=LOCK_TIMEOUT_S)

    def _temporary(self, key: str, directory: bool = True) -> Path:
        folder = self.root / "tmp"  # type: ignore[operator]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{key[:16]}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        if directory:
            path.mkdir()
        return path

    def _discard(self, folder: Path) -> None:
        """Move a (corrupt) entry out of the way first, so its removal is never half-visible."""
        if folder.exists():
            trash = self._temporary("trash", directory=False)
            os.rename(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)


class _BuildFailed(Exception):
    """Carries a recipe's own error past the cache's handling of file-system errors."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _build(build: Callable[[Path], Artifact], folder: Path) -> Artifact:
    """Run the recipe; its errors (an OSError of its own included) are the recipe's, not the cache's."""
    try:
        artifact = build(folder)
    except RecipeError as exc:
        raise _BuildFailed(exc) from exc
    except OSError as exc:
        error = RecipeError(f"writing the artifact failed: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        raise _BuildFailed(error) from exc
    try:
        return _inside(artifact, folder)
    except RecipeError as exc:
        raise _BuildFailed(exc) from exc


def _inside(artifact: Artifact, folder: Path) -> Artifact:
    if not artifact.path.resolve().is_relative_to(folder.resolve()) or not artifact.path.is_file():
        raise RecipeError(f"recipe {artifact.recipe!r} did not write its artifact into its folder {folder} "
                          f"(returned {artifact.path})")
    return artifact


def cache_summary(root: Path) -> dict[str, int]:
    """Entries and bytes, for `edgecheck cache info`."""
    artifacts = list((root / "artifacts").glob("*/*")) if (root / "artifacts").exists() else []
    outputs = list((root / "outputs").glob("*/*.npz")) if (root / "outputs").exists() else []
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0
    return {"artifacts": len(artifacts), "outputs": len(outputs), "bytes": size}


def clear_cache(root: Path) -> int:
    """Remove every entry; returns the bytes freed. Refuses a folder that is not an edgecheck cache."""
    if not root.exists():
        return 0
    if not root.is_dir():
        raise EdgecheckError(f"{root} is a file, not an edgecheck cache folder; not removing it")
    known = {"artifacts", "outputs", "locks", "tmp"}
    strangers = [p.name for p in root.iterdir() if p.name not in known]
    if strangers:
        raise EdgecheckError(f"{root} does not look like an edgecheck cache (it holds {', '.join(sorted(strangers)[:5])});"
                             " not removing it")
    freed = cache_summary(root)["bytes"]
    shutil.rmtree(root)
    return freed
