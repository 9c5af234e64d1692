"""Reading a small file a user names (a spec, a device profile, an operator table, a baseline) with
memory and time bounded whatever sits at that path.

The size is checked on the open file before a byte is read, only regular files are read (a FIFO
would block, /dev/zero or /dev/urandom would never end, a directory cannot be read), and the read
itself stops one byte past the limit, so a file that grows meanwhile cannot take more either.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class UnreadableFile(Exception):
    """The file cannot be read as a small regular file; `reason` says why, without the path."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_bounded(path: Path | str, max_bytes: int, what: str) -> bytes:
    """The whole content of `path`, refused (UnreadableFile) if it is not a regular file or is larger
    than `max_bytes`. A link is followed, and judged by what it points to."""
    try:
        # O_NONBLOCK: opening a FIFO that nobody writes to returns at once instead of waiting forever
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise UnreadableFile(f"cannot read the {what}: it is a directory, not a file") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot read the {what}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"cannot read the {what}: it is {_kind(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise UnreadableFile(f"the {what} is {info.st_size} bytes, larger than {max_bytes} bytes (the most "
                                 f"edgecheck reads of a {what}); nothing was read")
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise UnreadableFile(f"the {what} grew past {max_bytes} bytes while being read")
        return b"".join(chunks)
    except OSError as exc:
        raise UnreadableFile(f"cannot read the {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)

