"""Reaching a board: the system's OpenSSH client, one multiplexed connection per board and process.

The system `ssh` is what a lab already trusts: it reads the user's ~/.ssh/config (or the board's
`ssh_config`), its keys and agent, ProxyJump, known_hosts. edgecheck adds only what a test run needs:
BatchMode (never a password prompt in CI), a connect timeout, keep-alives (a board that drops off is
noticed in seconds) and a control master, so each command after the first costs a channel, not a key
exchange. The master is this process's own (its socket path names the pid and the board's settings):
parallel sessions never share one, and a board entry with another key never rides a connection made
with the right one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from edgecheck.boards.config import Board
from edgecheck.errors import EdgecheckError
from edgecheck.processes import kill_with_parent

SSH_UNREACHABLE = 255  # ssh's own exit status for a connection or authentication failure
MASTER_IDLE_S = 120  # a master outlives its last command by this much (and a killed session's, no longer)
MAX_ERROR_BYTES = 1 << 20  # what a board's stderr may say, read back
CHECK_EVERY_S = 5.0  # a master seen alive this recently is not asked again (a dead one: ssh connects directly)


class BoardUnreachable(EdgecheckError):
    """ssh could not reach or log in to the board."""

    def __init__(self, board: Board, detail: str):
        self.board = board
        self.detail = detail + _hint(detail)
        super().__init__(f"{board.describe()} is unreachable: {detail}")


def _hint(said: str) -> str:
    """What to do about ssh's two most common refusals in a batch run."""
    if "Host key verification failed" in said:
        return (" (the board is not in known_hosts: ssh-keyscan -H HOST >> ~/.ssh/known_hosts, or "
                "StrictHostKeyChecking accept-new in its ssh config)")
    if "Permission denied" in said:
        return (" (edgecheck's ssh runs with BatchMode=yes: it logs in with a key that needs no passphrase, or one "
                "an ssh-agent holds; name it with IdentityFile in ~/.ssh/config or the board's ssh_config)")
    return ""


class BoardCommandError(EdgecheckError):
    """A command on the board failed (not the connection); `stdout` is what it printed."""

    def __init__(self, message: str, stdout: bytes = b"", status: int | None = None):
        super().__init__(message)
        self.stdout, self.status = stdout, status


