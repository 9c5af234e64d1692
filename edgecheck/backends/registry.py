"""Backends by name: the built-in ones plus whatever the `edgecheck.backends` entry points add.

Discovery happens on first use, not at import, so a project that never runs a check pays nothing.
A plugin that fails to import is reported as an unavailable backend with the import error, never
as a crash of the session.
"""

from __future__ import annotations

from pathlib import Path

from edgecheck.backends.base import Availability, Backend, file_suffixes, read_suffixes
from edgecheck.entrypoints import BACKENDS as ENTRY_POINT_GROUP
from edgecheck.entrypoints import load_classes
from edgecheck.errors import BackendUnavailable

_registered: dict[str, type[Backend]] = {}
_broken: dict[str, str] = {}
_discovered = False


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Add a backend class by hand (tests, or a conftest.py); usable as a decorator."""
    _registered[cls.name] = cls
    _broken.pop(cls.name, None)
    try:
        from edgecheck.devices import register_profile_options  # (pydantic: never at a worker's import)
    except ImportError:  # a worker on a board (a conftest's backend imported there): profiles are the session's
        return cls
    register_profile_options(cls.name, cls.profile_options)
    return cls


def unregister_backend(name: str) -> None:
    _registered.pop(name, None)
    _broken.pop(name, None)
    try:
        from edgecheck.devices import unregister_profile_options
    except ImportError:  # a worker on a board
        return
    unregister_profile_options(name)


def reset_registry() -> None:
    """Forget hand-registered backends and rediscover entry points on next use (end of a session),
    so one pytest session's conftest backends never leak into the next in the same process."""
    global _discovered
    from edgecheck.devices import unregister_profile_options

    for name in list(_registered):
        unregister_profile_options(name)
    _registered.clear()
    _broken.clear()
    _discovered = False


def _discover() -> None:
    """The `edgecheck.backends` entry points (edgecheck's own vendors among them); a class registered
    by hand keeps its name."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for name, cls, problem in load_classes(ENTRY_POINT_GROUP, lambda v: isinstance(v, type) and issubclass(v, Backend),
                                           "Backend class", skip=_registered):
        if problem:
            _broken[name] = problem
        else:
            _registered[name] = cls


def known_backends() -> list[str]:
    _discover()
    return sorted(set(_registered) | set(_broken))


def backend_suffixes(name: str) -> tuple[str, ...]:
    """The file suffixes of the formats a backend runs, without starting it; ONNX's for one not installed
    here (its items then skip with the reason)."""
    _discover()
    cls = _registered.get(name)
    if cls is not None:
        return file_suffixes(cls)
    from edgecheck.formats import DEFAULT, suffix_text  # the registry of formats: never in a worker

    return (suffix_text(DEFAULT),)


def backend_reads(name: str) -> tuple[str, ...]:
    """The file suffixes of the formats a backend's operator table and cost model judge without running
    (a compiled format's backend: ONNX)."""
    _discover()
    cls = _registered.get(name)
    return read_suffixes(cls) if cls is not None else ()


def broken_backends() -> dict[str, str]:
    """Backends whose plugin failed to load, and why."""
    _discover()
    return dict(_broken)


def reference_backend_for(format_name: str) -> str | None:
    """The installed backend that gives reference outputs for models of a format (first by name where
    several say so); None where none does. Only a class's own declaration counts: a plugin that subclasses
    the reference runtime to serve its device does not become the reference."""
    _discover()
    return next((name for name, cls in sorted(_registered.items())
                 if format_name in vars(cls).get("reference_for", ())), None)


def reference_backend_of(model: Path) -> str | None:
    """The backend that gives a model's reference outputs: the one its format names, else the installed one
    that says it gives that format's reference (ONNX Runtime FP32 for an ONNX model); None where none does."""
    from edgecheck.formats import format_of

    found = format_of(model)
    return found.reference_backend or reference_backend_for(found.name)


def running_backends() -> dict[str, tuple[str, ...]]:
    """Each installed backend's run suffixes, for messages that say which backend runs what."""
    _discover()
    return {name: file_suffixes(cls) for name, cls in sorted(_registered.items())}


def get_backend(name: str) -> Backend:
    """An instance of backend `name`, or `BackendUnavailable` saying why it cannot be had."""
    _discover()
    if name in _registered:
        try:
            return _registered[name]()
        except Exception as exc:  # a third-party constructor must not take the session down
            raise BackendUnavailable(name, f"its backend class failed to start: {type(exc).__name__}: {exc}") from exc
    if name in _broken:
        raise BackendUnavailable(name, _broken[name])
    raise BackendUnavailable(
        name, f"no backend of that name is installed (installed: {', '.join(known_backends()) or 'none'}; "
        f"a plugin adds one through the {ENTRY_POINT_GROUP!r} entry point group)"
    )


def check_available(name: str) -> Backend:
    """The backend, if it can run here; else `BackendUnavailable` with the reason."""
    backend = get_backend(name)
    try:
        status: Availability = backend.availability()
    except Exception as exc:
        raise BackendUnavailable(name, f"availability() raised {type(exc).__name__}: {exc}") from exc
    if not status:
        raise BackendUnavailable(name, status.reason)
    return backend
