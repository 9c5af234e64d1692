"""The boards file: which boards a lab has, which device each is, how to reach it.

Specs describe a model; the boards file describes a lab, so it lives outside the specs: the ini
option `edge_boards` or `$EDGECHECK_BOARDS` names it, and `--edge-board DEVICE=ssh://user@host` adds
one board for a single run. Each board is an SSH destination (anything `ssh` accepts: `user@host`, a
`Host` alias of ~/.ssh/config, `ssh://user@host:port`) with the Python that runs edgecheck's worker
there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgecheck.errors import EdgecheckError, SpecError, did_you_mean

BOARDS_VARIABLE = "EDGECHECK_BOARDS"
DEFAULT_STORE = "~/.cache/edgecheck-board"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class BoardsError(EdgecheckError):
    """The boards file or a --edge-board option is wrong: names the file, the board and the field."""


class Board(BaseModel):
    """One board of the lab."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(description="A name for this board, unique in the file: rk3588-a.")]
    device: Annotated[str, Field(description="The device profile it is: rk3588, raspberry-pi-4b, jetson-nano, ...")]
    ssh: Annotated[str, Field(description="What `ssh` reaches it by: user@host, a Host alias of ~/.ssh/config "
                                          "(keys, ProxyJump and ports as ssh does them), or ssh://user@host:port.")]
    python: Annotated[str, Field(description="The board's Python (3.8+) with numpy and the board's runtimes.")] = "python3"
    ssh_config: Annotated[Path | None, Field(description="An ssh client config file (ssh -F) instead of "
                                                         "~/.ssh/config; relative to the boards file.")] = None
    store: Annotated[str, Field(description="The folder on the board where artifacts and edgecheck's worker are "
                                            "kept, by content.")] = DEFAULT_STORE
    store_limit_mb: Annotated[float, Field(gt=0, description="The store's size limit: the least recently used "
                                                             "artifacts are removed beyond it.")] = 2048
    lock_timeout_s: Annotated[float, Field(gt=0, description="How long a run waits for the board while other "
                                                             "runs time on it.")] = 1800
    connect_timeout_s: Annotated[float, Field(gt=0)] = 15
    trtexec: Annotated[str | None, Field(description="TensorRT's trtexec on the board, where it is not "
                                                     "/usr/src/tensorrt/bin/trtexec or on PATH (Jetsons).")] = None
    power_command: Annotated[str | None, Field(description="A shell command run on the board that prints the "
                                                           "board's power in watts (a meter of your own), read "
                                                           "every ~50 ms while timing; where none is given, a "
                                                           "Jetson's INA3221 rails are read.")] = None
    power_idle_s: Annotated[float, Field(ge=0, le=60, description="Seconds of idle power sampled before each "
                                                                  "timing's warm-up.")] = 2.0

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("a board name is letters, digits, '.', '_' and '-' (at most 63), starting with a letter "
                             "or digit")
        return value

    @field_validator("ssh")
    @classmethod
    def _ssh(cls, value: str) -> str:
        value = value.strip()
        if not value or value.startswith("-") or any(c.isspace() for c in value):
            raise ValueError("give an ssh destination (user@host, a Host alias or ssh://user@host:port), with no "
                             "spaces and not starting with '-'")
        return value

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in "\n\r\0"):
            raise ValueError("give the board's python interpreter: a path or a command name such as python3")
        return value.strip()

    @field_validator("trtexec")
    @classmethod
    def _trtexec(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in "\n\r\0")):
            raise ValueError("give the path of trtexec on the board, such as /usr/src/tensorrt/bin/trtexec")
        return value.strip() if value is not None else None

    @field_validator("power_command")
    @classmethod
    def _power_command(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in "\n\r\0")):
            raise ValueError("give one shell command line that prints the board's power in watts, such as "
                             "'cat /run/meter/watts'")
        return value.strip() if value is not None else None

    def run_options(self) -> dict[str, str]:
        """What a worker on this board is told of its tools (`RunOptions.extra`): trtexec's path, where set."""
        return {"trtexec": self.trtexec} if self.trtexec else {}

    def destination(self) -> tuple[str, int | None]:
        """The ssh destination and port (an ssh:// address split into what every OpenSSH version takes)."""
        if self.ssh.startswith("ssh://"):
            parts = urlsplit(self.ssh)
            host = parts.hostname or ""
            user = f"{parts.username}@" if parts.username else ""
            return f"{user}{host}", parts.port
        return self.ssh, None

    @field_validator("ssh")
    @classmethod
    def _address(cls, value: str) -> str:
        """An ssh:// address must split into a user and host that ssh cannot read as an option."""
        if value.startswith("ssh://"):
            try:
                parts = urlsplit(value)
                parts.port  # noqa: B018 - raises for a port that is not a number
            except ValueError as exc:
                raise ValueError(f"not an ssh:// address: {exc}") from None
            if not parts.hostname or (parts.username or "").startswith("-") or parts.hostname.startswith("-"):
                raise ValueError("give ssh://user@host[:port], with a host, and no part starting with '-'")
        return value

    def describe(self) -> str:
        return f"board {self.name} ({self.device}, {self.ssh})"


class BoardsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    boards: list[Board] = Field(default_factory=list)


