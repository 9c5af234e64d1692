"""One cache entry on disk: a folder holding its files and an `entry.json` that lists each of them
with its SHA-256. Reading an entry trusts nothing in it: every listed name must stay inside the
entry, no file may be a link or anything but a regular file, the files present must be exactly
those listed, and each must match its digest; anything else makes the entry corrupt (the cache
warns and rebuilds it), and nothing is ever followed out of the entry.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from edgecheck.units import MIB

ENTRY_FILE = "entry.json"
MANIFEST_LIMIT_BYTES = 4 * MIB  # an entry.json lists a few files: a bigger one is not ours
FILES_LIMIT = 10_000  # an artifact with external data has a handful of files
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class CorruptEntry(Exception):
    """An entry that must not be used; the message says what is wrong with it."""


def _open_regular(path: Path) -> int:
    """A descriptor for `path` if it is a regular file, not a link (nor a FIFO or device that blocks)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptEntry(f"{path.name} is a link (an entry holds only its own files)") from None
        raise
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise CorruptEntry(f"{path.name} is not a regular file")
    return descriptor


def file_digest(path: Path) -> str:
    """SHA-256 of a regular file, read in blocks (never through a link)."""
    digest = hashlib.sha256()
    with os.fdopen(_open_regular(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_present(folder: Path) -> set[str]:
    """Every regular file under `folder` (relative, POSIX); a link or a special file is corrupt."""
    present: set[str] = set()
    for directory, folders, files in os.walk(folder):  # os.walk lists links to folders, never enters them
        for name in folders + files:
            path = Path(directory) / name
            relative = path.relative_to(folder).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise CorruptEntry(f"{relative} is a link (an entry holds only its own files)")
            if stat.S_ISREG(mode):
                present.add(relative)
            elif not stat.S_ISDIR(mode):
                raise CorruptEntry(f"{relative} is not a regular file")
            if len(present) > FILES_LIMIT:
                raise CorruptEntry(f"it holds more than {FILES_LIMIT} files")
    return present


def listing(folder: Path) -> dict[str, str]:
    """Each file a build wrote into `folder` and its SHA-256, for its entry.json."""
    return {name: file_digest(folder / name) for name in sorted(files_present(folder) - {ENTRY_FILE})}


def _inside(name: object) -> bool:
    """A relative POSIX path that names a file below the entry: no '..', no absolute path, no '.'."""
    if not isinstance(name, str) or not name or "\0" in name:
        return False
    parts = PurePosixPath(name).parts
    return (not PurePosixPath(name).is_absolute() and "/".join(parts) == name
            and all(part not in ("", ".", "..") for part in parts) and name != ENTRY_FILE)


def write_manifest(folder: Path, fields: dict[str, Any]) -> None:
    (folder / ENTRY_FILE).write_text(json.dumps(fields, indent=1, sort_keys=True))


def read_manifest(folder: Path, key: str, root: Path) -> dict[str, Any] | None:
    """The entry's manifest if the entry at `folder` is whole; None if there is none; raises
    `CorruptEntry` saying why it cannot be used. `root` is the cache the entry must lie in."""
    try:
        info = folder.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        raise CorruptEntry("it is a link or a file, not a folder")
    real = folder.resolve()
    if not real.is_relative_to(root.resolve()):
        raise CorruptEntry(f"it lies outside the cache ({real}: a link above it)")
    try:
        descriptor = _open_regular(real / ENTRY_FILE)
        with os.fdopen(descriptor, "rb") as handle:
            text = handle.read(MANIFEST_LIMIT_BYTES + 1)
        if len(text) > MANIFEST_LIMIT_BYTES:
            raise ValueError(f"larger than {MANIFEST_LIMIT_BYTES // MIB} MiB")
        entry = json.loads(text)
        files = entry["files"]
        if not isinstance(files, dict) or not all(isinstance(d, str) for d in files.values()):
            raise ValueError("its file list is malformed")
    except CorruptEntry:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptEntry(f"{ENTRY_FILE} unreadable ({type(exc).__name__}: {exc})") from None
    if entry.get("key") != key:
        raise CorruptEntry(f"{ENTRY_FILE} names the key {str(entry.get('key'))[:70]!r}, not its folder's")
    outside = [name for name in files if not _inside(name)]
    if outside:
        raise CorruptEntry(f"{ENTRY_FILE} names {str(outside[0])[:200]!r}, a path outside the entry (not followed)")
    present = files_present(real) - {ENTRY_FILE}
    for name, digest in files.items():
        if name not in present:
            raise CorruptEntry(f"{name} is missing")
        if file_digest(real / name) != digest:
            raise CorruptEntry(f"{name} does not match its recorded SHA-256")
    unlisted = sorted(present - set(files))
    if unlisted:
        raise CorruptEntry(f"{unlisted[0]} is not listed in {ENTRY_FILE}")
    return entry


def remove(path: Path) -> None:
    """Remove a file, a link (as itself) or a folder; what is already gone is fine."""
    try:
        if stat.S_ISDIR(path.lstat().st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


# a full disk


def is_full_disk(error: BaseException) -> bool:
    """ENOSPC or a quota from our own writes, or a tool's message that says so."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return "No space left on device" in text or "Disk quota exceeded" in text


def free_space(path: Path) -> str:
    """The space free on the disk that holds `path` (or its nearest existing folder)."""
    for candidate in (path, *path.parents):
        try:
            return f"{shutil.disk_usage(candidate).free / MIB:,.1f} MiB free"
        except OSError:
            continue
    return "free space unknown"
