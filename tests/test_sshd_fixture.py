"""The board-test infrastructure itself, for real: an sshd on 127.0.0.1, a board's own Python, a
filesystem that fills. The board tests rely on each of these behaving as a real board would."""

from __future__ import annotations

import errno
import importlib.metadata
import select
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import board_env
from sshd_server import SshServer, process_tree

IMPORT_PROBE = ("import importlib.util, numpy, onnxruntime; "
                "print(numpy.__version__, onnxruntime.__version__, importlib.util.find_spec('edgecheck') is None)")


def test_board_python_runs_over_ssh(sshd: SshServer, board_python: Path) -> None:
    for alias in ("board-a", "board-b"):
        result = sshd.run(alias, str(board_python), "-c", f'"{IMPORT_PROBE}"')
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [importlib.metadata.version("numpy"),
                                         importlib.metadata.version("onnxruntime"), "True"]


def test_board_python_lacks_the_session_packages(board_python: Path, board_python_bare: Path) -> None:
    """Neither environment sees edgecheck or its host-side dependencies; the bare one has no runtime."""
    probe = ("import importlib.util as u; "
             "print(*[n for n in ('numpy', 'onnxruntime', 'ai_edge_litert', 'edgecheck', 'pydantic', 'onnx', "
             "'pytest', 'yaml') if u.find_spec(n) is not None])")
    for python, present in ((board_python, ["numpy", "onnxruntime", "ai_edge_litert"]),
                            (board_python_bare, ["numpy"])):
        result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd="/",
                                env=board_env.clean_environ(), timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == present
        assert str(python).startswith(str(board_env.CACHE_ROOT))
        assert not Path(python).resolve().is_relative_to(Path(sys.prefix).resolve())


def test_bare_board_has_no_runtime(sshd: SshServer, board_python_bare: Path) -> None:
    result = sshd.run("board-a", str(board_python_bare), "-c", '"import numpy, onnxruntime"')
    assert result.returncode == 1
    assert "No module named 'onnxruntime'" in result.stderr


def test_board_env_is_reused(board_python: Path) -> None:
    env = board_python.parents[1]
    made = (env / "board-env.json").stat()
    assert board_env.board_python("full") == board_python
    again = (env / "board-env.json").stat()
    assert (again.st_ino, again.st_mtime_ns) == (made.st_ino, made.st_mtime_ns)  # not made again
    assert env.name.startswith("board-env-") and env.parent == board_env.CACHE_ROOT
    assert not list(board_env.CACHE_ROOT.glob(f".{env.name}.tmp-*"))  # no half-made one left


def test_wrong_key_is_refused(sshd: SshServer) -> None:
    result = sshd.run("wrong-key", "true")
    assert result.returncode == 255
    assert "Permission denied" in result.stderr
    assert "Failed publickey" in sshd.log()


def test_multiplexed_parallel_channels(sshd: SshServer) -> None:
    """One ControlMaster connection carries many sessions at once (MaxSessions)."""
    control = Path(tempfile.mkdtemp(prefix="ecm-", dir="/tmp"))  # a unix socket's path is at most 108 bytes
    options = ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}/%C", "-o", "ControlPersist=60"]
    try:
        def one(i: int) -> subprocess.CompletedProcess[str]:
            return sshd.run("board-a", "sleep 1; echo", str(i), options=options)

        assert sshd.run("board-a", "true", options=options).returncode == 0
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(16)))
        assert [r.returncode for r in results] == [0] * 16, [r.stderr for r in results]
        assert [r.stdout.strip() for r in results] == [str(i) for i in range(16)]
        assert sshd.log().count("Accepted publickey") == 2  # start()'s check and the one master
    finally:
        subprocess.run(["ssh", "-F", str(sshd.ssh_config), *options, "-O", "exit", "board-a"],
                       capture_output=True, timeout=60)
        shutil.rmtree(control, ignore_errors=True)


def _started(server: SshServer, alias: str) -> subprocess.Popen[str]:
    """`ssh ALIAS 'echo started; sleep 300'`, once the remote side has said `started` (its shell has run
    the user's startup files: a session killed in the middle of those may leave a lock behind)."""
    client = subprocess.Popen(server.ssh_command(alias, "echo started; sleep 300"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert client.stdout is not None
    ready, _, _ = select.select([client.stdout], [], [], 60)
    line = client.stdout.readline() if ready else ""
    if line != "started\n":
        client.kill()
        _, stderr = client.communicate()
        pytest.fail(f"the remote command did not start: {line!r} {stderr}\nsshd's log:\n{server.log()}")
    assert server.session_processes()
    return client


def test_kill_all_drops_a_running_session(sshd: SshServer) -> None:
    client = _started(sshd, "board-a")
    try:
        sleeper = sshd.session_processes()
        listener = sshd.pid
        assert listener is not None
        sshd_children = [p for p in process_tree(listener) if p.is_sshd and p.pid != listener]
        assert sshd_children  # the per-connection sshd

        sshd.kill_all()
        _, stderr = client.communicate(timeout=120)  # long before its `sleep 300` ends
        assert client.returncode == 255, stderr
        assert sshd.pid is None
        assert not any(p.alive for p in sshd_children)
        assert all(p.alive for p in sleeper)  # as on a board: its command outlives the dead sshd
        assert sshd.run("board-a", "true", timeout=30).returncode == 255  # nothing listens

        port = sshd.port
        sshd.restart()
        assert sshd.port == port
        assert sshd.run("board-b", "echo", "back").stdout == "back\n"
        sshd.stop()
        assert not any(p.alive for p in sleeper)  # stop() reaps what the killed sessions left
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()


def test_kill_all_sessions_too(sshd: SshServer) -> None:
    client = _started(sshd, "board-a")
    try:
        sleeper = sshd.session_processes()
        sshd.kill_all(sessions=True)
        assert client.wait(timeout=120) == 255
        assert not any(p.alive for p in sleeper)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()


def test_stop_ends_open_sessions(tmp_path: Path) -> None:
    server = SshServer(tmp_path / "server", aliases=("board-a",), wrong_key_alias=None).start()
    client = _started(server, "board-a")
    try:
        assert server.pid is not None
        tree = process_tree(server.pid)
        server.stop()
        assert client.wait(timeout=120) != 0
        assert not any(p.alive for p in tree)
        assert not server.wrong_key_alias and "Host wrong-key" not in server.ssh_config.read_text()
    finally:
        server.stop()
        if client.poll() is None:
            client.kill()
            client.wait()


def test_tmpfs_fills(tmpfs) -> None:
    full = tmpfs(256)
    with pytest.raises(OSError) as raised, open(full / "big", "wb") as out:
        for _ in range(16):
            out.write(b"\0" * 65536)
            out.flush()
    assert raised.value.errno == errno.ENOSPC
    assert (full / "big").stat().st_size <= 256 * 1024
