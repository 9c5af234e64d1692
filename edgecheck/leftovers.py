"""Temporary files named after the process that owns them, so that a later session removes what a
killed one left (kill -9, an out-of-memory kill, a power cut) and never what a live one is using.

A name holds an owner tag `h<host>p<pid>s<start>`: a digest of the host (its name and PID namespace,
so containers that share a folder are told apart), the process id, and on Linux the process's start
time from /proc (a pid the system has since given to another process is told apart). A leftover is
removed only when its owner ran on this host and that process is gone, a zombie, or another process
under a reused pid; where that cannot be told (another host, a name without a tag, another account's
file), it is kept.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import socket
import stat
from pathlib import Path

OWNER_TAG = re.compile(r"(?<![0-9a-z])h(?P<host>[0-9a-f]{8})p(?P<pid>[0-9]{1,10})s(?P<start>[0-9]{1,20}|x)(?![0-9a-z])")
_ZOMBIE = "zombie"


@functools.cache
def _host() -> str:
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux: the host name alone
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:8]


def _start(pid: int) -> str | None:
    """When the process started (clock ticks since boot, from /proc), "zombie" for one that has
    exited unreaped, None where /proc does not say (not Linux, or the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
        return _ZOMBIE if fields[0] in ("Z", "X") else fields[19]
    except (OSError, IndexError, ValueError):
        return None


def _tag(pid: int) -> str:
    start = _start(pid)
    return f"h{_host()}p{pid}s{start if start and start != _ZOMBIE else 'x'}"


_own_tag = functools.cache(_tag)  # by pid: a forked child has its own


def owner_tag(pid: int | None = None) -> str:
    """The tag of this process (or of `pid`), to put in the name of a temporary file or folder it creates."""
    return _own_tag(os.getpid()) if pid is None or pid == os.getpid() else _tag(pid)


def owner_is_dead(name: str) -> bool:
    """True only when `name` holds the tag of a process of this host that no longer runs."""
    found = OWNER_TAG.search(name)
    if found is None or found["host"] != _host():
        return False
    pid = int(found["pid"])
    if pid == os.getpid():
        return found.group(0) != owner_tag()  # this pid, but an earlier process's tag
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):  # alive under another account, or no such pid possible
        return False
    start = _start(pid)
    if start == _ZOMBIE:
        return True
    return found["start"] != "x" and start is not None and start != found["start"]


def remove_dead_owners(folder: Path, pattern: str) -> list[str]:
    """Remove the entries of `folder` matching `pattern` whose owner died; returns their names.

    Never follows a link (a link is removed as itself), never touches another account's files,
    and an entry another session removes at the same moment is simply gone.
    """
    try:
        candidates = [p for p in folder.glob(pattern) if owner_is_dead(p.name)]
    except OSError:
        return []
    removed = []
    uid = os.getuid() if hasattr(os, "getuid") else None
    for path in candidates:
        try:
            info = path.lstat()
            if uid is not None and info.st_uid != uid:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path, ignore_errors=True)
                if path.exists():
                    continue
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path.name)
    return removed
