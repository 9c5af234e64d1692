"""The boards of a lab, per device: which one is free, which one is down and why.

Several boards of one device form a pool: a run takes whichever is free (trying them from a place
that differs per process, so pytest-xdist workers spread over the pool), and waits, saying so, when
every reachable one is busy. Each board's lock lives on the board (flock in its store, held by a
process whose life is its ssh channel), so timings never overlap across this session's workers,
other sessions and other CI machines. A session that ends, dies or freezes releases its hold: the process
holding it exits when its channel closes or when the session's heartbeat stops for 30 s.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from edgecheck.boards.config import Board
from edgecheck.boards.ssh import BoardCommandError, BoardUnreachable, SshLink
from edgecheck.boards.store import BoardStore, agent_script
from edgecheck.errors import BackendUnavailable, EdgecheckError

HEARTBEAT_S = 5.0  # a held lock's heartbeat (the board releases it after 30 s without one)
WAIT_SLICE_S = 5.0  # a wait for a busy board of a pool: each board's lock waited on this long in turn, on the board
RETRY_DOWN_S = 30.0  # a board found down is tried again after this long (the next item may find it back)
MIN_PYTHON = (3, 8)
# its version on any Python, 2.7 included, in ASCII
VERSION_PROBE = "import sys; sys.stdout.write('%d.%d.%d' % tuple(sys.version_info[:3]))"


class BoardsBusy(EdgecheckError):
    """Every board of a device stayed busy for the whole wait."""


class NoBoard(BackendUnavailable):
    """No board of the device can run this: unreachable, no Python or numpy, no runtime. A skip, with the
    reason, like a backend that cannot run here (`--edge-strict` fails it)."""


@dataclass
class BoardState:
    board: Board
    link: SshLink
    store: BoardStore
    facts: dict[str, Any] | None = None
    down: str = ""
    down_at: float = 0.0
    unusable: str = ""  # no python, no numpy: not worth a retry this session
    extra: dict[str, Any] = field(default_factory=dict)

    def ready(self) -> str:
        """'' when the board can take work; else why not (probing it first, once, or again after a while)."""
        if self.unusable:
            return self.unusable
        if self.down and time.monotonic() - self.down_at < RETRY_DOWN_S:
            return f"{self.down} (seen {time.monotonic() - self.down_at:.0f} s ago; tried again {RETRY_DOWN_S:.0f} s after)"
        try:
            if self.facts is None or self.down:
                self.facts = self.store.agent("facts")
            self.down = ""
        except BoardUnreachable as exc:
            self.down, self.down_at = f"unreachable: {exc.detail}", time.monotonic()
            return self.down
        except EdgecheckError as exc:  # reached, but the probe failed: its python's fault (for good), or a hiccup
            problem = self._python_problem()
            if problem:
                self.unusable = problem
                return problem
            self.down, self.down_at = str(exc), time.monotonic()  # tried again after RETRY_DOWN_S
            return self.down
        python = self.facts.get("python", {})
        text = str(python.get("version", "")) if isinstance(python, dict) else ""
        version = tuple(int(p) for p in text.split(".")[:2] if p.isdigit())
        if version and version < MIN_PYTHON:
            self.unusable = (f"its python {self.board.python} is {'.'.join(map(str, version))}; edgecheck's worker "
                             f"needs {'.'.join(map(str, MIN_PYTHON))} or newer")
        elif not self.facts.get("numpy", {}).get("version"):
            why = self.facts.get("numpy", {}).get("error") or "not importable"
            self.unusable = f"its python {self.board.python} has no numpy ({why}); pip install numpy there"
        return self.unusable

    def _python_problem(self) -> str:
        """Why the board's python cannot run edgecheck's helpers, in words: not there, or too old (a Python 3.6
        or 2.7 fails on the helper's first line, with a traceback of its own)."""
        python = self.board.python
        try:
            out = self.link.run([python, "-c", VERSION_PROBE], timeout_s=30, what=f"running {python}")
        except BoardCommandError as exc:
            if exc.status == 127:
                return f"its python {python} is not there ({str(exc).rsplit(': ', 1)[-1].strip()}): set python: in the boards file"
            return ""
        except EdgecheckError:
            return ""
        text = out.decode("ascii", "replace").strip()
        version = tuple(int(p) for p in text.split(".")[:2] if p.isdigit())
        if version and version < MIN_PYTHON:
            return (f"its python {python} is {text}; edgecheck's worker needs {'.'.join(map(str, MIN_PYTHON))} or "
                    "newer (on a Jetson Nano's JetPack 4, install a newer Python beside the system's)")
        return ""

    def lost(self, reason: str) -> None:
        """A connection dropped mid-run: the next item probes it again before using it."""
        self.down, self.down_at = f"unreachable: {reason}", time.monotonic() - RETRY_DOWN_S
        self.facts = None


class BoardLease:
    """A hold of one board's lock: the process on the board that holds it lives as long as this, and as long as
    this session's heartbeat reaches it (a line every HEARTBEAT_S): a session that freezes releases it too."""

    def __init__(self, state: BoardState, proc: subprocess.Popen, waited_s: float):
        self.state, self.proc, self.waited_s = state, proc, waited_s
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"\n")
                self.proc.stdin.flush()
            except (OSError, ValueError, AssertionError):
                return

    def held(self) -> bool:
        """Whether the hold is still there: its process on the board lives only as long as its ssh channel, so a
        connection that dropped (and the ssh client that carried it) has released the lock."""
        return self.proc.poll() is None

    def release(self) -> None:
        self._stop.set()
        self._beat.join(timeout=HEARTBEAT_S + 1)
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        for handle in (self.proc.stdout, self.proc.stderr):
            if handle:
                handle.close()


