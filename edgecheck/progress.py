"""Progress of long steps, for whoever watches a run: a step that lasts longer than a moment says so.

    with progress.step("rknn-int8 of digits.onnx"):
        progress.update("building digits.onnx with rknn-toolkit2")

A step prints nothing unless it outlasts `after_s` (2 s by default, $EDGECHECK_PROGRESS_AFTER): then a
line when it crosses it, a line when what it is doing changes (at most one per `after_s`), a "still
running" line after `repeat_s` of quiet, and a last line with its duration. Short steps add no noise.

Where lines go is installed by whoever owns the output: pytest's terminal (edgecheck.terminal_progress),
`edgecheck env create` (stderr). A worker process relays its steps' text to the session instead, which
shows them as what its own step is doing. With nothing installed (edgecheck used as a library) every
call here is a no-op. Standard library only: worker processes under another Python import it too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

AFTER_VARIABLE = "EDGECHECK_PROGRESS_AFTER"
DEFAULT_AFTER_S = 2.0
REPEAT_S = 30.0
TICK_S = 0.25  # how often the ticker thread looks at the running steps

Lines = Callable[[str], None]


def after_from_environment(default: float = DEFAULT_AFTER_S) -> float:
    """$EDGECHECK_PROGRESS_AFTER in seconds (0: every step), else `default`; a value that is not a
    number is ignored (progress must never stop a run)."""
    try:
        return max(0.0, float(os.environ[AFTER_VARIABLE]))
    except (KeyError, ValueError):
        return default


def duration(seconds: float) -> str:
    """2.4 s, 26 s, 7 min 54 s."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


class _Step:
    __slots__ = ("title", "detail", "started", "thread", "announced", "said_at", "said_detail")

    def __init__(self, title: str) -> None:
        self.title = title
        self.detail = ""
        self.started = time.monotonic()
        self.thread = threading.get_ident()
        self.announced = False
        self.said_at = 0.0
        self.said_detail = ""

    def text(self) -> str:
        return f"{self.title}: {self.detail}" if self.detail else self.title


