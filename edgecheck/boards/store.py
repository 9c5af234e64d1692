"""A board's store, from the session: files sent by content (once), edgecheck's worker package, a
session's job folder, outputs fetched back.

Every operation runs the agent (edgecheck/boards/agent.py, after probe.py) under the board's Python
over the board's ssh link; nothing of edgecheck needs to be installed there. A file is named by its
SHA-256, so an artifact reaches a board once whichever session, spec or recipe made it, and a copy
torn by a dropped connection is never used (the agent checks the digest before keeping it).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import posixpath
import tarfile
import time
from pathlib import Path
from typing import Any

from edgecheck.boards.config import Board
from edgecheck.boards.ssh import BoardCommandError, SshLink
from edgecheck.errors import EdgecheckError
from edgecheck.worker.client import log_tail

HERE = Path(__file__).resolve().parent
AGENT_TIMEOUT_S = 60.0
TOUCH_EVERY_S = 300.0  # well inside the agent's ten minutes of keeping what was used
BYTES_PER_S_FLOOR = 1_000_000  # a copy's time limit assumes at least 1 MB/s (a slow Wi-Fi board)


class BoardStoreError(EdgecheckError):
    """The board refused a store operation: its disk is full, a copy was torn, a path is refused."""

    def __init__(self, board: Board, kind: str, message: str):
        self.board, self.kind = board, kind
        super().__init__(f"{board.describe()}: {message}")


@functools.lru_cache(maxsize=1)
def agent_script() -> str:
    """probe.py's functions, then the agent's operations, then the call: one `python -c` program."""
    probe = (HERE / "probe.py").read_text(encoding="utf-8")
    probe = probe.split('\nif __name__ == "__main__":', 1)[0]
    tools = (HERE / "tools_probe.py").read_text(encoding="utf-8")
    agent = (HERE / "agent.py").read_text(encoding="utf-8")
    future = "from __future__ import annotations\n"
    body = (probe.replace(future, "", 1) + "\n\n" + tools.replace(future, "", 1) + "\n\n"
            + agent.replace(future, "", 1))
    # nothing of the current folder on the path: a json.py in the board account's home never shadows the library
    clean = "import sys\nsys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
    return future + clean + body + "\nsys.exit(agent_main(sys.argv[1:]))\n"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def worker_package(extra_roots: tuple[str, ...] = ()) -> tuple[str, bytes]:
    """edgecheck's package (and the top-level packages of plug-in backends), as a reproducible .tar.gz:
    its SHA-256 names it on the board, so a board unpacks each version once."""
    roots = [HERE.parent, *(Path(r) for r in extra_roots)]
    buffer = io.BytesIO()
    # gzip's header carries a time: fixed, so the same package always has the same digest
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w") as bundle:
        for root in roots:
            files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                           and p.suffix not in (".pyc", ".pyo", ".so") and not p.name.startswith("."))
            for path in files:
                info = tarfile.TarInfo(str(Path(root.name) / path.relative_to(root)).replace(os.sep, "/"))
                data = path.read_bytes()
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                bundle.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    return hashlib.sha256(data).hexdigest(), data


class BoardStore:
    """One board's store, through its ssh link."""

    def __init__(self, board: Board, link: SshLink, session: str):
        self.board, self.link, self.session = board, link, session
        self._sent: dict[str, str] = {}  # local sha256+suffix -> path on the board
        self._digests: dict[tuple[str, int, int], str] = {}
        self._touched: dict[str, float] = {}  # when the board last confirmed (and touched) each file
        self._code: dict[str, str] = {}
        self._job: str | None = None
        self.sent_bytes = 0
        self.sent_files = 0

    def agent(self, op: str, *args: str, data: bytes | None = None, source: Path | None = None,
              timeout_s: float = AGENT_TIMEOUT_S) -> Any:
        """One agent operation; its JSON answer, or `BoardStoreError` with the board's own words."""
        command = [self.board.python, "-c", agent_script(), op, self.board.store, *args]
        try:
            out = self.link.run(command, data=data, source=source, timeout_s=timeout_s,
                                what=f"edgecheck's {op} operation")
        except BoardCommandError as exc:
            answer = _last_json(exc.stdout.decode("utf-8", "replace"))
            if answer and "error" in answer:
                raise BoardStoreError(self.board, answer["error"], answer.get("message", "")) from None
            raise
        answer = _last_json(out.decode("utf-8", "replace"))
        if answer is None:
            raise BoardStoreError(self.board, "answer", f"edgecheck's {op} operation answered nothing readable: "
                                  f"{out[-500:].decode('utf-8', 'replace')!r}")
        return answer

    def code(self, extra_roots: tuple[str, ...] = ()) -> str:
        """Where edgecheck's worker package is on the board (sent if it is not there yet)."""
        return self.prepare([], extra_roots)[0]

    def _name(self, path: Path) -> str:
        stat = Path(path).stat()
        identity = (str(path), stat.st_size, stat.st_mtime_ns)
        digest = self._digests.get(identity)
        if digest is None:  # hashed once per file version, not once per run
            digest = self._digests[identity] = sha256_file(path)
        return digest + "".join(Path(path).suffixes[-1:])

    def prepare(self, files: list[Path], extra_roots: tuple[str, ...] = ()) -> tuple[str, list[str]]:
        """The worker package's folder and each file's path on the board: what is not there yet is sent, and
        the session's job folder made, after one round trip that asks what is missing (none at all when this
        session has sent them already)."""
        digest, data = worker_package(extra_roots)
        names = [self._name(path) for path in files]
        # each asked again (and so touched there) every few minutes: the board keeps what was used in the last ten
        now = time.monotonic()

        def due(name: str) -> bool:
            return now - self._touched.get(name, -TOUCH_EVERY_S - 1) > TOUCH_EVERY_S

        code_name = f"code-{digest}"
        wanted = ([] if digest in self._code and not due(code_name) else [code_name]) + \
            [n for n in names if n not in self._sent or due(n)]
        if wanted or self._job is None:
            answer = self.agent("prepare", json.dumps(wanted), self.session)
            self._job, store = answer["job"], answer["store"]
            self._touched.update({name: now for name in wanted})
            missing = set(answer["missing"])
            if code_name in missing:
                self.agent("code", digest, data=data, timeout_s=AGENT_TIMEOUT_S + len(data) / BYTES_PER_S_FLOOR)
                self.sent_bytes += len(data)
                self.sent_files += 1
            if code_name in wanted:
                self._code[digest] = posixpath.join(store, "code", digest)
            for path, name in zip(files, names):
                if name in self._sent and name not in missing:
                    continue
                if name in missing:
                    size = Path(path).stat().st_size
                    put = self.agent("put", name, str(size), f"{self.board.store_limit_mb:g}", source=Path(path),
                                     timeout_s=AGENT_TIMEOUT_S + size / BYTES_PER_S_FLOOR)
                    self.sent_bytes += size
                    self.sent_files += 1
                    self._sent[name] = put["path"]
                else:
                    self._sent[name] = posixpath.join(store, "blobs", name)
        return self._code[digest], [self._sent[name] for name in names]

    def send(self, path: Path) -> str:
        """The board's path of a local file, sent once by content (its suffix kept: runtimes read it)."""
        return self.prepare([path])[1][0]

    def job_folder(self) -> str:
        if self._job is None:
            self._job = self.agent("job", self.session)["path"]
        return self._job

    def fetch(self, remote: str, local: Path, timeout_s: float = AGENT_TIMEOUT_S) -> None:
        """A file of the session's job folder, copied back here."""
        command = [self.board.python, "-c", agent_script(), "get", self.board.store, remote]
        tmp = local.with_name(local.name + ".tmp")
        try:
            self.link.run(command + ["1"], sink=tmp, timeout_s=timeout_s,  # removed there once fetched
                          what=f"fetching {posixpath.basename(remote)}")
        except BoardCommandError as exc:
            said = log_tail(tmp)  # the agent's own error went where the file would have
            tmp.unlink(missing_ok=True)
            answer = _last_json(said)
            if answer and "error" in answer:
                raise BoardStoreError(self.board, answer["error"], answer.get("message", "")) from None
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, local)

    def clean(self) -> None:
        """The session's job folder goes, and any worker of it still running there (once: a second call does
        nothing)."""
        if self._job is not None:
            self._job = None
            self.agent("clean", self.session)


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        start = line.find("{")
        if start >= 0:
            try:
                found = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    return None
