"""Locks between edgecheck processes, and what a wait on one says.

One timing at a time per device: figures taken while another model runs are not comparable. A
read-write lock per device, shared by every edgecheck process on the machine (pytest-xdist
workers, parallel CI jobs of one account): runs that only compute outputs hold it shared and
proceed side by side; a timing holds it exclusive, so it never overlaps another timing or any
other model run of edgecheck's. filelock's ReadWriteLock does the locking (SQLite underneath).

`exclusive_lock` (a cache entry's) says once, after a short wait, what it waits for and which
process holds it, so a session blocked by another never looks hung.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgecheck import progress
from edgecheck.errors import EdgecheckError

LOCK_DIR_VARIABLE = "EDGECHECK_LOCK_DIR"
NOTICE_AFTER_S = 2.0  # a wait on another process's lock longer than this is said, once
TICK_S = 0.5  # a device lock is tried this often while another process holds it


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
    acquire = lock.acquire_write if exclusive else lock.acquire_read
    try:
        while True:  # in short waits, so a step's progress lines are said while another process times
            left = timeout_s - (time.monotonic() - started)
            try:
                acquire(timeout=max(0.0, min(TICK_S, left)))
                break
            except Timeout:
                if left <= TICK_S:
                    raise
                progress.tick()
    except Timeout:
        lock.close()
        raise EdgecheckError(f"waited {timeout_s:g} s for the {'timing' if exclusive else 'shared'} lock of "
                             f"{device} ({path}): another edgecheck run holds it") from None
    try:
        yield time.monotonic() - started
    finally:
        lock.release()
        lock.close()


def print_notice(text: str) -> None:
    """A line for whoever watches the run (stderr)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def pytest_notice(config: Any) -> Callable[[str], None]:
    """A line on pytest's terminal, on a line of its own, from inside a session: output capture is
    suspended while it is written, so it reaches the terminal (or the CI log) during the wait. An xdist
    worker's terminal is not shown: its line goes with its progress lines to the controller's."""
    def notify(text: str) -> None:
        # an xdist worker's, or said from a thread of the session's own (a reference run beside an artifact's
        # making): the progress lines, which write under the terminal's lock
        if hasattr(config, "workerinput") or threading.current_thread() is not threading.main_thread():
            progress.say(text)
            return
        capture = config.pluginmanager.getplugin("capturemanager")
        terminal = config.pluginmanager.getplugin("terminalreporter")
        if capture is None or terminal is None:
            print_notice(text)
            return
        with capture.global_and_fixture_disabled():
            terminal.write_line(text)
            terminal.flush()

    return notify


@contextmanager
def exclusive_lock(path: Path, waiting_for: str, notify: Callable[[str], None], timeout_s: float) -> Iterator[None]:
    """Hold the file lock `path`. A wait longer than NOTICE_AFTER_S is said once through `notify`:
    `waiting_for`, the lock file and the pid holding it (each holder records itself in
    `<path>.holder`: the lock file itself is truncated by whoever opens it). A lock not had within
    `timeout_s` raises filelock's Timeout (a TimeoutError)."""
    from filelock import FileLock, Timeout

    holder = path.with_name(path.name + ".holder")
    lock = FileLock(path)
    try:
        lock.acquire(timeout=min(NOTICE_AFTER_S, timeout_s))
    except Timeout:
        if timeout_s <= NOTICE_AFTER_S:
            raise
        notify(f"edgecheck: waiting for {waiting_for}: another process holds its lock {path} ({_holder(holder)}); "
               f"waiting up to {timeout_s:g} s")
        lock.acquire(timeout=timeout_s - NOTICE_AFTER_S)
    try:
        try:
            holder.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                          "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
        except OSError:  # a full or read-only disk: the lock still holds, a waiter just cannot say who
            pass
        yield
    finally:
        try:
            holder.unlink(missing_ok=True)  # before the release: the next holder writes its own
        except OSError:
            pass
        lock.release()


def _holder(path: Path) -> str:
    """Who holds a lock, as its holder recorded it."""
    try:
        found = json.loads(path.read_text()[:1000])
        return f"pid {int(found['pid'])} on {str(found['host'])[:64]}, since {str(found['since'])[:40]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its pid is not recorded"
