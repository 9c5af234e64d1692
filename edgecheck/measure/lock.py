"""One timing at a time per device: figures taken while another model runs are not comparable.

A read-write lock per device, shared by every edgecheck process on the machine (pytest-xdist
workers, parallel CI jobs of one account): runs that only compute outputs hold it shared and
proceed side by side; a timing holds it exclusive, so it never overlaps another timing or any
other model run of edgecheck's. filelock's ReadWriteLock does the locking (SQLite underneath).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgecheck.errors import EdgecheckError

LOCK_DIR_VARIABLE = "EDGECHECK_LOCK_DIR"


def lock_dir() -> Path:
    """$EDGECHECK_LOCK_DIR (point two accounts at one folder to share it), else one per account in
    the temp folder."""
    configured = os.environ.get(LOCK_DIR_VARIABLE)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(configured) if configured else Path(tempfile.gettempdir()) / f"edgecheck-locks-{uid}"


def lock_path(device: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", device)[:60].strip("-") or "device"
    return lock_dir() / f"{slug}-{hashlib.sha256(device.encode()).hexdigest()[:12]}.db"


@contextmanager
def device_lock(device: str, *, exclusive: bool, timeout_s: float = 3600.0) -> Iterator[float]:
    """Hold `device`'s lock (exclusive for timing, shared otherwise); yields the seconds waited."""
    from filelock import ReadWriteLock, Timeout

    path = lock_path(device)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = ReadWriteLock(path, is_singleton=False)
    except OSError as exc:
        raise EdgecheckError(f"cannot use the device lock {path}: {exc} (set ${LOCK_DIR_VARIABLE} to a writable "
                             "folder)") from None
    started = time.monotonic()
    try:
        if exclusive:
            lock.acquire_write(timeout=timeout_s)
        else:
            lock.acquire_read(timeout=timeout_s)
    except Timeout:
        lock.close()
        raise EdgecheckError(f"waited {timeout_s:g} s for the {'timing' if exclusive else 'shared'} lock of "
                             f"{device} ({path}): another edgecheck run holds it") from None
    try:
        yield time.monotonic() - started
    finally:
        lock.release()
        lock.close()
