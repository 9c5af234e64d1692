"""`edgecheck boards`: each board of the lab, checked the way a run would use it, in one table.

Reachable (ssh's own words when not), the board's Python and numpy, which runtimes are installed
and their versions, the CPU governor, the temperature and the store's free disk. A board that a run
could not use says why; the command exits 1 when any board is unusable, so a CI job can check its
rack before it starts.
"""

from __future__ import annotations

import configparser
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from edgecheck.boards.config import Board, BoardsError, configured_boards
from edgecheck.boards.pool import BoardState
from edgecheck.boards.ssh import SshLink
from edgecheck.boards.store import BoardStore
from edgecheck.errors import EdgecheckError

MIN_FREE_BYTES = 64 * 1048576  # less than this free in the store: no model of any size would fit
RUNTIME_NAMES = {"onnxruntime": "onnxruntime", "onnxruntime-gpu": "onnxruntime-gpu", "ai-edge-litert": "litert",
                 "tflite-runtime": "tflite-runtime", "rknn-toolkit-lite2": "rknnlite", "tensorrt": "tensorrt"}


def ini_boards_file(folder: Path) -> str | None:
    """`edge_boards` of the pytest configuration in `folder` (pytest.ini, pyproject.toml, tox.ini, setup.cfg)."""
    for name, section in (("pytest.ini", "pytest"), ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = folder / name
        if path.is_file():
            parser = configparser.ConfigParser()
            try:
                parser.read(path, encoding="utf-8")
            except configparser.Error:
                continue
            if parser.has_option(section, "edge_boards"):
                return str(folder / parser.get(section, "edge_boards").strip())
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        try:
            import tomllib
        except ImportError:  # Python 3.10: no TOML reader in the standard library; give --boards there
            return None

        try:
            options = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
        except (KeyError, ValueError, TypeError, OSError):
            return None
        if "edge_boards" in options:
            return str(folder / str(options["edge_boards"]))
    return None


def lab_boards(boards_file: str | None, options: list[str], folder: Path) -> list[Board]:
    """The boards `edgecheck boards` checks, found as a run finds them: --boards, else $EDGECHECK_BOARDS, else
    the pytest ini's edge_boards; every board's device a known profile."""
    from edgecheck.boards.config import check_devices
    from edgecheck.devices import load_profiles
    from edgecheck.errors import DeviceError

    ini = ini_boards_file(folder)
    boards = configured_boards([ini] if ini else [], options, folder, boards_file)
    try:
        profiles = load_profiles([])
    except DeviceError as exc:
        raise BoardsError(str(exc)) from None
    check_devices(boards, set(profiles), {n for n, p in profiles.items() if p.is_host})
    return boards


def _mib(value: Any) -> str:
    return f"{value / 1048576:.0f} MiB" if isinstance(value, (int, float)) else "?"


def board_row(board: Board, session: str) -> tuple[list[str], bool, dict[str, Any]]:
    """One board's row of the table, whether a run could use it, and everything it said."""
    link = SshLink(board)
    state = BoardState(board, link, BoardStore(board, link, session))
    tools: dict[str, Any] = {}
    try:
        why = state.ready()
        if state.facts and (board.trtexec or board.power_command or is_jetson(board)):
            try:
                tools = state.store.agent("tools", board.trtexec or "-", board.power_command or "-",
                                          "1" if is_jetson(board) else "0", timeout_s=120)
            except EdgecheckError as exc:
                tools = {"error": str(exc)}
    finally:
        link.close()
    facts = dict(state.facts or {})
    if tools:
        facts["tools"] = tools
    python = facts.get("python", {}) if isinstance(facts.get("python"), dict) else {}
    versions = (facts.get("runtimes") or {}).get("distributions") or {}
    runtimes = ", ".join(f"{RUNTIME_NAMES.get(n, n)} {v}" for n, v in versions.items() if v) or "none"
    governors = sorted(set((facts.get("governors") or {}).values()))
    disk = facts.get("disk") or {}
    free = disk.get("free_bytes")
    if not why and isinstance(free, (int, float)) and free < MIN_FREE_BYTES:
        why = (f"its store's disk has {_mib(free)} free ({disk.get('path', board.store)}): an artifact would not fit; "
               "free space or point store: elsewhere")
    trtexec, power = tools.get("trtexec") or {}, tools.get("power") or {}
    if not why:
        why = tools_problem(board, tools)
    if trtexec.get("version"):  # TensorRT comes with JetPack, not as a Python package: its trtexec says the version
        runtimes = ", ".join(r for r in (runtimes if runtimes != "none" else "",
                                         f"TensorRT {trtexec['version']} (trtexec)") if r)
    state_text = "ok" if not why else why
    if not why and runtimes == "none":
        why = state_text = ("no runtime installed (onnxruntime, ai-edge-litert, tflite-runtime, rknn-toolkit-lite2 "
                            "or tensorrt): nothing can run there")
    reached = bool(facts) or not why.startswith("unreachable")
    row = [board.name, board.device, board.ssh, "yes" if reached else "no",
           f"{python.get('version', '?')}" if facts else "-",
           (facts.get("numpy") or {}).get("version", "none") if facts else "-",
           runtimes if facts else "-", "/".join(governors) or ("unknown" if facts else "-"),
           str(facts.get("thermal") or "-"), _mib(disk.get("free_bytes")) if facts else "-",
           power_text(power) if facts else "-", state_text]
    if trtexec.get("error") and not trtexec.get("required") and not why:  # a Jetson without trtexec: said, not refused
        row[-1] = f"ok; {trtexec['error']}"
    return row, not why, facts


def is_jetson(board: Board) -> bool:
    """A Jetson device profile: its trtexec is looked for at JetPack's path where the boards file names none."""
    return board.device.startswith("jetson")


def tools_problem(board: Board, tools: dict[str, Any]) -> str:
    """Why the board's trtexec or power meter would fail a run ('' when they would not or none is set)."""
    if tools.get("error"):
        return f"its tools could not be checked: {tools['error']}"
    trtexec, power = tools.get("trtexec") or {}, tools.get("power") or {}
    problems = []
    if trtexec.get("error") and trtexec.get("required"):
        problems.append(f"trtexec: {trtexec['error']}")
    if power.get("error"):
        problems.append(f"power_command: {power['error']}")
    return "; ".join(problems)


def power_text(power: dict[str, Any]) -> str:
    """The meter's one reading, or '-' where no power_command is set (a Jetson's rails are read in a run)."""
    if power.get("watts") is not None:
        return f"{power['watts']:.3g} W (power_command)"
    return "failed" if power.get("error") else "-"


def check_boards(boards: list[Board], session: str) -> tuple[list[list[str]], list[bool], dict[str, Any]]:
    """Every board's row (a header first), whether each can be used, and each board's facts by name."""
    rows = [["board", "device", "ssh", "reachable", "python", "numpy", "runtimes", "governor", "temperature",
             "store free", "power", "state"]]
    usable, facts = [], {}
    for board in boards:
        row, ok, said = board_row(board, session)
        rows.append(row)
        usable.append(ok)
        facts[board.name] = said
    return rows, usable, facts


def boards_command(boards_file: str | None, options: list[str], as_json: bool) -> int:
    """The `edgecheck boards` command: 0 when every board can be used, 1 when one cannot, 2 for no boards or a
    broken boards file."""
    from edgecheck.textable import format_table

    try:
        boards = lab_boards(boards_file, options, Path.cwd())
    except BoardsError as exc:
        print(f"edgecheck: {exc}", file=sys.stderr)
        return 2
    if not boards:
        print("edgecheck: no boards: give --boards FILE, set $EDGECHECK_BOARDS or the ini option edge_boards "
              "(docs/boards.md)", file=sys.stderr)
        return 2
    rows, oks, facts = check_boards(boards, f"check-{uuid.uuid4().hex[:8]}")
    usable = all(oks)
    if as_json:
        print(json.dumps({"boards": [{"name": b.name, "device": b.device, "ssh": b.ssh, "usable": ok,
                                      "state": row[-1], "facts": facts.get(b.name)}
                                     for b, row, ok in zip(boards, rows[1:], oks)]}, indent=2))
    else:
        print("\n".join(format_table(rows)))
    return 0 if usable else 1
