"""A real OpenSSH server for the board tests: /usr/sbin/sshd on 127.0.0.1, as the current user.

`SshServer(folder, aliases)` generates its keys in `folder`, writes the server's config and an ssh
client config (`server.ssh_config`) whose Host aliases all reach this one server, and runs
`/usr/sbin/sshd -D -e -f <config>` on a free port. Nothing is mocked: `ssh -F server.ssh_config board-a
CMD` is a real ssh login that runs CMD through the user's login shell.

For the failure tests: `kill_all()` SIGKILLs the listening sshd and every per-connection sshd it forked
(found through /proc, under the listener's pid), the way a board's sshd dies mid-run; `restart()`
brings it back on the same port; `mounted_tmpfs()` gives a small filesystem that fills.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
SSHD_MISSING = "openssh-server is not installed: apt-get install openssh-server"
START_TIMEOUT_S = 60.0  # a busy CI machine (load 8 on 2 cores) may take many seconds to answer a login
PRIVSEP_DIR = Path("/run/sshd")  # sshd started as root refuses to start without it (privilege separation)


def require_openssh() -> None:
    """Skip the calling test where the OpenSSH server or client is not installed."""
    if not os.access(SSHD, os.X_OK):
        pytest.skip(SSHD_MISSING)
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"the OpenSSH client ({tool}) is not installed: apt-get install openssh-client")


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (start() retries where another process takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, comment: str) -> None:
    """An ed25519 key pair without a passphrase: path and path.pub."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Proc:
    """One process, named by its pid and start time (a pid alone may be reused once it exits)."""

    pid: int
    start: int

    @property
    def alive(self) -> bool:
        stat = _stat(self.pid)
        return stat is not None and stat[1] == self.start and stat[2] != "Z"

    @property
    def is_sshd(self) -> bool:
        try:
            return os.readlink(f"/proc/{self.pid}/exe") == SSHD
        except OSError:  # gone, or a zombie
            return False


def account_locked(user: str) -> bool:
    """Whether /etc/shadow (readable by root only) marks the user's password as locked."""
    try:
        lines = Path("/etc/shadow").read_text().splitlines()
    except OSError:
        return False  # not root: sshd cannot read it either, so it does not refuse on it
    for line in lines:
        name, _, rest = line.partition(":")
        if name == user:
            return rest.startswith(("!", "*LK*"))
    return False


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, start time, state) of a process from /proc/PID/stat; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name in parentheses may hold spaces and ')'
    return int(fields[1]), int(fields[19]), fields[0]


def process_tree(root: int) -> list[Proc]:
    """root and every live process below it, read from /proc (parents before children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    tree: list[Proc] = []
    pending = [root]
    while pending:
        pid = pending.pop(0)
        stat = _stat(pid)
        if stat is None:
            continue
        tree.append(Proc(pid, stat[1]))
        pending.extend(children.get(pid, []))
    return tree


def _signal(procs: Sequence[Proc], sig: int) -> None:
    for proc in procs:
        if proc.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, sig)


def _wait_gone(procs: Sequence[Proc], timeout: float) -> bool:
    """Wait until none of `procs` is alive (exited, or a zombie), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while any(p.alive for p in procs):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _end(procs: Sequence[Proc], timeout: float) -> None:
    """SIGTERM (and SIGCONT, for stopped ones), then SIGKILL what is still alive after `timeout`.

    Never SIGKILL first: a login shell killed while it runs the user's startup files may leave a lock
    behind (pyenv's rehash lock in ~/.bashrc, for one) that hangs every later login; SIGTERM lets a
    shell's EXIT trap run.
    """
    _signal(procs, signal.SIGTERM)
    _signal(procs, signal.SIGCONT)
    if not _wait_gone(procs, timeout):
        _signal(procs, signal.SIGKILL)
        _wait_gone(procs, 60.0)


