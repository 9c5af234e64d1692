"""What pip is doing, read from its output lines, for the progress of `edgecheck env create`: which
package it collects, downloads (and how big), builds, and how many it installs. pip's output is text
for people, not an interface: a line this does not know says nothing, never an error."""

from __future__ import annotations

import re

_COLLECTING = re.compile(r"^\s*Collecting (?P<requirement>\S+)")
# pip >= 23 prints the file name; older versions the URL: the last path part either way
_DOWNLOADING = re.compile(r"^\s*Downloading (?P<file>\S+) \((?P<size>[\d.,]+ ?[kKMG]?i?B)\)")
_BUILDING = re.compile(r"^\s*Building wheel for (?P<name>\S+)")
_INSTALLING = re.compile(r"^\s*Installing collected packages: (?P<names>.+)$")
# a wheel is name-version-...whl, a source archive name-version.tar.gz: a name holds no '-' in either
_FILE = re.compile(r"^(?P<name>[^-/]+)-(?P<version>[^-/]+?)(?:-.*)?\.(?:whl|tar\.gz|zip|tar\.bz2)$")
_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "kiB": 1024, "KiB": 1024, "MB": 1e6, "MiB": 1024**2, "GB": 1e9, "GiB": 1024**3}


def _bytes(size: str) -> float:
    number, unit = re.match(r"([\d.,]+) ?(\S+)", size).groups()  # type: ignore[union-attr]
    return float(number.replace(",", "")) * _UNITS.get(unit, 1)


class PipActivity:
    """Call it with each line pip prints: what pip is doing now (for a progress update), or None where the
    line says nothing new. Remembers the sizes of what it downloaded, to name the largest when installing."""

    def __init__(self) -> None:
        self.sizes: dict[str, str] = {}

    def __call__(self, line: str) -> str | None:
        found = _DOWNLOADING.match(line)
        if found:
            file = found["file"].rstrip("/").rsplit("/", 1)[-1]
            if file.endswith(".metadata"):
                return None  # the resolver reading a package's metadata: part of collecting it
            parts = _FILE.match(file)
            name, version = (parts["name"], parts["version"]) if parts else (file, "")
            size = found["size"]
            self.sizes[_normal(name)] = size
            return f"downloading {name} {version} ({size})" if version else f"downloading {name} ({size})"
        found = _COLLECTING.match(line)
        if found:
            return f"collecting {found['requirement']}"
        found = _BUILDING.match(line)
        if found:
            return f"building {found['name']} from source"
        found = _INSTALLING.match(line)
        if found:
            names = [n.strip() for n in found["names"].split(",") if n.strip()]
            known = sorted((n for n in names if _normal(n) in self.sizes), key=lambda n: -_bytes(self.sizes[_normal(n)]))
            count = f"installing {len(names)} package{'s' if len(names) != 1 else ''}"
            if not known:
                return count if len(names) > 1 else f"installing {names[0]}" if names else None
            largest = known[0]
            if len(names) == 1:
                return f"installing {largest} ({self.sizes[_normal(largest)]})"
            return f"{count}, the largest {largest} ({self.sizes[_normal(largest)]})"
        return None


def _normal(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503): case and -_. alike."""
    return re.sub(r"[-_.]+", "-", name).lower()