def control_dir() -> Path:
    """Short (a unix socket's path has ~100 characters), per account."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = Path(tempfile.gettempdir()) / f"edgecheck-ssh-{uid}"
    folder.mkdir(mode=0o700, exist_ok=True)
    found = folder.lstat()
    if hasattr(os, "getuid") and (found.st_uid != uid or found.st_mode & 0o077 or not folder.is_dir()
                                  or folder.is_symlink()):
        # another account's folder (or a link) in a shared /tmp: its sockets would carry this user's logins
        raise EdgecheckError(f"{folder} is not this account's own private folder (owner {found.st_uid}, mode "
                             f"{oct(found.st_mode & 0o777)}): remove it, or set TMPDIR to a private folder")
    return folder


class SshLink:
    """Commands and processes on one board, through one control master of this process."""

    def __init__(self, board: Board):
        self.board = board
        # one master per board entry and process: two entries that reach one host (or two pools in a process)
        # never share, or delete, each other's socket
        settings = f"{board.name}|{board.ssh}|{board.ssh_config}|{board.store}|{board.connect_timeout_s}|{id(self)}"
        self.control_path = control_dir() / f"{os.getpid()}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}"
        self._master_started = False
        self._checked = 0.0

    def _base(self, master: bool = False, control: str | None = None, extra: Sequence[str] = ()) -> list[str]:
        destination, port = self.board.destination()
        argv = ["ssh"]
        if self.board.ssh_config is not None:
            argv += ["-F", str(self.board.ssh_config)]
        if port is not None:
            argv += ["-p", str(port)]
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(self.board.connect_timeout_s)}",
                 "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                 "-o", f"ControlPath={self.control_path}", "-o", "LogLevel=ERROR"]
        argv += (["-o", "ControlMaster=yes", "-o", f"ControlPersist={MASTER_IDLE_S}"] if master
                 else ["-o", "ControlMaster=no"])
        if control:
            argv += ["-O", control]
        argv += list(extra)
        return argv + ["-T", destination]  # never a terminal: a board's output is data

    def argv(self, command: Sequence[str]) -> list[str]:
        """The ssh command line that runs `command` (a list of words, quoted here for the remote shell)."""
        return self._base() + [" ".join(shlex.quote(word) for word in command)]

    def connect(self) -> None:
        """Start (or check) this process's control master; `BoardUnreachable` with ssh's own words if it
        cannot reach or log in. Started detached (-f) with its output in a file, never a pipe: a persisting
        master would hold a pipe open after the command that started it returned."""
        if self._master_started and (time.monotonic() - self._checked < CHECK_EVERY_S or self._check()):
            return
        self.control_path.unlink(missing_ok=True)  # a dead master's socket
        with tempfile.TemporaryFile() as errors:
            try:
                done = subprocess.run(self._base(master=True, extra=("-f", "-N")), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=errors,
                                      timeout=self.board.connect_timeout_s + 30)
            except subprocess.TimeoutExpired:
                raise BoardUnreachable(self.board, f"ssh did not connect within {self.board.connect_timeout_s + 30:g} s") from None
            except OSError as exc:
                raise BoardUnreachable(self.board, f"cannot run ssh: {exc} (install the OpenSSH client)") from None
            errors.seek(0)
            said = errors.read().decode("utf-8", "replace").strip()
        if done.returncode != 0:
            raise BoardUnreachable(self.board, said.splitlines()[-1] if said else f"ssh exited with status {done.returncode}")
        self._master_started = True
        self._checked = time.monotonic()

    def master_alive(self) -> bool:
        """Whether this process's control master (the connection its channels ride) is up, asked now."""
        return self._master_started and self._check()

    def _check(self) -> bool:
        self._checked = time.monotonic()
        try:
            return subprocess.run(self._base(control="check"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=10).returncode == 0
        except (subprocess.TimeoutExpired, OSError):
            return False

    def run(self, command: Sequence[str], *, data: bytes | None = None, source: Path | None = None,
            sink: Path | None = None, timeout_s: float = 60.0, what: str = "a command") -> bytes:
        """Run a command on the board and return its standard output (written to `sink` instead, where given: a
        file the size of a model's outputs never passes through memory; `source` is streamed to its stdin the
        same way). `BoardUnreachable` when the connection fails, `BoardCommandError` (with the board's own
        words) when the command does."""
        self.connect()
        with contextlib.ExitStack() as files:
            stdin = files.enter_context(open(source, "rb")) if source is not None else subprocess.PIPE
            stdout = files.enter_context(open(sink, "wb")) if sink is not None else subprocess.PIPE
            errors = files.enter_context(tempfile.TemporaryFile())
            proc = subprocess.Popen(self.argv(command), stdin=stdin, stdout=stdout, stderr=errors,
                                    preexec_fn=kill_with_parent)
            try:
                out, _ = proc.communicate(input=(data or b"") if source is None else None, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise BoardCommandError(f"{self.board.describe()}: {what} did not finish within {timeout_s:g} s") from None
            errors.seek(0)
            said = errors.read(MAX_ERROR_BYTES).decode("utf-8", "replace").strip()
        out = out or b""
        if proc.returncode == SSH_UNREACHABLE:
            raise BoardUnreachable(self.board, said.splitlines()[-1] if said else "the connection was lost")
        if proc.returncode != 0:
            raise BoardCommandError(f"{self.board.describe()}: {what} failed (status {proc.returncode}): "
                                    f"{said[-2000:] or out.decode('utf-8', 'replace')[-2000:]}", out, proc.returncode)
        return out

    def popen(self, command: Sequence[str], **kwargs) -> subprocess.Popen:
        """A long-lived process on the board (a worker, a lock holder); its ssh client dies with the session."""
        self.connect()
        return subprocess.Popen(self.argv(command), start_new_session=True, preexec_fn=kill_with_parent, **kwargs)

    def close(self) -> None:
        """Stop this process's control master."""
        if not self._master_started:
            return
        self._master_started = False
        try:
            subprocess.run(self._base(control="exit"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)
        except (subprocess.TimeoutExpired, OSError):
            pass
        self.control_path.unlink(missing_ok=True)