def _field_error(path: Path, data: Any, exc: ValidationError, lines: dict) -> BoardsError:
    error = exc.errors()[0]
    loc = tuple(error.get("loc", ()))
    where = ".".join(str(p) for p in loc)
    board = ""
    if len(loc) >= 2 and loc[0] == "boards" and isinstance(loc[1], int):
        try:
            board = f" (board {data['boards'][loc[1]].get('name')!r})"
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
    line = None
    for depth in range(len(loc), 0, -1):
        line = lines.get(tuple(loc[:depth]))
        if line is not None:
            break
    at = f":{line}" if line else ""
    return BoardsError(f"{path}{at}: {where}{board}: {error.get('msg', 'invalid')}")


def load_boards_file(path: Path | str) -> list[Board]:
    """The boards of a boards file; `BoardsError` naming the file, line, board and field where it is wrong."""
    from edgecheck.spec.loader import read_yaml_file

    path = Path(path).expanduser()
    try:
        data, lines = read_yaml_file(path, "boards file")
    except SpecError as exc:
        raise BoardsError(f"boards file {exc}") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise BoardsError(f"{path}: the top level must be a mapping with a `boards:` list, not {type(data).__name__}")
    try:
        parsed = BoardsFile.model_validate(data)
    except ValidationError as exc:
        raise _field_error(path, data, exc, lines) from None
    boards = []
    for board in parsed.boards:
        if board.ssh_config is not None and not board.ssh_config.is_absolute():
            board = board.model_copy(update={"ssh_config": (path.parent / board.ssh_config).absolute()})
        boards.append(board)
    return _unique(boards, str(path))


def _unique(boards: list[Board], where: str) -> list[Board]:
    seen: set[str] = set()
    for board in boards:
        if board.name in seen:
            raise BoardsError(f"{where}: two boards are named {board.name!r}; each board needs its own name")
        seen.add(board.name)
    return boards


def parse_board_option(text: str, index: int = 0) -> Board:
    """`--edge-board DEVICE=DESTINATION[?python=PATH&name=NAME&store=DIR&ssh_config=FILE]`: one board for this
    run, e.g. rk3588=ssh://ci@10.0.0.5 or raspberry-pi-4b=pi@pi-1.lab?python=/opt/edge/bin/python."""
    device, sep, rest = text.partition("=")
    if not sep or not device.strip() or not rest.strip():
        raise BoardsError(f"--edge-board {text!r}: give DEVICE=DESTINATION, such as rk3588=ssh://ci@10.0.0.5")
    destination, _, query = rest.strip().partition("?")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - {"python", "name", "store", "ssh_config"})
    if unknown:
        raise BoardsError(f"--edge-board {text!r}: unknown setting {', '.join(unknown)} (known: python, name, store, "
                          "ssh_config)")
    host = urlsplit(destination).hostname if destination.startswith("ssh://") else destination.rpartition("@")[2]
    name = options.pop("name", None) or re.sub(r"[^A-Za-z0-9._-]+", "-", f"{device.strip()}-{host or index}")[:63]
    try:
        if options.get("ssh_config"):  # relative to where the run starts
            options["ssh_config"] = str(Path(options["ssh_config"]).expanduser().absolute())
        return Board(name=name, device=device.strip(), ssh=destination, **options)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise BoardsError(f"--edge-board {text!r}: {'.'.join(map(str, error.get('loc', ())))}: "
                          f"{error.get('msg', 'invalid')}") from None


def configured_boards(ini_paths: list[str], options: list[str], root: Path, boards_file: str | None = None
                      ) -> list[Board]:
    """The boards of this run: the boards file ($EDGECHECK_BOARDS, which a CI runner beside a rack sets, else the
    ini option `edge_boards`, which a project commits), then each --edge-board. A --edge-board for a device
    replaces the file's boards of that device for this run. `boards_file`, where given, is used instead of both."""
    boards: list[Board] = []
    from_environment = os.environ.get(BOARDS_VARIABLE, "")
    given = boards_file or from_environment or (ini_paths[0] if ini_paths else "")
    if given:
        path = Path(given).expanduser()
        if not path.is_absolute():
            path = root / path
        if not path.exists():
            source = "--boards" if boards_file else f"${BOARDS_VARIABLE}" if from_environment else "edge_boards"
            raise BoardsError(f"{source}: the boards file {path} does not exist")
        boards = load_boards_file(path)
    extra = [parse_board_option(text, i) for i, text in enumerate(options)]
    replaced = {b.device for b in extra}
    boards = [b for b in boards if b.device not in replaced] + extra
    return _unique(boards, "--edge-board")


def check_devices(boards: list[Board], known: set[str], hosts: set[str] = frozenset()) -> None:
    """Every board's device must be a known profile (a typo would leave its device unmeasured, silently), and not
    the machine running the tests (`hosts`: a board is another machine)."""
    for board in boards:
        if board.device in hosts:
            raise BoardsError(f"board {board.name!r}: device {board.device!r} is the machine running the tests; a "
                              "board is another machine: give the device profile it is (rk3588, raspberry-pi-4b, ...)")
        if board.device not in known:
            raise BoardsError(f"board {board.name!r}: unknown device {board.device!r}; known: {', '.join(sorted(known))}"
                              + did_you_mean(board.device, known))
