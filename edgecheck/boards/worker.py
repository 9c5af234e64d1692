"""A worker on a board: edgecheck's own worker (edgecheck/worker/main.py) started over the board's ssh
link under the board's Python, speaking the same JSON lines and .npz files as a local one.

The channel's stdout carries the worker's events and its stderr (with whatever a runtime prints)
goes to a log here, so everything `WorkerProcess` does (phases, limits, a crash's last lines) holds
unchanged, but its memory: the worker limits its own (RLIMIT_DATA, half the board's memory), and its
resident memory cannot be watched from here. A worker that hangs is killed twice over: here (its ssh client's channel closes, and the
worker kills its own process group when its stdin ends) and there (the agent kills its group by
pid, if the board still answers).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from edgecheck.boards.config import Board
from edgecheck.boards.ssh import SshLink
from edgecheck.boards.store import BoardStore
from edgecheck.worker.client import WorkerFailure, WorkerProcess, WorkerSettings, log_tail

# the shipped package first, and nothing of the current folder: an `edgecheck` installed on the board (another
# version) never stands in for the one this session sent
BOARD_BOOTSTRAP = ("import json, sys; config = json.loads(sys.argv[1]); "
                   "sys.path[:] = config['edgecheck_path'] + [p for p in sys.path if p not in ('', '.')]; "
                   "from edgecheck.worker.main import main; main()")


class BoardWorker(WorkerProcess):
    """One worker process on a board; `request()` as for a local worker."""

    def __init__(self, board: Board, link: SshLink, store: BoardStore, settings: WorkerSettings, scratch: Path,
                 name: str, code_path: str):
        self.board, self.link, self.store, self.code_path = board, link, store, code_path
        super().__init__(board.python, settings, scratch, name)

    def _spawn(self, events_fd: int, scratch: Path) -> subprocess.Popen:
        """The worker over the board's ssh link: the channel's stdout carries its events, stderr its output."""
        config = {"events_fd": "stdout", "parent_pid": None, "memory_limit_mb": self.settings.memory_limit_mb,
                  "edgecheck_path": [self.code_path], "on_board": True,
                  "marker": f"edgecheck-session={self.store.session}"}
        return self.link.popen([self.board.python, "-c", BOARD_BOOTSTRAP, json.dumps(config)],
                               stdin=subprocess.PIPE, stdout=events_fd, stderr=self._log)

    def _start_failure(self, exc: Exception) -> WorkerFailure:
        return WorkerFailure(f"worker on {self.board.name}", self.board.python, "starting", "start",
                             f"cannot start ssh for {self.board.describe()}: {type(exc).__name__}: {exc}")

    def _resident_kb(self) -> int | None:
        return None  # the worker is on the board: the local process is its ssh client

    def kill(self) -> None:
        """Kill the ssh client here; if the worker had started and the board still answers, its process group
        there too (a channel that closes does it as well, from the worker's side)."""
        pid = self.ready.get("pgid") or self.ready.get("pid")
        super().kill()
        if pid and self.proc.returncode not in (0,):
            try:
                self.store.agent("kill", self.store.session, str(int(pid)), timeout_s=15)
            except Exception:
                pass  # the board is gone: the worker's own watch (stdin closed, parent died) ends it

    def _fail_dead(self, backend: str, artifact: Path, step: str) -> None:
        self._wait_exit()
        code = self.proc.returncode
        if code == 255:  # ssh's own status, for a lost connection and for a command killed by a signal alike
            tail = log_tail(self.log_path)
            said = tail.strip().splitlines()[-1] if tail.strip() else "the connection closed"
            # the connection this channel rode is still up: the worker died on the board, not the link (asked
            # before anything reconnects: a board back after a blip must not pass for a crash)
            crashed = self.link.master_alive()
            self.kill()
            if crashed:
                raise WorkerFailure(backend, artifact, step, "crash",
                                    f"{backend} crashed while {step} {Path(artifact).name}: the worker ended without "
                                    f"answering and {self.board.describe()} still answers (a runtime crash, or the "
                                    "board's out-of-memory killer)", tail)
            raise WorkerFailure(backend, artifact, step, "connection",
                                f"the connection to {self.board.describe()} was lost while {step} "
                                f"{Path(artifact).name} (ssh: {said}); the board may have rebooted or dropped off "
                                "the network", tail)
        super()._fail_dead(backend, artifact, step)
