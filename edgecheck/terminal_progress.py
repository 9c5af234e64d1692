"""Progress lines (edgecheck.progress) on pytest's terminal, from this process and from xdist workers.

In a plain session the lines are written from the thread that runs the step, with global and fixture
capture suspended around each write, as pytest's live logging does: a test's captured output is never
mixed in. Under `-qq`, or without a terminal reporter, nothing is installed and steps are silent.

pytest-xdist shows nothing its workers write, and its controller handles a fixed set of events in its
main loop, so workers' lines take a channel of their own: the controller makes a file in a folder of
its own (named after its process, so a later session removes it if this one is killed), passes its path
to each worker in `workerinput`, and a daemon thread tails it while tests run, writing each line
prefixed with the worker's id under a lock that the controller also holds while pytest writes a
test's report, so a line never lands inside another. Workers append one JSON line per progress line
(O_APPEND: whole lines, never interleaved). The thread is drained and stopped at the end of the
session and the folder removed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from edgecheck import progress

WORKER_KEY = "edgecheck_progress"  # workerinput: the file a worker appends its lines to
INI = "edge_progress_after"
POLL_S = 0.2


def threshold(config: pytest.Config) -> float:
    """ini edge_progress_after, else $EDGECHECK_PROGRESS_AFTER, else 2 s."""
    given = str(config.getini(INI) or "").strip()
    if given:
        try:
            return max(0.0, float(given))
        except ValueError:
            raise pytest.UsageError(f"{INI}: {given!r} is not a number of seconds (such as 2, or 0 for every step)")
    return progress.after_from_environment()


class TerminalLines:
    """Writes whole lines on pytest's terminal: on a line of their own, capture suspended, under `lock`."""

    def __init__(self, config: pytest.Config, lock: threading.RLock):
        self.config = config
        self.lock = lock
        self.broken: Path | None = None  # the file whose line of results a progress line broke

    def __call__(self, line: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is None:
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        with self.lock:
            if capture is not None:
                with capture.global_and_fixture_disabled():
                    self._write(terminal, line)
            else:
                self._write(terminal, line)

    def _write(self, terminal: Any, line: str) -> None:
        if isinstance(terminal.currentfspath, Path):  # a file's line of dots: `resume` names it again
            self.broken = terminal.currentfspath
        terminal.ensure_newline()
        writer = getattr(terminal, "_tw", None)
        if getattr(writer, "width_of_current_line", 0):  # xdist's dots and status lines leave no file name
            terminal.write("\n")
        terminal.write_line(line)
        terminal.flush()


    def resume(self, terminal: Any) -> None:
        """Before the next result: the file's name again, so its dots go on after it (-q, the default)."""
        broken, self.broken = self.broken, None
        if broken is not None and terminal.currentfspath is None:
            terminal.write(os.path.relpath(broken, terminal.startpath) + " ")
            terminal.currentfspath = broken


class WorkerLines:
    """An xdist worker's lines: appended to the controller's file, one JSON object a line."""

    def __init__(self, path: str, worker: str):
        self.worker = worker
        self.lock = threading.Lock()
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError:  # a worker on another host or in another container (--tx ssh=...): no progress from it
            self.fd = -1

    def __call__(self, line: str) -> None:
        data = (json.dumps({"worker": self.worker, "line": line}) + "\n").encode()
        with self.lock:
            if self.fd >= 0:
                try:
                    os.write(self.fd, data)
                except OSError:  # a full disk: progress is not worth failing a check for
                    pass

    def close(self) -> None:
        with self.lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


class WorkersChannel:
    """The controller's end: a file the workers append to, and the thread that writes what they say."""

    def __init__(self, lines: Callable[[str], None]):
        from edgecheck.leftovers import owner_tag, remove_dead_owners

        remove_dead_owners(Path(tempfile.gettempdir()), "edgecheck-progress-*")
        self.folder = Path(tempfile.mkdtemp(prefix=f"edgecheck-progress-{owner_tag()}-"))
        self.path = self.folder / "lines.jsonl"
        self.path.touch()
        self.lines = lines
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._tail, name="edgecheck-progress-workers", daemon=True)
        self.thread.start()

    def _tail(self) -> None:
        with open(self.path, "rb") as source:
            pending = b""
            while True:
                stopping = self.stop.is_set()  # read once more after the stop: the last lines are said
                chunk = source.read()
                if chunk:
                    pending += chunk
                    *whole, pending = pending.split(b"\n")
                    for raw in whole:
                        self._show(raw)
                elif stopping:
                    return
                else:
                    self.stop.wait(POLL_S)

    def _show(self, raw: bytes) -> None:
        try:
            event = json.loads(raw)
            text = f"[{event['worker']}] {event['line']}"
        except (ValueError, KeyError, TypeError):
            return  # never garbage on the terminal
        try:
            self.lines(text.replace("\r", " ").replace("\n", " "))
        except Exception:  # a closed stdout (pytest -n 2 | head): later lines are dropped, never the thread
            pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


class ProgressReporter:
    """The pytest side of edgecheck.progress, registered by plugin.py for every session."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.lock = threading.RLock()  # the terminal's: our lines and the controller's test reports
        self.channel: WorkersChannel | None = None
        self.worker_lines: WorkerLines | None = None
        self.lines: TerminalLines | None = None  # this process's, in a session without xdist
        self.output: progress.Output | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self) -> None:
        """From here: the terminal reporter is registered (its pytest_configure runs after edgecheck's)."""
        self.start()

    def start(self) -> None:
        if self.output is not None:
            return
        config = self.config
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None:  # an xdist worker: shown only where the controller asked for our lines
            path = workerinput.get(WORKER_KEY)
            if path:
                self.worker_lines = WorkerLines(path, str(workerinput.get("workerid", "?")))
                self.output = progress.install(self.worker_lines, after_s=threshold(config), ticker=True)
            return
        if not self._shown():
            return
        self.lines = TerminalLines(config, self.lock)
        self.output = progress.install(self.lines, after_s=threshold(config))

    def _shown(self) -> bool:
        return (self.config.get_verbosity() > -2
                and self.config.pluginmanager.get_plugin("terminalreporter") is not None)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist's controller, for each worker it starts: where that worker's lines go."""
        if not self._shown():
            return
        if self.channel is None:
            self.channel = WorkersChannel(TerminalLines(self.config, self.lock))
        node.workerinput[WORKER_KEY] = str(self.channel.path)

    # the controller writes a test's report under the lock its tail thread writes under
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, Any, Any]:
        with self.lock:
            terminal = self.config.pluginmanager.get_plugin("terminalreporter")
            if self.lines is not None and terminal is not None:
                self.lines.resume(terminal)
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> Generator[None, Any, Any]:
        with self.lock:
            return (yield)

    def pytest_sessionfinish(self) -> None:
        self.close()

    def pytest_unconfigure(self) -> None:
        self.close()

    def close(self) -> None:
        """Silence, the workers' lines all said, the thread stopped and the folder gone."""
        if self.output is not None:
            progress.uninstall(self.output)
            self.output = None
        if self.worker_lines is not None:
            self.worker_lines.close()
            self.worker_lines = None
        if self.channel is not None:
            self.channel.close()
            self.channel = None
