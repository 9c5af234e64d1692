from __future__ import annotations

# The board's side of edgecheck's store and locks, run there as `python -c <probe.py + this + a call of
# agent_main> OP STORE ARGS` (edgecheck/boards/store.py sends it):
# standard library only, Python 3.8+, nothing of edgecheck installed. Each operation prints one JSON
# object on stdout; a failure prints {"error": kind, "message": ...} and exits with status 3.
#
# The store (a folder on the board, `store:` in the boards file) holds files by content: blobs/<sha256><suffix>
# (artifacts, input sets), code/<sha256>/ (edgecheck's worker package), jobs/<session>/ (a session's outputs),
# board.lock (one timing at a time across sessions, CI jobs and hosts: flock, held by a process that lives as
# long as its ssh channel).

import errno
import fcntl
import hashlib
import io
import json
import os
import select
import shutil
import signal
import socket
import sys
import tarfile
import time

AGENT_FAILED = 3
HEARTBEAT_TIMEOUT_S = 30.0  # no heartbeat from the session this long: the hold is released
KEEP_RECENT_S = 600.0  # a blob used in the last ten minutes is never evicted: a run may be loading it


class AgentError(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def _store(path):
    store = os.path.realpath(os.path.expanduser(path))  # resolved: a store reached through a link is inside itself
    for sub in ("blobs", "code", "jobs"):
        os.makedirs(os.path.join(store, sub), exist_ok=True)
    return store


def _inside(store, path):
    real = os.path.realpath(path)
    if not (real == store or real.startswith(store + os.sep)):
        raise AgentError("refused", "%s is outside the store %s" % (path, store))
    return real


def _disk_error(exc, store, what, size):
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            stat = os.statvfs(store)
            free = stat.f_bavail * stat.f_frsize
        except OSError:
            free = -1
        return AgentError("disk full", "the board's disk is full: cannot write %s (%d bytes) in %s (%s free)" % (
            what, size, store, "%.1f MiB" % (free / 1048576.0) if free >= 0 else "unknown"))
    return AgentError("write", "cannot write %s in %s: %s" % (what, store, exc))


def _receive(store, final, digest, what, expected_size=None):
    """stdin to `final`, through a temporary file, checked against its SHA-256: a torn copy is never kept."""
    tmp = "%s.tmp-%d" % (final, os.getpid())
    sha = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as out:
            while True:
                chunk = sys.stdin.buffer.read(1 << 20)
                if not chunk:
                    break
                sha.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        _remove(tmp)
        raise _disk_error(exc, store, what, expected_size or size)
    if sha.hexdigest() != digest:
        _remove(tmp)
        raise AgentError("corrupt", "%s arrived with SHA-256 %s, not %s (%d bytes): the copy was torn" % (
            what, sha.hexdigest(), digest, size))
    os.replace(tmp, final)
    return size


def _remove(path):
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def _evict(store, limit_bytes, incoming):
    """Remove the least recently used blobs until the incoming one fits under the limit (recent ones stay)."""
    folder = os.path.join(store, "blobs")
    entries = []
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        try:
            stat = os.stat(path)
        except OSError:
            continue
        entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    removed = []
    now = time.time()
    for mtime, size, path in sorted(entries):
        if total + incoming <= limit_bytes:
            break
        if now - mtime < KEEP_RECENT_S:
            continue
        _remove(path)
        total -= size
        removed.append(os.path.basename(path))
    return removed, total


def op_have(store, wanted):
    """Which blobs (sha256 + suffix) and code bundles are missing; present ones are touched (recently used)."""
    missing = []
    for name in json.loads(wanted):
        if name.startswith("code-"):
            path = os.path.join(store, "code", name[5:], "ok")
        else:
            path = os.path.join(store, "blobs", name)
        if os.path.exists(path):
            try:
                os.utime(path, None)
            except OSError:
                pass
        else:
            missing.append(name)
    return {"missing": missing, "store": store}


def op_put(store, name, size, limit_mb):
    digest = name[:64]
    final = os.path.join(store, "blobs", name)
    removed, _ = _evict(store, float(limit_mb) * 1048576, int(size))
    received = _receive(store, final, digest, name, int(size))
    return {"path": final, "bytes": received, "evicted": removed}


def op_code(store, digest):
    """edgecheck's worker package, a .tar.gz on stdin, unpacked to code/<sha256>/ (with an `ok` mark last)."""
    folder = os.path.join(store, "code", digest)
    if os.path.exists(os.path.join(folder, "ok")):
        return {"path": folder}
    data = sys.stdin.buffer.read()
    if hashlib.sha256(data).hexdigest() != digest:
        raise AgentError("corrupt", "edgecheck's worker package arrived torn (SHA-256 differs)")
    tmp = "%s.tmp-%d" % (folder, os.getpid())
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as bundle:
            for member in bundle.getmembers():
                if member.name.startswith(("/", "..")) or ".." in member.name.split("/") or not (member.isfile() or member.isdir()):
                    raise AgentError("corrupt", "refusing member %r of the worker package" % member.name)
            bundle.extractall(tmp)
        with open(os.path.join(tmp, "ok"), "w") as mark:
            mark.write(digest)
        for attempt in range(3):
            try:
                os.rename(tmp, folder)  # atomic: only into a missing (or empty) folder
                break
            except OSError:
                if os.path.exists(os.path.join(folder, "ok")):
                    _remove(tmp)  # another session installed it meanwhile: its copy stays (a worker may use it)
                    break
                if attempt == 2:
                    raise
                torn = "%s.torn-%d" % (folder, os.getpid())  # a torn attempt (no `ok`): moved aside, then gone
                try:
                    os.rename(folder, torn)
                except OSError:
                    pass
                _remove(torn)
    except OSError as exc:
        _remove(tmp)
        raise _disk_error(exc, store, "edgecheck's worker package", len(data) * 4)
    # worker packages beyond the three most recently used go (`ok` is touched by each use), never a recent one
    folder_of = os.path.join(store, "code")
    used = []
    for name in os.listdir(folder_of):
        try:
            used.append((os.path.getmtime(os.path.join(folder_of, name, "ok")), name))
        except OSError:
            continue
    now = time.time()
    for mtime, name in sorted(used)[:-3]:
        if name != digest and now - mtime > KEEP_RECENT_S:
            _remove(os.path.join(folder_of, name))
    return {"path": folder}


STALE_JOB_S = 86400.0  # a job folder untouched for a day is a killed session's: removed by the next one


def op_job(store, session):
    jobs = os.path.join(store, "jobs")
    now = time.time()
    for name in os.listdir(jobs):
        path = os.path.join(jobs, name)
        try:
            if name != session and now - os.path.getmtime(path) > STALE_JOB_S:
                _remove(path)
        except OSError:
            pass
    folder = os.path.join(jobs, session)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise _disk_error(exc, store, "a job folder", 0)
    return {"path": folder}


def op_prepare(store, wanted, session):
    """`have` and `job` in one round trip: what a run must send, and the session's job folder."""
    answer = op_have(store, wanted)
    answer["job"] = op_job(store, session)["path"]
    return answer


def op_get(store, path, remove="0"):
    """A file of the store on stdout (removed after, with remove=1: a job's outputs, fetched once)."""
    real = _inside(store, path)
    try:
        handle = open(real, "rb")
    except OSError as exc:
        sys.stderr.write("cannot read %s: %s\n" % (path, exc))
        raise AgentError("read", "cannot read %s: %s" % (path, exc))
    with handle:
        shutil.copyfileobj(handle, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    if remove == "1":
        _remove(real)
    return None


def op_clean(store, session):
    """A session's job folder goes, and any worker of it still running (by its process group)."""
    _remove(_inside(store, os.path.join(store, "jobs", session)))
    return {"killed": _kill_workers(store, session)}


def _kill_workers(store, session):
    killed = []
    marker = ("edgecheck-session=%s" % session).encode()
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.killpg(os.getpgid(int(pid)), signal.SIGKILL)
            except OSError:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    continue
            killed.append(int(pid))
    return killed


def op_kill(store, session, pid):
    """One worker's process group, only if it is this session's worker (its command line says so)."""
    marker = ("edgecheck-session=%s" % session).encode()
    try:
        with open("/proc/%d/cmdline" % int(pid), "rb") as handle:
            if marker not in handle.read():
                return {"killed": False}
        os.killpg(os.getpgid(int(pid)), signal.SIGKILL)
    except OSError:
        return {"killed": False}
    return {"killed": True}


def op_lock(store, mode, wait_s, holder, heartbeat_timeout_s=None):
    """Hold the board's lock (exclusive: a timing; shared: an output run) until stdin closes (the session's
    channel ends, however it ends). Prints {"held": true} once held, or {"held": false, "holder": ...}
    if it could not within `wait_s` (0: only try)."""
    _die_with_parent()
    path = os.path.join(store, "board.lock")
    handle = open(path, "a+")
    flag = fcntl.LOCK_EX if mode == "exclusive" else fcntl.LOCK_SH
    deadline = time.monotonic() + float(wait_s)
    while True:
        try:
            fcntl.flock(handle.fileno(), flag | fcntl.LOCK_NB)
            break
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
        if time.monotonic() >= deadline:
            return {"held": False, "holder": _holder(store)}
        time.sleep(0.2)
    if mode == "exclusive":
        try:
            with open(path + ".holder", "w") as note:
                note.write(json.dumps(dict(json.loads(holder), since=time.time(), board_pid=os.getpid())))
        except (OSError, ValueError):
            pass
    print(json.dumps({"held": True, "host": socket.gethostname()}), flush=True)
    # held while the session's heartbeat comes (a line every few seconds) and its end is open: a session that
    # closed, died, or froze (a host that hangs keeps its TCP connection open for hours) releases it
    stdin = sys.stdin.buffer.fileno()
    while True:
        ready, _, _ = select.select([stdin], [], [], float(heartbeat_timeout_s or HEARTBEAT_TIMEOUT_S))
        if not ready or not os.read(stdin, 4096):
            break
    if mode == "exclusive":
        _remove(path + ".holder")
    return None


def _die_with_parent():
    """Linux: the holder dies with the ssh session that started it (stdin's end says so too)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _holder(store):
    try:
        with open(os.path.join(store, "board.lock.holder")) as note:
            return json.loads(note.read())
    except (OSError, ValueError):
        return {}


def agent_main(argv):
    if len(argv) < 2:
        print(json.dumps({"error": "usage", "message": "agent OP STORE ARGS..."}))
        return AGENT_FAILED
    op, store = argv[0], argv[1]
    try:
        store = _store(store)
        if op == "facts":
            answer = board_facts(store)  # noqa: F821 - probe.py comes first in the script sent to the board
        elif op == "tools":
            answer = tools_facts(*argv[2:5])  # noqa: F821 - tools_probe.py comes before this in the script
        elif op == "thermal":
            answer = thermal_snapshot()  # noqa: F821
        else:
            answer = {"have": op_have, "prepare": op_prepare, "put": op_put, "code": op_code, "job": op_job, "get": op_get,
                      "clean": op_clean, "kill": op_kill, "lock": op_lock}[op](store, *argv[2:])
    except AgentError as exc:
        print(json.dumps({"error": exc.kind, "message": str(exc)}), flush=True)
        return AGENT_FAILED
    except OSError as exc:
        error = _disk_error(exc, store, "the store", 0)
        print(json.dumps({"error": error.kind, "message": str(error)}), flush=True)
        return AGENT_FAILED
    if answer is not None:
        print(json.dumps(answer), flush=True)
    return 0
