"""A content-addressed cache of artifacts (compressed models) and of model outputs.

An entry's key is a hash of everything that decides its content — the input model's bytes (external
data included), the recipe, its parameters, the calibration data, the versions of the tools and of
edgecheck — so an edited model or changed parameter can never reuse a stale entry, and a rerun with
nothing changed skips the work. Entries are written into a temporary folder, then renamed into place
under a per-key file lock: two pytest-xdist workers or two sessions sharing one cache never see a
half-written entry, and only one of them does the work; a wait on another process's lock says
what it waits for. Every file of an entry (artifact, external data, outputs) has its SHA-256
recorded and checked on read, and no path is followed out of its entry (edgecheck.cache_entry); a
corrupt entry is rebuilt with a warning. Temporaries carry their owner's tag, so the next session
removes those of a killed one (edgecheck.leftovers); a full disk says where the cache is and how to
move it. Small results computed without running a model (a model file's facts, a static check's
verdict) are kept beside them as JSON records by content (edgecheck.cache_records).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgecheck.cache_entry import (ENTRY_FILE, CorruptEntry, files_present, free_space, is_full_disk, listing,
                                   read_manifest, remove, write_manifest)
from edgecheck.cache_records import RECORDS_DIR, CacheWarning, RecordCache
from edgecheck.compress import Artifact
from edgecheck.errors import EdgecheckError, RecipeError, warn_at
from edgecheck.leftovers import owner_tag, remove_dead_owners
from edgecheck.locks import exclusive_lock, print_notice
from edgecheck.outputfiles import load_outputs, mapped_from, output_file, write_output

ENV_CACHE_DIR = "EDGECHECK_CACHE_DIR"
DEFAULT_CACHE_DIR = Path(".edgecheck") / "cache"
LOCK_TIMEOUT_S = 3600.0  # a recipe on a large model may take minutes; a crashed holder releases at once
Outputs = dict[str, np.ndarray]
OutputsJob = Callable[[Path | None], Outputs]  # computes outputs, writing them into the folder where it can


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
    """Versions of the tools a recipe uses: the module's own where it is imported already, else its
    distribution's (read without importing it: onnx alone takes most of a second), else the module's once
    imported (onnxruntime-gpu or -openvino count as onnxruntime); `env:NAME` is a tool environment's
    (edgecheck env), as recorded when it was created."""
    import importlib
    import sys
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
        module = name.replace("-", "_")
        loaded = getattr(sys.modules.get(module), "__version__", None)
        if loaded is not None:
            found[name] = str(loaded)
            continue
        try:
            found[name] = version(name)
            continue
        except PackageNotFoundError:
            pass
        try:
            found[name] = str(importlib.import_module(module).__version__)
        except (ImportError, AttributeError):
            found[name] = "absent"
    return found


def default_cache_dir(root: Path) -> Path:
    """$EDGECHECK_CACHE_DIR if set, else .edgecheck/cache under the project root."""
    configured = os.environ.get(ENV_CACHE_DIR)
    return Path(configured).expanduser() if configured else root / DEFAULT_CACHE_DIR


class ArtifactCache:
    """Artifacts and outputs by key, in `root` (created on first write), or nowhere when disabled.

    Disabled, artifacts are built into a scratch folder removed by `close()` and nothing is reused
    across sessions. `notify` receives the one line said when a wait on another process's lock
    lasts (a session passes `pytest_notice(config)`).
    """

    def __init__(self, root: Path | None, notify: Callable[[str], None] = print_notice):
        self.root = root
        self.notify = notify
        self._scratch: Path | None = None
        self._built: dict[str, Artifact] = {}  # without a cache: what this session already built
        self._swept = False
        self.records = RecordCache(root / RECORDS_DIR if root is not None else None)  # small results by content

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
            where = self.root or self._scratch
            if is_full_disk(exc):
                raise CacheError(f"storing the artifact failed: {type(exc).__name__}: {exc}\n"
                                 f"{self.full_disk_hint()}") from exc
            raise CacheError(f"the artifact cache {where} cannot be used: {type(exc).__name__}: {exc} (move it with "
                             "--edge-cache-dir, or run with --edge-no-cache)") from exc

    def _artifact(self, key: str, build: Callable[[Path], Artifact]) -> tuple[Artifact, bool]:
        if self.root is None:
            if key in self._built:
                return self._built[key], False
            if self._scratch is None:
                system = Path(tempfile.gettempdir())
                remove_dead_owners(system, "edgecheck-artifacts-*")  # a killed session's scratch folders
                self._scratch = Path(tempfile.mkdtemp(prefix=f"edgecheck-artifacts-{owner_tag()}-"))
            folder = self._scratch / key
            folder.mkdir(parents=True)
            self._built[key] = _build(build, folder, self.full_disk_hint)
            return self._built[key], False
        self._sweep()
        final = self._entry_folder("artifacts", key)
        found = self._read_artifact(final, key)
        if found is not None:
            return found, True
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(locks / f"{key}.lock", f"the cache entry {final}", self.notify, LOCK_TIMEOUT_S):
            found = self._read_artifact(final, key, warn=False)  # another worker may have built it meanwhile
            if found is not None:
                return found, True
            work = self._temporary(key)
            try:
                built = _build(build, work, self.full_disk_hint)
                write_manifest(work, {
                    "key": key,
                    "artifact": built.path.relative_to(work).as_posix(),
                    "recipe": built.recipe,
                    "notes": built.notes,
                    "files": listing(work),
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                })
                self._discard(final)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.rename(work, final)  # atomic: readers see no entry or a whole one
            finally:
                remove(work)
        found = self._read_artifact(final, key)
        if found is None:
            raise CacheError(f"cache entry {final} vanished or was corrupted right after it was written")
        return found, False

    def _read_artifact(self, folder: Path, key: str, warn: bool = True) -> Artifact | None:
        """The stored artifact if the entry is whole and every file matches its recorded hash."""
        try:
            entry = read_manifest(folder, key, self.root)  # type: ignore[arg-type]
            if entry is None:
                return None
            if not isinstance(entry.get("artifact"), str) or entry["artifact"] not in entry["files"]:
                raise CorruptEntry(f"its file list does not hold the artifact {str(entry.get('artifact'))[:200]!r}")
            notes = entry.get("notes")
            if not isinstance(notes, dict):
                raise CorruptEntry(f"{ENTRY_FILE} has no notes mapping")
            return Artifact(folder / entry["artifact"], str(entry.get("recipe")),
                            {str(k): str(v) for k, v in notes.items()})
        except (CorruptEntry, OSError) as exc:
            if warn:
                warn_at(CacheWarning(f"edgecheck cache entry {folder} is corrupt ({_problem(exc)}); rebuilding it"),
                        folder)
            return None

    # outputs

    def outputs(self, key: str, compute: OutputsJob) -> tuple[Outputs, bool]:
        """Outputs stored under `key`, else `compute(folder)` stored atomically. Returns them and whether cached.

        `folder` is the entry in the making (None without a cache): `compute` may write the outputs there as
        edgecheck.outputfiles lays them out (a worker does), and the entry keeps the files its returned arrays
        are mapped from, so 100 MB of outputs are written once and never read back; anything else there is
        replaced by its result. Computed under the key's lock, as artifacts are built: a second process (an
        xdist worker) asking for the same outputs meanwhile waits, saying so, and reads what the first stored
        instead of computing."""
        if self.root is None:
            return compute(None), False
        self._sweep()
        final = self._entry_folder("outputs", key)
        found = self._read_outputs(final, key)
        if found is not None:
            return found, True
        with ExitStack() as held:
            try:
                locks = self.root / "locks"
                locks.mkdir(parents=True, exist_ok=True)
                held.enter_context(exclusive_lock(locks / f"{key}.lock", f"the outputs {final}", self.notify,
                                                  LOCK_TIMEOUT_S))
            except (OSError, TimeoutError):  # (filelock.Timeout is one) sharing them is an optimisation, as
                pass                         # storing them is: a lock not had computes them unshared
            found = self._read_outputs(final, key)  # another process may have stored them meanwhile
            if found is not None:
                return found, True
            return self._computed(key, compute)

    def _computed(self, key: str, compute: OutputsJob) -> tuple[Outputs, bool]:
        """`compute(folder)`, stored where it can be."""
        try:
            work = self._temporary(key)
        except OSError as exc:  # storing is an optimisation: compute without the cache
            self._warn_not_stored(exc)
            return compute(None), False
        try:
            try:
                outputs = compute(work)
            except Exception as exc:  # the worker's writes filled the cache's disk: compute them elsewhere
                if not is_full_disk(exc):
                    raise
                remove(work)
                self._warn_not_stored(exc)
                return compute(None), False
            try:
                self._store_outputs(key, work, outputs)
            except OSError as exc:  # storing is an optimisation: the outputs are valid, the next run recomputes
                self._warn_not_stored(exc)
        finally:
            remove(work)  # renamed into place, or given up: the outputs stay mapped either way
        return outputs, False

    def _warn_not_stored(self, exc: OSError) -> None:
        hint = f"\n{self.full_disk_hint()}" if is_full_disk(exc) else ""
        warn_at(CacheWarning(f"edgecheck could not store outputs in the cache {self.root}: {exc}{hint}"), self.root)

    def _store_outputs(self, key: str, work: Path, outputs: Outputs) -> None:
        """Make `work` an entry of `outputs` and rename it into place. Files the computation left are kept
        where they are exactly the outputs' files (a worker's), else replaced."""
        names = list(outputs)
        for stray in files_present(work) - {output_file(i) for i in range(len(names))}:
            remove(work / stray)
        for index, name in enumerate(names):
            if not mapped_from(outputs[name], work / output_file(index)):  # not the computation's own file
                write_output(work / output_file(index), outputs[name])
        write_manifest(work, {"key": key, "names": names, "files": listing(work),
                              "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        final = self._entry_folder("outputs", key)
        final.parent.mkdir(parents=True, exist_ok=True)
        (final.parent / f"{key}.npz").unlink(missing_ok=True)  # an older edgecheck's, unchecked: replaced
        try:
            os.rename(work, final)  # atomic: readers see no entry or a whole one
        except OSError as exc:  # another worker stored the same outputs first: equal keys, equal content
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise

    def _read_outputs(self, folder: Path, key: str) -> Outputs | None:
        """The stored outputs if the entry is whole; a corrupt one is warned about and removed."""
        try:
            entry = read_manifest(folder, key, self.root)  # type: ignore[arg-type]
            if entry is None:
                return None
            names = entry.get("names")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise CorruptEntry(f"{ENTRY_FILE} has no list of output names")
            if set(entry["files"]) != {output_file(i) for i in range(len(names))}:
                raise CorruptEntry(f"its file list does not hold one {output_file(0)} file per output")
            try:  # its digests matched: what edgecheck wrote, mapped without pickles
                return load_outputs(folder, names)
            except Exception as exc:  # noqa: BLE001  a file of ours that numpy cannot read: rebuild
                raise CorruptEntry(f"an output file is unreadable ({type(exc).__name__}: {exc})") from None
        except (CorruptEntry, OSError) as exc:
            warn_at(CacheWarning(f"edgecheck cache entry {folder} is corrupt ({_problem(exc)}); recomputing it"),
                    folder)
            try:
                self._discard(folder)
            except OSError:
                pass
            return None

    # a full disk

    def full_disk_hint(self) -> str:
        """Where the disk filled up, how much is free there, and how to put the cache elsewhere."""
        system = Path(tempfile.gettempdir())
        if self.root is None:
            where = self._scratch or system
            return (f"the disk is full: without a cache (--edge-no-cache) artifacts are built in {where}, "
                    f"{free_space(where)} there; free space, or set TMPDIR to a folder on a disk with room")
        return (f"the disk is full: the edgecheck cache is {self.root} ({free_space(self.root)} there; the system "
                f"temp folder {system}: {free_space(system)}); free space there, or move the cache to a disk with "
                f"room with --edge-cache-dir DIR (the ini option edge_cache_dir, or ${ENV_CACHE_DIR})")

    # housekeeping

    def _entry_folder(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / key  # type: ignore[operator]

    def _sweep(self) -> None:
        """Once per cache object: remove the temporaries of processes that died (kill -9) mid-write."""
        if not self._swept:
            self._swept = True
            remove_dead_owners(self.root / "tmp", "*")  # type: ignore[operator]

    def _temporary(self, key: str) -> Path:
        """A new folder in tmp/, named after this process (edgecheck.leftovers) so a later session can
        tell whether its writer still runs."""
        folder = self.root / "tmp"  # type: ignore[operator]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{key[:16]}.{owner_tag()}.{uuid.uuid4().hex[:8]}"
        path.mkdir()
        return path

    def _discard(self, folder: Path) -> None:
        """Move a (corrupt) entry out of the way first, so its removal is never half-visible; a link
        is moved and removed as itself, never followed."""
        if os.path.lexists(folder):
            trash = self._temporary("trash") / "entry"
            os.rename(folder, trash)
            remove(trash.parent)


def _problem(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, CorruptEntry) else f"{type(exc).__name__}: {exc}"


class _BuildFailed(Exception):
    """Carries a recipe's own error past the cache's handling of file-system errors."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _build(build: Callable[[Path], Artifact], folder: Path, full_disk_hint: Callable[[], str]) -> Artifact:
    """Run the recipe; its errors (an OSError of its own included) are the recipe's, not the cache's.
    A full disk, from our writes or in a converter's words, says where the cache is and how to move it."""
    try:
        artifact = build(folder)
    except RecipeError as exc:
        if is_full_disk(exc):
            error = RecipeError(f"{exc}\n{full_disk_hint()}")  # a failure whatever the recipe called it
            error.__cause__ = exc
            raise _BuildFailed(error) from exc
        raise _BuildFailed(exc) from exc
    except OSError as exc:
        hint = f"\n{full_disk_hint()}" if is_full_disk(exc) else ""
        error = RecipeError(f"writing the artifact failed: {type(exc).__name__}: {exc}{hint}")
        error.__cause__ = exc
        raise _BuildFailed(error) from exc
    try:
        artifact = _inside(artifact, folder)
        files_present(folder)  # a link or a special file in the folder: the recipe's error, before anything is stored
    except (RecipeError, CorruptEntry) as exc:
        error = exc if isinstance(exc, RecipeError) else RecipeError(
            f"recipe {artifact.recipe!r} wrote what a cache entry cannot hold: {exc}")
        raise _BuildFailed(error) from exc
    return artifact


