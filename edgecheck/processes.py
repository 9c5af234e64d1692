"""Helpers for edgecheck's child processes (workers, shape inference): tie a child's life to its
parent, read its memory figures, name the signal that killed one.

Standard library only: a worker may run under another interpreter than the session's, and the
lowest layers (analysis) start children too, so this module sits below everything that uses it.
"""

from __future__ import annotations

import os
import signal
import sys

# what a worker's failure message puts before the lines the worker printed (a reader keeps the message's own)
WORKER_OUTPUT = "\n--- last lines the worker printed ---"


def signal_name(number: int) -> str:
    """SIGSEGV, SIGABRT, ... for a process killed by a signal (or "signal N" where it has no name)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def proc_status_kb(field: str, pid: int | str = "self") -> int | None:
    """A figure from /proc/<pid>/status (VmRSS, VmHWM, VmData), in KiB; None where there is no /proc
    or no such process."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def cores_per_worker(workers: int) -> int | None:
    """The CPUs each of `workers` pytest-xdist workers may keep busy: those this process may run on, divided among
    them, at least one. None for a session alone (no xdist, or `-n 1`): a runtime's own default is kept. Two
    workers on two cores each running a runtime's default thread pool (one thread per physical core, spinning while
    it waits) would run four busy threads on two cores."""
    return session_cores(workers) if workers > 1 else None


def session_cores(workers: int = 1) -> int:
    """The CPUs one of `workers` sessions (pytest-xdist workers; 1: a session alone) may keep busy: those this
    process may run on, divided among them, at least one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, workers))


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (what can be allocated without swapping), None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    words = line.split()
                    return int(words[1]) * (1024 if words[2:3] == ["kB"] else 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def kill_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies (PR_SET_PDEATHSIG; also usable between fork
    and exec, as a subprocess's preexec_fn: the setting survives exec)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:
            pass


def die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this child process when the session dies, so nothing outlives pytest."""
    kill_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(3)