class BoardPool:
    """Boards by device, and leases on them."""

    def __init__(self, boards: list[Board], session: str, notify: Callable[[str], None] | None = None):
        self.session = session
        self.notify = notify or (lambda text: None)
        self.states: dict[str, list[BoardState]] = {}
        for board in boards:
            link = SshLink(board)
            self.states.setdefault(board.device, []).append(BoardState(board, link, BoardStore(board, link, session)))
        self._turn = os.getpid()

    def serves(self, device: str) -> bool:
        return device in self.states

    def names(self, device: str) -> list[str]:
        return [s.board.name for s in self.states.get(device, [])]

    def _order(self, device: str) -> list[BoardState]:
        states = self.states[device]
        self._turn += 1
        start = self._turn % len(states)
        return states[start:] + states[:start]

    @contextmanager
    def lease(self, device: str, *, exclusive: bool, what: str,
              unusable: Callable[[BoardState], str] | None = None) -> Iterator[BoardLease]:
        """Hold a free board of `device` (exclusive for a timing, shared for an output run) that `unusable` has
        nothing against (a board of the pool without the backend's runtime is passed over for one with it).
        `NoBoard` when none can run this, `BoardsBusy` when the usable ones stayed busy for their lock timeout."""
        started = time.monotonic()
        said = False
        wait_s = 0.0  # the first pass only tries; later ones wait on the board itself (flock, no new process)
        limit = min(s.board.lock_timeout_s for s in self.states[device]) if device in self.states else 0.0
        while True:
            reasons: dict[str, str] = {}
            busy: dict[str, str] = {}
            for state in self._order(device):
                why = state.ready() or (unusable(state) if unusable is not None else "")
                if why:
                    reasons[state.board.name] = why
                    continue
                if wait_s:  # a later pass: each board waited on for what is left of the limit, at most a slice
                    wait_s = min(wait_s, max(0.0, limit - (time.monotonic() - started)))
                try:
                    lease = self._try(state, exclusive, what, started, wait_s)
                except BoardUnreachable as exc:
                    state.lost(exc.detail)
                    reasons[state.board.name] = f"unreachable: {exc.detail}"
                    continue
                if isinstance(lease, BoardLease):
                    try:
                        yield lease
                    finally:
                        lease.release()
                    return
                busy[state.board.name] = lease
            if not busy:
                raise NoBoard(f"{device} board", "no board of it can run this: " + "; ".join(
                    f"{name}: {why}" for name, why in reasons.items()))
            waited = time.monotonic() - started
            if waited >= limit:
                raise BoardsBusy(f"waited {waited:.0f} s for a {device} board ({', '.join(busy)}) while other runs "
                                 f"used them: {'; '.join(f'{n}: {b}' for n, b in busy.items())}")
            if not said:
                self.notify(f"edgecheck: waiting for a {device} board for {what}: "
                            + "; ".join(f"{n} {b}" for n, b in busy.items()))
                said = True
            # each busy board is then waited on in turn, in slices (a pool's first free one is taken); one board
            # alone is waited on in longer slices: the waiting costs the board a sleeping process, not a new one
            slice_s = WAIT_SLICE_S if len(busy) > 1 else 6 * WAIT_SLICE_S
            wait_s = max(0.0, min(slice_s, limit - waited))

    def _try(self, state: BoardState, exclusive: bool, what: str, started: float,
             wait_s: float = 0.0) -> BoardLease | str:
        """The board's lock if it is free within `wait_s` (waited for on the board); else who holds it, in words."""
        holder = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "what": what})
        command = [state.board.python, "-c", agent_script(), "lock", state.board.store,
                   "exclusive" if exclusive else "shared", f"{wait_s:g}", holder]
        proc = state.link.popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        line = b""
        deadline = time.monotonic() + wait_s + 60
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
        try:
            answer = json.loads(line.decode("utf-8", "replace").strip() or "{}")
        except ValueError:
            answer = {}
        if answer.get("held"):
            return BoardLease(state, proc, time.monotonic() - started)
        proc.kill()
        _, err = proc.communicate()
        if proc.returncode == 255:
            said = err.decode("utf-8", "replace").strip().splitlines()
            raise BoardUnreachable(state.board, said[-1] if said else "the connection closed")
        if "held" not in answer:
            raise BoardUnreachable(state.board, f"its lock did not answer ({err.decode('utf-8', 'replace')[-300:]!r})")
        holder_of = answer.get("holder") or {}
        since = holder_of.get("since")
        return (f"busy ({holder_of.get('what') or 'another run'}"
                + (f" from {holder_of.get('host')} pid {holder_of.get('pid')}" if holder_of.get("host") else "")
                + (f", {time.time() - since:.0f} s so far" if since else "") + ")")

    def close(self) -> None:
        """Remove this session's job folders on the boards it used, kill anything of it left there, and stop
        the ssh masters."""
        for states in self.states.values():
            for state in states:
                if state.store._job is not None:
                    try:
                        state.store.clean()
                    except Exception:
                        pass
                state.link.close()
