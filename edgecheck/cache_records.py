"""Small results cached by content as JSON records: a model file's facts, a static check's verdict.

What a warm re-run would otherwise recompute without running a model (an ONNX file's facts, the
ops check against its table, the latency estimate) is kept under `records/<kind>/<key[:2]>/<key>.json`
in the cache. The key is the caller's: a hash of everything the record depends on (file bytes,
tables, profile, budgets, edgecheck's own code). A record is written to a temporary file and renamed
into place, so a reader sees no record or a whole one; equal keys mean equal content, so two
writers racing need no lock. Each record is stored with the SHA-256 of its canonical JSON, checked on
every read, as an outputs entry's files are: a record that cannot be read (truncated, of another key)
is a miss, and one whose content no longer matches its SHA-256 (edited by hand: a verdict flipped) is
a miss with a `CacheWarning` naming the file; either way the caller recomputes and writes it again.
A cache folder that cannot be written (read-only, full) only costs the next run the work.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecheck.errors import warn_at

RECORDS_DIR = "records"


class CacheWarning(UserWarning):
    """A cache entry was unreadable or corrupt and has been rebuilt."""


def record_sha256(record: dict[str, Any]) -> str:
    """SHA-256 of a record's canonical JSON (keys sorted): what its file stores beside it and a read checks."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 of edgecheck's own source (every .py file of the package): a record made by other code is
    never served, whatever the version number says (a developer's edit to the cost model included)."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


class RecordCache:
    """JSON records by kind and key under `root`, or nowhere (`root` None: every lookup misses)."""

    def __init__(self, root: Path | None):
        self.root = root
        self.hits: dict[str, int] = {}  # by kind: what a session took from the cache (tests observe it)
        self.misses: dict[str, int] = {}

    def _path(self, kind: str, key: str) -> Path:
        assert self.root is not None
        return self.root / kind / key[:2] / f"{key}.json"

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The record stored under `key`, or None where there is none, it is unreadable, or its content does
        not match its recorded SHA-256 (warned about: someone edited it)."""
        if self.root is None:
            return None
        path = self._path(kind, key)
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("key") != key or not isinstance(stored.get("record"), dict):
            return None
        if stored.get("sha256") != record_sha256(stored["record"]):
            warn_at(CacheWarning(f"edgecheck cache record {path} does not match its recorded SHA-256; "
                                 "recomputing it"), path)
            return None
        return stored["record"]

    def put(self, kind: str, key: str, record: dict[str, Any]) -> None:
        """Store atomically; a cache folder that cannot be written only costs the next run the work."""
        if self.root is None:
            return
        path = self._path(kind, key)
        temporary = path.with_name(f".{key[:16]}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            stored = json.loads(json.dumps(record))  # as a reader gets it (tuples as lists, keys as strings)
            temporary.write_text(json.dumps({"key": key, "record": stored, "sha256": record_sha256(stored)},
                                            sort_keys=True), encoding="utf-8")
            os.replace(temporary, path)
        except OSError:
            try:  # on a read-only cache the cleanup fails too (EROFS, not ENOENT): nothing to clean there
                temporary.unlink(missing_ok=True)
            except OSError:
                pass

    def remember(self, kind: str, key: str, compute: Callable[[], dict[str, Any]],
                 keep: Callable[[dict[str, Any]], bool] = lambda record: True) -> tuple[dict[str, Any], bool]:
        """The record under `key`, else `compute()`, stored where `keep(record)` says so (not: a result the
        machine's state may have spoiled). Returns it and whether it came from the cache."""
        found = self.get(kind, key)
        if found is not None:
            self.hits[kind] = self.hits.get(kind, 0) + 1
            return found, True
        self.misses[kind] = self.misses.get(kind, 0) + 1
        record = compute()
        if keep(record):
            self.put(kind, key, record)
        return record, False
