"""Boards over SSH: latency through a localhost board against a local worker, and the time to first result.

Run: .venv/bin/python benchmarks/bench_boards.py [--rounds 5] [--samples 300] [--threads 1] [--models digits,mobilenet]

A real OpenSSH server on 127.0.0.1 (tests/sshd_server.py, keys made in a temporary folder) is the
board, and its Python is the tests' board environment (tests/board_env.py, variant "full": numpy,
onnxruntime and ai-edge-litert at this session's versions, no edgecheck), so edgecheck's worker
package and every artifact really cross the ssh connection. The board and the local worker run on
the same CPUs: any difference between them is edgecheck's, not hardware's.

For each model (the shipped digits CNN, examples/digits/digits.onnx, and the MobileNet-style
classifier of benchmarks/models.py, width `--width`, `--size` x `--size`, built here), `--rounds`
rounds, in an order that rotates each round so that drift hits every side alike:

1. Latency, the same artifact, feed (batch 1), threads and TimingPlan (warm-up >= `--warmup-runs`
   runs and >= `--warmup-s` s, then `--samples` timed runs, exclusive, one round):
   - L: `ModelRuns.measure` through a local worker (a fresh one, as a latency check runs);
   - B: `BoardRuns.measure` through the localhost board (a fresh worker there, started over ssh; the
     samples are timed on the board and fetched afterwards, so the ssh channel is outside the timed call);
   - L': a second local measurement, the control: L'/L - 1 is this machine's noise floor for a p50.
   The board side is timed under this host's timing lock too (the board is this host), as the
   local side is: no other edgecheck timing on this machine overlaps either.
   Judged: the median over rounds of B/L - 1 at the p50; target within +-3 %.
2. Time to first result: the wall time of one outputs run on a small input set (digits: 64 samples in
   4 feeds; MobileNet-style: 8 images in 2 feeds), as a session's first parity check meets it:
   - board, cold: a new BoardPool and BoardRuns (a new ssh master) on a fresh, empty store folder:
     edgecheck's worker package, the artifact and the inputs are sent, the worker unpacked and started;
   - board, warm, new session: a new BoardPool and BoardRuns on the store the cold run filled (nothing
     is sent: the package and files are found by content), as the next pytest run on that board;
   - board, warm, same session: a second outputs call on that same BoardRuns (its ssh master, worker
     and sent-file table kept);
   - local, first: a new WorkerPool's first outputs run (a new worker: interpreter, runtime import, load);
   - local, second: a second call on the same ModelRuns (its worker kept).
   A new session builds edgecheck's worker package (a .tar.gz, hashed) once: its cache is cleared
   before each "new session" call, so that cost is counted where a session pays it. Each call runs
   with this host's timing lock held exclusive, taken before the clock starts (the local ModelRuns
   takes its shared lock under a name of its own, so it does not wait on itself): another edgecheck
   session's timing on this machine delays the call, never inflates its figure. The board's outputs
   are compared with the local ones (max |difference|, printed, not judged).

Printed: the machine (CPU, cores, governor, load average at the start and end), the board's label from
its result, per-round tables, and a Markdown summary table ready to paste into an issue note. Nothing
here is a test; the figures vary with the machine and its load. On a shared, loaded box (two cores,
other jobs) two local measurements differ by several %: a ratio inside the L'/L floor means "no
difference measurable here". Ctrl-C (or SIGTERM) stops it; sshd, the workers, the ssh masters, the
pools and the temporary folders are cleaned up on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))
from models import images, mobilenet_style  # noqa: E402

from edgecheck.backends import get_backend  # noqa: E402
from edgecheck.boards import store as board_store  # noqa: E402
from edgecheck.boards.config import Board  # noqa: E402
from edgecheck.boards.pool import BoardPool  # noqa: E402
from edgecheck.boards.runs import BoardRuns  # noqa: E402
from edgecheck.data import InputSet  # noqa: E402
from edgecheck.execute import cpu_governor, host_device  # noqa: E402
from edgecheck.leftovers import owner_tag  # noqa: E402
from edgecheck.locks import device_lock  # noqa: E402
from edgecheck.measure.runs import Measured, ModelRuns, TimingPlan  # noqa: E402
from edgecheck.worker.client import WorkerPool, WorkerSettings  # noqa: E402
from edgecheck.worker.protocol import save_feeds  # noqa: E402

TARGET_PCT = 3.0
DEVICE = "raspberry-pi-4b"  # the profile the localhost board stands for (any known profile would do)
DIGITS = ROOT / "examples" / "digits"
CONTROL = "L'"  # the second local side


def _terminate(signum, frame):  # noqa: ANN001
    """SIGTERM: leave as Ctrl-C does, through the clean-up (a BaseException: no `except Exception` eats it)."""
    raise KeyboardInterrupt(f"signal {signum}")


@dataclass
class Model:
    name: str
    describe: str
    path: Path
    feed: dict[str, np.ndarray]  # the timed feed (batch 1)
    feeds: list[dict[str, np.ndarray]]  # the small input set of the outputs runs


def digits_model() -> Model:
    with np.load(DIGITS / "test.npz") as data:
        x = data["input"].astype(np.float32)
    path = DIGITS / "digits.onnx"
    return Model("digits", f"digits CNN (examples/digits/digits.onnx, {path.stat().st_size / 1024:.0f} KiB, 1x1x8x8)",
                 path, {"input": x[:1]}, [{"input": x[i * 16:(i + 1) * 16]} for i in range(4)])


def mobilenet_model(folder: Path, width: float, size: int) -> Model:
    path = mobilenet_style(folder / "mobilenet.onnx", width=width, resolution=size)
    batch = images(8, resolution=size, seed=5)
    return Model("mobilenet", f"MobileNet-style (width {width:g}, {path.stat().st_size / 1e6:.1f} MB, "
                              f"1x3x{size}x{size})",
                 path, {"image": images(1, resolution=size, seed=3)}, [{"image": batch[:4]}, {"image": batch[4:]}])


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def p(times: np.ndarray, q: float) -> float:
    return float(np.percentile(times, q))


def samples_ms(measured: Measured, expected: int) -> np.ndarray:
    times = np.asarray(measured.stats.samples_ms, dtype=float)
    assert len(times) == expected, (len(times), expected)
    return times


class Bench:
    """What lives for the whole run: the sshd, the latency board's session, the local workers. Each is
    registered on `stack` as it is made, so whatever happens they are closed in reverse: the board
    sessions (their workers, job folders and ssh masters), the local workers, then sshd."""

    def __init__(self, scratch: Path, args: argparse.Namespace, stack: contextlib.ExitStack):
        from board_env import board_python
        from sshd_server import SshServer

        self.scratch, self.args, self.stack = scratch, args, stack
        self.backend = get_backend("onnxruntime")
        self.settings = WorkerSettings(timeout_s=600.0)
        self.python = board_python("full")
        self.server = SshServer(scratch / "sshd", aliases=("board-a", "board-b"), wrong_key_alias=None)
        stack.callback(self.server.stop)
        self.server.start()
        self.plan = TimingPlan(warmup_runs=args.warmup_runs, warmup_s=args.warmup_s, samples=args.samples,
                               max_seconds=None, exclusive=True, rounds=1)
        (scratch / "workers").mkdir()
        self.local = ModelRuns(WorkerPool(self.settings, scratch / "workers"), host_device())
        stack.callback(self.local.workers.close)
        # the latency board: one session for the whole run (alias board-a; the first-result runs use board-b)
        self.board = self.board_entry("board-a", "bench-latency", scratch / "store-latency")
        self.open_runs: list[BoardRuns] = []
        stack.callback(self.close_runs)
        self.boards = self.board_runs(self.board, scratch / "boards-latency")
        self.labels: dict[str, str] = {}
        self.lock_wait_s = 0.0

    def board_entry(self, alias: str, name: str, store: Path) -> Board:
        return Board(name=name, device=DEVICE, ssh=alias, python=str(self.python), ssh_config=self.server.ssh_config,
                     store=str(store))

    def board_runs(self, board: Board, scratch: Path) -> BoardRuns:
        """A new session on `board`: its own pool (ssh master, store table, job folder) and runs; closed by
        `end()`, or at the latest when the benchmark ends (before sshd stops)."""
        runs = BoardRuns(BoardPool([board], f"{owner_tag()}-{uuid.uuid4().hex[:8]}"), self.settings, scratch)
        self.open_runs.append(runs)
        return runs

    def end(self, runs: BoardRuns) -> None:
        """Close a session once (a second BoardRuns.close() would log in again to clean its job folder)."""
        if runs in self.open_runs:
            self.open_runs.remove(runs)
            runs.close()

    def close_runs(self) -> None:
        while self.open_runs:
            self.end(self.open_runs[-1])

    @contextlib.contextmanager
    def quiet_host(self) -> Iterator[None]:
        """This host's timing lock, held exclusive: no other edgecheck session times or runs here meanwhile (the
        wait for it is counted apart, never in a figure)."""
        with device_lock(host_device(), exclusive=True) as waited:
            self.lock_wait_s += waited
            yield

    # -- 1. latency ------------------------------------------------------------------------------

    def measure(self, side: str, model: Model) -> np.ndarray:
        if side.startswith("L"):
            measured = self.local.measure(self.backend, model.path, self.args.threads, model.feed, self.plan)
            self.lock_wait_s += measured.lock_wait_s
        else:
            with self.quiet_host():  # the board is this host: no other timing here, as for the local side
                measured = self.boards.measure(DEVICE, self.backend, model.path, self.args.threads, model.feed,
                                               self.plan)
            self.labels.setdefault("latency", str(measured.extra.get("measured_on")))
            if measured.extra.get("throttling"):
                print(f"  (board saw throttling: {measured.extra['throttling']})")
        return samples_ms(measured, self.args.samples)

    # -- 2. time to first result -------------------------------------------------------------------

    def first_results(self, model: Model, index: int) -> dict[str, float | str | int]:
        """One round of the outputs runs (local and board, in a rotating order); wall seconds of each."""
        got: dict[str, float | str | int] = {}
        outputs: dict[str, dict[str, np.ndarray]] = {}
        inputs = InputSet(tuple(model.feeds), f"bench {model.name}")
        inputs_file = self.scratch / f"inputs-{model.name}.npz"
        names = save_feeds(inputs_file, model.feeds)
        threads = self.args.threads

        def local() -> None:
            scratch = self.scratch / f"local-first-{model.name}-{index}"
            # its shared lock under a name of its own: the host's lock is held exclusive around the call
            runs = ModelRuns(WorkerPool(self.settings, scratch), f"{host_device()} bench-first-results")
            try:
                with self.quiet_host():
                    started = time.perf_counter()
                    outputs["local"] = runs.outputs(self.backend, model.path, threads, inputs)
                    got["local_first"] = time.perf_counter() - started
                with self.quiet_host():
                    started = time.perf_counter()
                    runs.outputs(self.backend, model.path, threads, inputs)
                    got["local_second"] = time.perf_counter() - started
            finally:
                runs.workers.close()

        def board() -> None:
            store = self.scratch / f"store-first-{model.name}-{index}"  # fresh and empty: a cold board
            entry = self.board_entry("board-b", "bench-first", store)
            for kind in ("cold", "warm_new"):
                board_store.worker_package.cache_clear()  # a new session builds and hashes the package once
                runs = self.board_runs(entry, self.scratch / f"boards-{kind}-{model.name}-{index}")
                state = runs.pool.states[DEVICE][0]
                try:
                    with self.quiet_host():
                        started = time.perf_counter()
                        result, facts = runs.outputs(DEVICE, self.backend, model.path, threads, inputs_file, names)
                        got[kind] = time.perf_counter() - started
                    got[f"{kind}_sent"] = state.store.sent_bytes
                    got[f"{kind}_files"] = state.store.sent_files
                    outputs[kind] = result
                    self.labels.setdefault("outputs", facts["measured_on"])
                    if kind == "warm_new":
                        with self.quiet_host():
                            started = time.perf_counter()
                            runs.outputs(DEVICE, self.backend, model.path, threads, inputs_file, names)
                            got["warm_same"] = time.perf_counter() - started
                        got["warm_same_sent"] = state.store.sent_bytes - int(got["warm_new_sent"])
                finally:
                    self.end(runs)  # the session ends: its master, worker and job folder go

        for step in ([local, board] if index % 2 == 0 else [board, local]):
            step()
        got["order"] = "L B" if index % 2 == 0 else "B L"
        diffs = [float(np.max(np.abs(outputs[kind][name].astype(np.float64) - value.astype(np.float64))))
                 for kind in ("cold", "warm_new") for name, value in outputs["local"].items()]
        got["max_diff"] = max(diffs) if diffs else float("nan")
        return got

    def ssh_login_s(self) -> float:
        """One plain `ssh board-a true` (a full login, no master): what a connection costs here."""
        times = []
        for _ in range(3):
            started = time.perf_counter()
            done = self.server.run("board-a", "true")
            times.append(time.perf_counter() - started)
            if done.returncode != 0:
                raise SystemExit(f"ssh board-a true failed: {done.stderr}")
        return float(np.median(times))


def latency_rounds(bench: Bench, model: Model, rounds: int, control: bool) -> dict:
    sides = ["L", "B"] + ([CONTROL] if control else [])
    print(f"\n### Latency: {model.describe}\n")
    head = "| round | load 1 min | order | L p50 ms | B p50 ms | B/L - 1 |"
    rule = "|---|---|---|---|---|---|"
    if control:
        head += " L' p50 ms | L'/L - 1 |"
        rule += "---|---|"
    print(head + " p10 B/L - 1 | L IQR ms | B IQR ms |")
    print(rule + "---|---|---|")
    ratios, controls, lows = [], [], []
    pooled: dict[str, list[np.ndarray]] = {side: [] for side in sides}
    for index in range(rounds):
        order = sides[index % len(sides):] + sides[:index % len(sides)]
        load = os.getloadavg()[0]
        got = {side: bench.measure(side, model) for side in order}
        for side, times in got.items():
            pooled[side].append(times)
        med = {side: p(times, 50) for side, times in got.items()}
        ratios.append(med["B"] / med["L"] - 1)
        lows.append(p(got["B"], 10) / p(got["L"], 10) - 1)
        row = (f"| {index + 1} | {load:.2f} | {' '.join(order)} | {med['L']:.4f} | {med['B']:.4f} | "
               f"{ratios[-1] * 100:+.2f} % |")
        if control:
            controls.append(med[CONTROL] / med["L"] - 1)
            row += f" {med[CONTROL]:.4f} | {controls[-1] * 100:+.2f} % |"
        iqr = {s: f"{p(got[s], 25):.4f}-{p(got[s], 75):.4f}" for s in ("L", "B")}
        print(row + f" {lows[-1] * 100:+.2f} % | {iqr['L']} | {iqr['B']} |", flush=True)
    whole = {side: np.concatenate(parts) for side, parts in pooled.items()}
    summary = {
        "ratio": float(np.median(ratios)) * 100, "range": (min(ratios) * 100, max(ratios) * 100),
        "low": float(np.median(lows)) * 100,
        "L": float(np.median(whole["L"])), "B": float(np.median(whole["B"])),
        "floor": float(np.median(np.abs(controls))) * 100 if controls else None,
        "floor_range": (min(controls) * 100, max(controls) * 100) if controls else None,
    }
    verdict = "met" if abs(summary["ratio"]) <= TARGET_PCT else "NOT met"
    print(f"\nB/L - 1 = {summary['ratio']:+.2f} % (median of {rounds} rounds; range {summary['range'][0]:+.2f} .. "
          f"{summary['range'][1]:+.2f} %); at p10 {summary['low']:+.2f} %; pooled p50 L {summary['L']:.4f} ms, "
          f"B {summary['B']:.4f} ms")
    note = ""
    if summary["floor"] is not None:
        print(f"noise floor: median |L'/L - 1| {summary['floor']:.2f} % (range {summary['floor_range'][0]:+.2f} .. "
              f"{summary['floor_range'][1]:+.2f} %)")
        if abs(summary["ratio"]) <= summary["floor"]:
            note = " (inside the noise floor: no difference measurable here)"
    print(f"target: |B/L - 1| <= {TARGET_PCT:g} % -> {verdict}{note}")
    summary["verdict"] = verdict + note
    return summary


def first_result_rounds(bench: Bench, model: Model, rounds: int) -> dict:
    print(f"\n### Time to first result (one outputs run, {sum(len(next(iter(f.values()))) for f in model.feeds)} "
          f"samples in {len(model.feeds)} feeds): {model.describe}\n")
    print("| round | load 1 min | order | local first s | local second s | board cold s (sent) | "
          "board warm, new session s (sent) | board warm, same session s (sent) | max abs diff board/local |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for index in range(rounds):
        load = os.getloadavg()[0]
        got = bench.first_results(model, index)
        rows.append(got)
        print(f"| {index + 1} | {load:.2f} | {got['order']} | {got['local_first']:.3f} | {got['local_second']:.3f} | "
              f"{got['cold']:.3f} ({kib(got['cold_sent'])} in {got['cold_files']} files) | "
              f"{got['warm_new']:.3f} ({kib(got['warm_new_sent'])}) | {got['warm_same']:.3f} "
              f"({kib(got['warm_same_sent'])}) | {got['max_diff']:.2g} |", flush=True)
    keys = ("local_first", "local_second", "cold", "warm_new", "warm_same")
    summary = {key: float(np.median([row[key] for row in rows])) for key in keys}
    summary["cold_sent"] = int(np.median([row["cold_sent"] for row in rows]))
    summary["warm_new_sent"] = int(np.median([row["warm_new_sent"] for row in rows]))
    summary["max_diff"] = max(float(row["max_diff"]) for row in rows)
    print(f"\nmedians: local first {summary['local_first']:.3f} s, board cold {summary['cold']:.3f} s, "
          f"warm (new session) {summary['warm_new']:.3f} s, warm (same session) {summary['warm_same']:.3f} s")
    return summary


def kib(count: float | str | int) -> str:
    count = float(count)
    return f"{count / 1e6:.2f} MB" if count >= 1e6 else f"{count / 1024:.0f} KiB" if count else "0 B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the side order rotates each round)")
    parser.add_argument("--samples", type=int, default=300, help="timed runs per side per round")
    parser.add_argument("--warmup-runs", type=int, default=20)
    parser.add_argument("--warmup-s", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="digits,mobilenet", help="comma-separated: digits, mobilenet")
    parser.add_argument("--width", type=float, default=1.0, help="MobileNet-style width multiplier")
    parser.add_argument("--size", type=int, default=128, help="MobileNet-style input resolution (multiple of 32)")
    parser.add_argument("--no-control", action="store_true", help="skip the second local measurement (L')")
    parser.add_argument("--no-first", action="store_true", help="skip the time-to-first-result runs")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency runs")
    args = parser.parse_args()
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(wanted) - {"digits", "mobilenet"})
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)} (known: digits, mobilenet)")

    import onnxruntime as ort

    signal.signal(signal.SIGTERM, _terminate)
    load_start = load_text()
    started = time.monotonic()
    latency: dict[str, dict] = {}
    first: dict[str, dict] = {}
    models: list[Model] = []
    bench: Bench | None = None
    login = float("nan")
    try:
        with tempfile.TemporaryDirectory(prefix="edgecheck-bench-boards-") as folder, \
                contextlib.ExitStack() as stack:
            try:
                scratch = Path(folder)
                models = [digits_model() if name == "digits" else mobilenet_model(scratch, args.width, args.size)
                          for name in wanted]
                bench = Bench(scratch, args, stack)
                login = bench.ssh_login_s()
                print(f"host: {cpu_name()}, {os.cpu_count()} CPUs, governor {cpu_governor() or 'unknown'}, "
                      f"{platform.system()} {platform.release()}; {host_device()}")
                print(f"python {platform.python_version()}, onnxruntime {ort.__version__}; board python "
                      f"{bench.python}; {subprocess.run(['ssh', '-V'], capture_output=True, text=True).stderr.strip()}")
                print(f"board: sshd on 127.0.0.1:{bench.server.port} (this host), one ssh login "
                      f"(`ssh board-a true`, no master) {login:.3f} s")
                print(f"load average (1/5/15 min) at start: {load_start}")
                print(f"timing plan: {bench.plan.describe()}; {args.threads} thread(s); batch 1")
                print("L = ModelRuns.measure, local worker; B = BoardRuns.measure, localhost board over ssh"
                      + ("" if args.no_control else "; L' = a second local measurement (noise floor)"))
                for model in models:
                    if not args.no_latency:
                        latency[model.name] = latency_rounds(bench, model, args.rounds, not args.no_control)
                    if not args.no_first:
                        first[model.name] = first_result_rounds(bench, model, args.rounds)
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave sshd running
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except KeyboardInterrupt:
        print("\ninterrupted: sshd, workers, pools and temporary folders cleaned up", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    assert bench is not None
    print(f"\nload average (1/5/15 min) at end: {load_text()} (start: {load_start}); "
          f"{time.monotonic() - started:.0f} s in all, of which {bench.lock_wait_s:.0f} s waiting for this host's "
          f"timing lock (other edgecheck sessions)")
    for kind, label in bench.labels.items():
        print(f"board label ({kind}): {label}")
    print("\n## Summary (Markdown)\n")
    print(f"Host: {cpu_name()}, {os.cpu_count()} CPUs, load average {load_start} at start, {load_text()} at end; "
          f"board: sshd on 127.0.0.1 with its own Python (numpy + onnxruntime {ort.__version__}); "
          f"{args.rounds} rounds, alternating; {args.threads} thread(s).\n")
    if latency:
        print(f"Latency (p50, batch 1; {bench.plan.describe()}):\n")
        print("| model | local p50 ms | board p50 ms | board/local - 1 (median of rounds) | range | at p10 | "
              "noise floor (local vs local) | target +-3 % |")
        print("|---|---|---|---|---|---|---|---|")
        for name, s in latency.items():
            floor = f"{s['floor']:.2f} %" if s["floor"] is not None else "-"
            print(f"| {name} | {s['L']:.4f} | {s['B']:.4f} | {s['ratio']:+.2f} % | {s['range'][0]:+.2f} .. "
                  f"{s['range'][1]:+.2f} % | {s['low']:+.2f} % | {floor} | {s['verdict']} |")
        print()
    if first:
        print("Time to first result (wall time of one outputs run; median of rounds):\n")
        print("| model | local, new worker s | local, kept worker s | board cold s (sent) | "
              "board warm, new session s | board warm, same session s | max abs diff |")
        print("|---|---|---|---|---|---|---|")
        for name, s in first.items():
            print(f"| {name} | {s['local_first']:.3f} | {s['local_second']:.3f} | {s['cold']:.3f} "
                  f"({kib(s['cold_sent'])}) | {s['warm_new']:.3f} ({kib(s['warm_new_sent'])} sent) | "
                  f"{s['warm_same']:.3f} | {s['max_diff']:.2g} |")
        print("\ncold: a fresh store (edgecheck's worker package, the artifact and the inputs sent); warm, new "
              "session: a new BoardPool/BoardRuns (new ssh master) on the filled store; warm, same session: a "
              f"second call on that BoardRuns. One plain ssh login here: {login:.3f} s.")


if __name__ == "__main__":
    main()