class SshServer:
    """A real sshd on 127.0.0.1 for the current user, with an ssh client config naming its aliases.

    Files in `folder`: host_key, user_key (authorized), wrong_key (not authorized), authorized_keys,
    known_hosts (the host key as `[127.0.0.1]:PORT`), sshd_config, sshd.pid, sshd.log and ssh_config.
    Every alias in `aliases` logs in with user_key; `wrong_key_alias` (None for none) offers wrong_key
    and is refused ("Permission denied", exit 255).
    """

    def __init__(self, folder: Path, aliases: Sequence[str] = ("board-a", "board-b"),
                 wrong_key_alias: str | None = "wrong-key") -> None:
        require_openssh()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.aliases = tuple(aliases)
        self.wrong_key_alias = wrong_key_alias
        self.host = "127.0.0.1"
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port = 0
        self.host_key = self.folder / "host_key"
        self.user_key = self.folder / "user_key"
        self.wrong_key = self.folder / "wrong_key"
        self.authorized_keys = self.folder / "authorized_keys"
        self.known_hosts = self.folder / "known_hosts"
        self.sshd_config = self.folder / "sshd_config"
        self.pid_file = self.folder / "sshd.pid"
        self.log_path = self.folder / "sshd.log"
        self.ssh_config = self.folder / "ssh_config"
        # sshd without PAM refuses every login to a locked account ('!' in /etc/shadow: a user made
        # without a password, root in some images), keys or not; through PAM it only checks expiry
        self.use_pam = os.geteuid() == 0 and account_locked(self.user)
        self.process: subprocess.Popen[bytes] | None = None
        self._orphans: list[Proc] = []  # session commands left running by kill_all(): reaped at stop()
        keygen(self.host_key, "edgecheck-test-host")
        keygen(self.user_key, "edgecheck-test-user")
        keygen(self.wrong_key, "edgecheck-test-wrong")
        self.authorized_keys.write_text(self.user_key.with_suffix(".pub").read_text())

    # -- configuration -------------------------------------------------------------------------

    def _write_configs(self) -> None:
        self.sshd_config.write_text("\n".join([
            f"ListenAddress {self.host}",
            f"Port {self.port}",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"PidFile {self.pid_file}",
            "StrictModes no",  # the folder is a test's tmp_path, whatever its modes
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            f"UsePAM {'yes' if self.use_pam else 'no'}",
            "PermitRootLogin prohibit-password",  # CI runs as root: keys only
            "LogLevel VERBOSE",
            "MaxSessions 64",   # multiplexed channels over one ControlMaster connection
            "MaxStartups 64",   # parallel logins before authentication
            "LoginGraceTime 120",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "Subsystem sftp internal-sftp",  # scp of OpenSSH >= 9 copies over SFTP
            # a board account with no login scripts: bash reads ~/.bashrc for an ssh command only at SHLVL < 2
            # (here root's .bashrc runs pyenv init, whose rehash lock stalls parallel logins for 60 s)
            "SetEnv SHLVL=1",
            "",
        ]))
        key_type, key = self.host_key.with_suffix(".pub").read_text().split()[:2]
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {key_type} {key}\n")
        blocks = [self._host_block(alias, self.user_key) for alias in self.aliases]
        if self.wrong_key_alias:
            blocks.append(self._host_block(self.wrong_key_alias, self.wrong_key))
        self.ssh_config.write_text("\n".join(blocks))

    def _host_block(self, alias: str, key: Path) -> str:
        return "\n".join([
            f"Host {alias}",
            f"    HostName {self.host}",
            f"    Port {self.port}",
            f"    User {self.user}",
            f"    IdentityFile {key}",
            "    IdentitiesOnly yes",
            "    IdentityAgent none",
            f"    UserKnownHostsFile {self.known_hosts}",
            "    GlobalKnownHostsFile /dev/null",
            "    StrictHostKeyChecking yes",
            "    BatchMode yes",
            "    ConnectTimeout 30",
            "",
        ])

    # -- the client side ---------------------------------------------------------------------

    def ssh_command(self, alias: str, *command: str, options: Sequence[str] = ()) -> list[str]:
        """The argv of `ssh -F ssh_config [OPTIONS] ALIAS COMMAND...` (the remote shell runs COMMAND
        joined with spaces, so quote what it must not split)."""
        return ["ssh", "-F", str(self.ssh_config), *options, alias, *command]

    def run(self, alias: str, *command: str, options: Sequence[str] = (), timeout: float = START_TIMEOUT_S,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run COMMAND on the server through ALIAS; stdout and stderr captured as text, never raises on rc."""
        return subprocess.run(self.ssh_command(alias, *command, options=options), capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=timeout,
                              **kwargs)  # type: ignore[call-overload]

    def log(self) -> str:
        """sshd's log so far (LogLevel VERBOSE): the place to look when a login is refused."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- the server's life -------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The listening sshd's pid while it runs."""
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    def start(self, timeout: float = START_TIMEOUT_S) -> SshServer:
        """Start on a free port and wait until a real login through the first alias runs `true`."""
        if self.pid is not None:
            return self
        last = ""
        for _ in range(5):  # another process may take the free port first: try another one
            self.port = free_port()
            self._write_configs()
            try:
                self._launch(timeout)
                return self
            except _PortTaken as taken:
                last = str(taken)
        raise RuntimeError(f"sshd could not bind a free port in five tries:\n{last}")

    def restart(self, timeout: float = START_TIMEOUT_S) -> SshServer:
        """Start again on the same port (after stop() or kill_all()); the same keys and configs."""
        if self.pid is not None:
            self.stop()
        if not self.port:
            return self.start(timeout)
        deadline = time.monotonic() + timeout
        while True:  # the old listener's socket may linger a moment after a SIGKILL
            try:
                self._launch(max(deadline - time.monotonic(), 1.0))
                return self
            except _PortTaken:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _launch(self, timeout: float) -> None:
        if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)
        mark = len(self.log().encode())
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.sshd_config)], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            self._wait_listening(deadline, mark)
            self._wait_login(deadline)
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self, deadline: float, mark: int) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log().encode()[mark:].decode(errors="replace")
                if "Address already in use" in output or "Cannot bind any address" in output:
                    raise _PortTaken(output)
                raise RuntimeError(f"sshd exited with {self.process.returncode} before listening; "
                                   f"its log ({self.log_path}):\n{output}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 1.0):
                return
            time.sleep(0.1)
        raise RuntimeError(f"sshd did not listen on {self.host}:{self.port} within the timeout; "
                           f"its log:\n{self.log()}")

    def _wait_login(self, deadline: float) -> None:
        alias = self.aliases[0] if self.aliases else None
        if alias is None:
            return
        result: subprocess.CompletedProcess[str] | None = None
        while time.monotonic() < deadline:
            try:
                result = self.run(alias, "true", timeout=max(deadline - time.monotonic(), 1.0))
            except subprocess.TimeoutExpired:
                break
            if result.returncode == 0:
                return
            if self.pid is None:
                break
            time.sleep(0.5)
        raise RuntimeError(
            f"`ssh -F {self.ssh_config} {alias} true` did not succeed within the timeout"
            + (f" (exit {result.returncode}): {result.stderr.strip()}" if result else "")
            + "\n(a login runs the user's shell startup files: ~/.bashrc for bash over ssh; one that hangs or"
            " waits on a stale lock hangs every login)"
            + f"\nsshd's log ({self.log_path}):\n{self.log()}")

    def _freeze(self, only_sshd: bool) -> list[Proc]:
        """SIGSTOP the listener and its descendants (only the sshd processes when only_sshd) until no new
        one appears, so that none forks past the snapshot. Returns every process seen, parents first:
        one whose parent died meanwhile leaves the tree but is still returned (it may be stopped)."""
        if self.process is None:
            return []
        seen: dict[int, Proc] = {}
        stopped: set[int] = set()
        while True:
            tree = process_tree(self.process.pid)
            seen.update((p.pid, p) for p in tree if p.pid not in seen)
            new = [p for p in tree if p.pid not in stopped and (not only_sshd or p.is_sshd)]
            if not new:
                return list(seen.values())
            _signal(new, signal.SIGSTOP)
            stopped.update(p.pid for p in new)

    def kill_all(self, sessions: bool = False, timeout: float = 10.0) -> None:
        """SIGKILL the listening sshd and every per-connection sshd it forked, as when a board's sshd dies
        mid-run: every ssh client connected to it sees its connection drop.

        The commands those sessions run (the user's shell and what it started) are left running, as on
        a board, and ended by stop() (the fixture's teardown). With `sessions` they are ended now:
        SIGTERM, then SIGKILL after `timeout`.
        """
        if self.process is None:
            return
        procs = self._freeze(only_sshd=not sessions)
        daemons = [p for p in procs if p.is_sshd]
        others = [p for p in procs if p not in daemons]
        _signal(daemons, signal.SIGKILL)
        _wait_gone(daemons, 60.0)  # SIGKILL is delivered at once but a process takes a moment to exit
        if sessions:
            _end(others, timeout)
        else:
            self._orphans.extend(others)
        self._reap()

    def session_processes(self) -> list[Proc]:
        """The live processes under the listener that are not sshd: the commands the sessions run."""
        if self.pid is None:
            return []
        return [p for p in process_tree(self.pid) if not p.is_sshd]

    def stop(self, timeout: float = 10.0) -> None:
        """End the listener, its connections and their sessions (SIGTERM, SIGKILL after `timeout`), and
        the commands that sessions of an earlier kill_all() left running."""
        if self.process is not None and self.process.poll() is None:
            _end(self._freeze(only_sshd=False), timeout)
        if self.process is not None:
            self._reap()
        leftovers: list[Proc] = []
        for orphan in self._orphans:
            if orphan.alive:
                leftovers.extend(process_tree(orphan.pid))
        _end(leftovers, timeout)
        self._orphans.clear()

    def _reap(self) -> None:
        assert self.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def __enter__(self) -> SshServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _PortTaken(RuntimeError):
    """sshd could not bind its port: another process took it (start() picks another)."""


# -- a small filesystem that fills ---------------------------------------------------------------

@contextlib.contextmanager
def mounted_tmpfs(path: Path, size_kib: int = 256) -> Iterator[Path]:
    """Mount a tmpfs of `size_kib` KiB on `path` (created) for the block; unmounted after it.

    Skips the calling test where mounting is not permitted (not root, no CAP_SYS_ADMIN, a container
    without it), saying why.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mount/umount are not installed: a full filesystem cannot be made")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN): the full-filesystem test runs in CI as root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path)],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (no CAP_SYS_ADMIN?): "
                    f"{(result.stderr or result.stdout).strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=60).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=60)  # still busy: detach