class _Progress:
    """The process's running steps and where their lines go (one per process: see the module)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.lines: Lines | None = None
        self.relay: Lines | None = None
        self.after_s = DEFAULT_AFTER_S
        self.repeat_s = REPEAT_S
        self.steps: list[_Step] = []  # every thread's, in the order they started
        self.local = threading.local()
        self.ticker: threading.Thread | None = None
        self.stop = threading.Event()

    def stack(self) -> list[_Step]:
        if not hasattr(self.local, "steps"):
            self.local.steps = []
        return self.local.steps

    def say(self, line: str) -> None:
        sink = self.lines
        if sink is not None:
            try:
                sink(line)
            except Exception:  # a closed terminal or a full disk never fails a check
                pass

    def send(self, text: str) -> None:
        relay = self.relay
        if relay is not None:
            try:
                relay(text)
            except Exception:
                pass

    def tick(self) -> None:
        """Say what the running steps have to say by now."""
        if self.lines is None:
            return
        now = time.monotonic()
        with self.lock:
            for index, step in enumerate(self.steps):
                elapsed = now - step.started
                if not step.announced:
                    if elapsed >= self.after_s:
                        step.announced, step.said_at, step.said_detail = True, now, step.detail
                        self.say(f"{step.title} …" + (f" {step.detail}" if step.detail else ""))
                elif step.detail and step.detail != step.said_detail and now - step.said_at >= self.after_s:
                    step.said_at, step.said_detail = now, step.detail
                    self.say(f"{step.title} … {step.detail}")
                elif now - step.said_at >= self.repeat_s and not any(
                        inner.thread == step.thread and inner.announced for inner in self.steps[index + 1:]):
                    step.said_at = now  # only the innermost step said to be running repeats it
                    self.say(f"{step.title} … " + (f"{step.detail}, " if step.detail else "")
                             + f"still running, {duration(elapsed)}")

    def enter(self, title: str) -> _Step:
        step = _Step(title)
        with self.lock:
            self.stack().append(step)
            self.steps.append(step)
        if self.relay is not None:
            self.send(step.text())
        elif self.lines is not None and self.after_s <= 0:
            self.tick()
        return step

    def exit(self, step: _Step, ending: str = "") -> None:
        """`ending`: "" (done), "failed" or "interrupted" (Ctrl-C), as its last line says."""
        with self.lock:
            stack = self.stack()
            if step in stack:
                stack.remove(step)
            if step in self.steps:
                self.steps.remove(step)
            elapsed = time.monotonic() - step.started
            if self.lines is not None and (step.announced or elapsed >= self.after_s):
                self.say(f"{step.title} … " + (f"{ending} after {duration(elapsed)}" if ending else duration(elapsed)))
            outer = stack[-1] if stack else None
        if outer is not None and self.relay is not None:
            self.send(outer.text())

    def update(self, detail: str) -> None:
        with self.lock:
            stack = self.stack()
            if not stack:
                return
            step = stack[-1]
            step.detail = detail
        if self.relay is not None:
            self.send(step.text())
        else:
            self.tick()

    def run_ticker(self) -> None:
        while not self.stop.wait(TICK_S):
            self.tick()


_PROGRESS = _Progress()


class Output:
    """Where lines go, as installed; `uninstall(output)` restores what was installed before it (a pytest
    session run inside another, as pytester runs them, leaves the outer one's as it was)."""

    def __init__(self, lines: Lines | None, relay: Lines | None, after_s: float, repeat_s: float, ticker: bool):
        self.lines, self.relay, self.after_s, self.repeat_s, self.ticker = lines, relay, after_s, repeat_s, ticker


_INSTALLED: list[Output] = []


def _apply() -> None:
    """Make the last installed output the current one; the ticker thread runs where it wants one."""
    current = _INSTALLED[-1] if _INSTALLED else None
    wants_ticker = current is not None and current.ticker
    ticker = _PROGRESS.ticker
    if ticker is not None and not wants_ticker:
        _PROGRESS.stop.set()
        if ticker is not threading.current_thread():
            ticker.join(timeout=5)
        _PROGRESS.ticker = None
    with _PROGRESS.lock:
        _PROGRESS.lines = current.lines if current else None
        _PROGRESS.relay = current.relay if current else None
        _PROGRESS.after_s = current.after_s if current else DEFAULT_AFTER_S
        _PROGRESS.repeat_s = current.repeat_s if current else REPEAT_S
    if wants_ticker and _PROGRESS.ticker is None:
        _PROGRESS.stop.clear()
        _PROGRESS.ticker = threading.Thread(target=_PROGRESS.run_ticker, name="edgecheck-progress", daemon=True)
        _PROGRESS.ticker.start()


def install(lines: Lines, *, after_s: float | None = None, repeat_s: float = REPEAT_S, ticker: bool = False) -> Output:
    """Send this process's progress lines to `lines` until `uninstall`. With `ticker`, a daemon thread says a
    step's lines while the step blocks (`lines` must then be thread-safe); without it they come from
    `tick()` and the step's own calls, in the thread that runs the step. `after_s` None:
    $EDGECHECK_PROGRESS_AFTER, else 2 s."""
    after = after_from_environment() if after_s is None else max(0.0, after_s)
    output = Output(lines, None, after, repeat_s, ticker)
    _INSTALLED.append(output)
    _apply()
    return output


def relay_to(send: Lines) -> Output:
    """In a worker process: send the text of the innermost running step (title and detail) whenever it
    changes, for the session to show as what its own step is doing; no lines are said here."""
    output = Output(None, send, DEFAULT_AFTER_S, REPEAT_S, False)
    _INSTALLED.append(output)
    _apply()
    return output


def uninstall(output: Output | None = None) -> None:
    """Remove `output` (by default the last installed): what was installed before it is current again,
    and with nothing left, silence (the ticker stopped and joined)."""
    if output is None:
        _INSTALLED.clear()
    elif output in _INSTALLED:
        _INSTALLED.remove(output)
    _apply()


def enabled() -> bool:
    """Whether anything listens (a caller may spare building a title)."""
    return _PROGRESS.lines is not None or _PROGRESS.relay is not None


@contextmanager
def step(title: str) -> Iterator[None]:
    """A step that may take long; its lines say `title` (what, on what, with what)."""
    if not enabled():
        yield
        return
    current = _PROGRESS.enter(title)
    ending = ""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        ending = "interrupted"
        raise
    except BaseException:
        ending = "failed"
        raise
    finally:
        _PROGRESS.exit(current, ending)


def update(detail: str) -> None:
    """What the innermost step of this thread is doing now ("round 2/3"); a no-op outside a step."""
    if enabled():
        _PROGRESS.update(detail)


def tick() -> None:
    """Say what is due; for loops that wait on something (a worker's answer) in the step's own thread."""
    _PROGRESS.tick()


def say(line: str) -> None:
    """A line of its own through the installed lines (none: nothing)."""
    _PROGRESS.say(line)


@contextmanager
def printing(stream: IO[str], *, after_s: float | None = None) -> Iterator[None]:
    """Progress lines on `stream` (the command line's stderr) while the block runs."""
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock:
            stream.write(line + "\n")
            stream.flush()

    output = install(write, after_s=after_s, ticker=True)
    try:
        yield
    finally:
        uninstall(output)