def _inside(artifact: Artifact, folder: Path) -> Artifact:
    if not artifact.path.resolve().is_relative_to(folder.resolve()) or not artifact.path.is_file():
        raise RecipeError(f"recipe {artifact.recipe!r} did not write its artifact into its folder {folder} "
                          f"(returned {artifact.path})")
    return artifact


def cache_summary(root: Path) -> dict[str, int]:
    """Entries and bytes, for `edgecheck cache info`."""
    artifacts = list((root / "artifacts").glob("*/*")) if (root / "artifacts").exists() else []
    outputs = [p for p in (root / "outputs").glob("*/*") if p.is_dir()] if (root / "outputs").exists() else []
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0
    return {"artifacts": len(artifacts), "outputs": len(outputs), "bytes": size}


def clear_cache(root: Path) -> int:
    """Remove every entry; returns the bytes freed. Refuses a folder that is not an edgecheck cache."""
    if not root.exists():
        return 0
    if not root.is_dir():
        raise EdgecheckError(f"{root} is a file, not an edgecheck cache folder; not removing it")
    known = {"artifacts", "outputs", "locks", "tmp", RECORDS_DIR}
    strangers = [p.name for p in root.iterdir() if p.name not in known]
    if strangers:
        raise EdgecheckError(f"{root} does not look like an edgecheck cache (it holds {', '.join(sorted(strangers)[:5])});"
                             " not removing it")
    freed = cache_summary(root)["bytes"]
    shutil.rmtree(root)
    return freed
