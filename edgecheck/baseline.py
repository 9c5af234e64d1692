"""Stored figures of a run, so a later run can be compared against them.

`--edge-save-baseline NAME` writes the figures of every edgecheck item to `NAME.json`;
`--edge-baseline NAME` reads them back. A baseline is evidence a team relies on, so saving is
atomic (a reader never sees half a file) and never clobbers one silently: two CI jobs saving the
same new name at once leave exactly one file, and the other job is told so.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgecheck.checks.result import CheckResult, measured_figures
from edgecheck.errors import EdgecheckError
from edgecheck.results import fsync_directory, item_id, record_result
from edgecheck.userfile import UnreadableFile, read_bounded

BASELINE_FORMAT = 1
OVERWRITE_FLAG = "--edge-overwrite-baseline"
IDENTITY = ("spec", "target", "backend", "recipe", "check")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_BASELINE_BYTES = 64 * 2**20  # ~1 kB an item: tens of thousands of items; and a bound on memory


class BaselineError(EdgecheckError):
    """A baseline is missing, unreadable, corrupt, of another format version, or badly named."""

    def __init__(self, path: Path | str | None, message: str):
        self.path = Path(path) if path is not None else None
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes (xdist, multiprocessing)
        return (type(self), (self.path, self.reason))


class BaselineExists(BaselineError):
    """Saving would replace an existing baseline; only an explicit overwrite may."""


def check_name(name: str) -> str:
    """The name, if it is safe as a file name in the baseline folder (no path tricks)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        shown = repr(name)[:60]
        raise BaselineError(None, f"baseline name {shown} is not valid: use 1-100 letters, digits, '.', '_' or "
                            "'-', starting with a letter or digit, without '..' or path separators")
    return name


def baseline_path(directory: Path, name: str) -> Path:
    """Where the baseline of that name lives (the name is checked first)."""
    return Path(directory) / f"{check_name(name)}.json"


def item_key(spec: str, item_id: str) -> str:
    """The key of one item across runs: the spec's relative path and the test id."""
    return f"{spec}::{item_id}"


def figures_from_record(record: Mapping[str, Any]) -> tuple[str, dict[str, float]] | None:
    """(item key, {figure name: value}) of an item that produced a result; None for one that did not."""
    if any(not isinstance(record.get(k), str) or not record.get(k) for k in IDENTITY):
        return None
    try:
        result = record_result(record)
    except (KeyError, ValueError):
        return None
    if result is None:
        return None
    from edgecheck.checks.base import get_check
    from edgecheck.errors import EdgecheckError

    try:
        kind = get_check(result.check)
    except EdgecheckError:  # a kind not installed in this session: every figure it measured
        figures = measured_figures(result)
    else:
        figures = kind.baseline_figures(result)
    return item_key(record["spec"], item_id(record)), figures


@dataclass(frozen=True)
class Baseline:
    """One stored run: when, on what, and each item's figures."""

    name: str
    path: Path
    created: str
    environment: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict[str, float]] = field(default_factory=dict)
    # where each item's figures were measured (its `env.machine`: this host's signature, or a board's), so that a
    # board's figures are compared only with the same board's; absent in baselines saved before boards
    places: dict[str, str] = field(default_factory=dict)

    def place(self, key: str) -> str | None:
        """Where an item's stored figures were measured: its own record's place, else the run's machine."""
        return self.places.get(key) or self.environment.get("machine")

    def figures(self, key: str) -> dict[str, float] | None:
        """The stored figures of an item (see `item_key`), None if the baseline did not have it."""
        return self.records.get(key)


def _document(name: str, records: Mapping[str, Mapping[str, float]], environment: Mapping[str, str],
              path: Path, places: Mapping[str, str] | None = None) -> str:
    clean: dict[str, dict[str, float]] = {}
    for key, figures in records.items():
        clean[str(key)] = {}
        for figure, value in figures.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise BaselineError(path, f"cannot save {key} {figure} = {value!r}: only finite numbers are stored")
            clean[str(key)][str(figure)] = float(value)
    document = {
        "edgecheck_baseline": BASELINE_FORMAT,
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": {str(k): str(v) for k, v in environment.items()},
        "records": clean,
        "places": {str(k): str(v) for k, v in (places or {}).items() if str(k) in clean},
    }
    return json.dumps(document, sort_keys=True, indent=1, allow_nan=False) + "\n"


def _exists(final: Path) -> BaselineExists:
    return BaselineExists(final, f"a baseline of that name exists already; pass {OVERWRITE_FLAG} to replace it, "
                          "or save under another name")


