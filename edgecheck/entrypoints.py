"""Entry point groups: how the core finds what vendors and third parties add, without naming them.

Every extension (a backend, a recipe module, a check, an artifact format, a folder of operator
tables or tool environments) comes through a group of the same name: edgecheck's own vendors are
registered in its pyproject exactly as a third-party distribution registers its own. Loading happens
on first use, and a plugin that fails to import is reported by name, never crashing the session.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

BACKENDS = "edgecheck.backends"
RECIPES = "edgecheck.recipes"
CHECKS = "edgecheck.checks"
FORMATS = "edgecheck.formats"
TABLES = "edgecheck.tables"  # a folder of operator tables (*.yaml)
ENVS = "edgecheck.envs"  # a folder of tool environment definitions (*.yaml)
POWER = "edgecheck.power"  # a module a board's worker imports to read its power sensors (standard library only)


@dataclass(frozen=True)
class Loaded:
    """One entry point: the object it names, or why it could not be had."""

    name: str
    target: str
    value: Any = None
    error: str = ""


def import_target(target: str) -> Any:
    """`package.module:attribute` (or a module alone) → the object."""
    module_name, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module_name.strip())
    for part in filter(None, attribute.strip().split(".")):
        value = getattr(value, part)
    return value


# every group's entry points, as of one state of sys.path: (that state, them); scanning every installed distribution
# takes 10-20 ms, and a session looks up its groups a dozen times
_SCANNED: tuple[tuple, Any] | None = None


def _path_state() -> tuple:
    """sys.path and when each of its folders last changed: a distribution installed or removed meanwhile changes it."""
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, None))
    return tuple(state)


def _entry_points(group: str) -> Any:
    """The entry points of one group, from one scan of the installed distributions while sys.path stays as it was.
    Python 3.8 and 3.9's `entry_points()` returns every group in a dict (a worker on a board may run under them)."""
    global _SCANNED
    state = _path_state()
    if _SCANNED is None or _SCANNED[0] != state:
        _SCANNED = (state, entry_points())
    scanned = _SCANNED[1]
    if hasattr(scanned, "select"):
        return scanned.select(group=group)
    return scanned.get(group, ())


def load_group(group: str) -> list[Loaded]:
    """Every entry point of `group`, imported; sorted by name so the order never depends on install order."""
    found = []
    seen: set[tuple[str, str]] = set()
    for entry in sorted(_entry_points(group), key=lambda e: (e.name, e.value)):
        if (entry.name, entry.value) in seen:  # the same distribution seen twice on sys.path
            continue
        seen.add((entry.name, entry.value))
        try:
            found.append(Loaded(entry.name, entry.value, import_target(entry.value)))
        except Exception as exc:  # a broken plugin must not break the session: say whose it is
            found.append(Loaded(entry.name, entry.value,
                                error=f"its plugin {entry.value} failed to import: {type(exc).__name__}: {exc}"))
    return found


def load_classes(group: str, accepts: Callable[[Any], bool], kind: str, skip: Container[str] = (),
                 own_first: bool = False) -> Iterator[tuple[str, Any, str]]:
    """(name, class, "") for each entry point of `group` that names a class `accepts`; (name, None, why not)
    for one that failed to import or names something else; names in `skip` (those registered by hand, or
    already taken: checked as the caller adds) are passed over. `own_first`: edgecheck's own entry points
    come first, so a plug-in that claims what a shipped one owns is the one refused."""
    found = load_group(group)
    if own_first:
        found = sorted(found, key=lambda entry: not entry.target.startswith("edgecheck."))
    for loaded in found:
        if loaded.name in skip:
            continue
        if loaded.error:
            yield loaded.name, None, loaded.error
        elif not accepts(loaded.value):
            yield loaded.name, None, f"{loaded.target} is not an edgecheck {kind}"
        else:
            yield loaded.name, loaded.value, ""


def folders(group: str) -> tuple[list[Path], dict[str, str]]:
    """The folders a data group's entry points name (operator tables, tool environments), and the entry
    points that could not be had, by name, with why."""
    found, broken = [], {}
    for loaded in load_group(group):
        if loaded.error:
            broken[loaded.name] = loaded.error
        else:
            found.append(Path(loaded.value))
    return found, broken