def _publish_new(tmp: str, final: Path) -> None:
    """Give the finished temp file the final name, failing if that name is taken (even by a racing saver)."""
    try:
        os.link(tmp, final)
        return
    except FileExistsError:
        raise _exists(final) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
    # No hard links on this file system: claim the name exclusively, then move the content over it.
    # A reader in the gap sees an empty file and is told it is corrupt, never half a baseline.
    try:
        os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        raise _exists(final) from None
    os.replace(tmp, final)


def save_baseline(directory: Path, name: str, records: Mapping[str, Mapping[str, float]],
                  environment: Mapping[str, str], overwrite: bool = False,
                  places: Mapping[str, str] | None = None) -> Path:
    """Write the baseline atomically; refuse to replace an existing one unless `overwrite`."""
    final = baseline_path(directory, name)
    directory = final.parent
    text = _document(name, records, environment, final, places)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BaselineError(directory, f"cannot create the baseline folder: {exc.strerror or exc}") from None
    if not overwrite and final.exists():
        raise _exists(final)  # a cheap early answer; the link below is what really decides
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(stream.fileno(), 0o644)  # mkstemp makes it 0600; baselines are shared
            os.fsync(stream.fileno())
        if overwrite:
            os.replace(tmp, final)
        else:
            _publish_new(tmp, final)
        fsync_directory(directory)
    except BaselineError:
        raise
    except OSError as exc:
        raise BaselineError(final, f"cannot save the baseline: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass  # os.replace moved it
            except OSError:
                pass
    return final


def _reject_constant(constant: str) -> float:
    raise ValueError(f"{constant} is not a finite number")


def _require(condition: bool, path: Path, message: str) -> None:
    if not condition:
        raise BaselineError(path, f"corrupt baseline: {message}")


def _records(raw: Any, path: Path) -> dict[str, dict[str, float]]:
    _require(isinstance(raw, dict), path, "'records' must be an object of items")
    records: dict[str, dict[str, float]] = {}
    for key, figures in raw.items():
        _require(isinstance(figures, dict), path, f"records[{key!r}] must be an object of figures")
        for figure, value in figures.items():
            ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            _require(ok, path, f"records[{key!r}][{figure!r}] = {value!r} is not a finite number")
        records[key] = {figure: float(value) for figure, value in figures.items()}
    return records


def load_baseline(directory: Path, name: str) -> Baseline:
    """Read and validate a baseline; every problem is a BaselineError naming the file."""
    path = baseline_path(directory, name)
    if not os.path.lexists(path):
        known = list_baselines(path.parent)
        hint = f" (baselines there: {', '.join(known)})" if known else ""
        message = f"no baseline named {name!r}: save one with --edge-save-baseline {name}{hint}"
        raise BaselineError(path, message)
    try:
        text = read_bounded(path, MAX_BASELINE_BYTES, "baseline").decode("utf-8")
    except UnreadableFile as exc:
        raise BaselineError(path, exc.reason) from None
    except UnicodeDecodeError as exc:
        raise BaselineError(path, f"cannot read the baseline: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise BaselineError(path, f"corrupt baseline, not valid JSON: {exc}") from None
    except RecursionError:  # json's decoder recurses once per bracket; a baseline is three levels deep
        raise BaselineError(path, "corrupt baseline: nested too deeply to be one (a baseline is an object of "
                            "items, each an object of figures)") from None
    _require(isinstance(document, dict), path, "the file must hold a JSON object")
    version = document.get("edgecheck_baseline")
    if version != BASELINE_FORMAT or isinstance(version, bool):
        raise BaselineError(path, f"baseline format {version!r} is not {BASELINE_FORMAT}, the one this edgecheck "
                            "reads: save the baseline again with this version")
    for key in ("name", "created"):
        _require(isinstance(document.get(key), str), path, f"{key!r} must be a string")
    try:
        datetime.fromisoformat(document["created"])
    except ValueError:
        message = f"corrupt baseline: 'created' {document['created']!r} is not an ISO 8601 time"
        raise BaselineError(path, message) from None
    environment = document.get("environment")
    _require(isinstance(environment, dict) and all(isinstance(v, str) for v in environment.values()),
             path, "'environment' must be an object of strings")
    places = document.get("places", {})
    _require(isinstance(places, dict) and all(isinstance(v, str) for v in places.values()),
             path, "'places' must be an object of strings")
    return Baseline(name=name, path=path, created=document["created"], environment=dict(environment),
                    records=_records(document.get("records"), path), places=dict(places))


def list_baselines(directory: Path) -> list[str]:
    """Names of the baselines saved in the folder, sorted (none if the folder does not exist)."""
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return []
    names = []
    for entry in entries:
        if entry.suffix == ".json" and _NAME.fullmatch(entry.stem) and ".." not in entry.stem and entry.is_file():
            names.append(entry.stem)
    return sorted(names)
