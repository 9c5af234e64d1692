"""The registry of check kinds, at the bottom of the layers because the spec schema is assembled from
the budgets each kind declares (edgecheck.checks.base holds the Check contract itself).

Kinds come through the `edgecheck.checks` entry point group (edgecheck's own included), on first use;
`register_check` adds one by hand (a conftest.py). A kind whose budget field another kind already owns
is refused by name, never silently shadowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgecheck.errors import SpecError


@dataclass(frozen=True)
class BudgetField:
    """One field a check adds to a target's `budgets`: its type, its pydantic `Field(...)`, and, for a
    section of several bounds (`latency_ms: {p50, p95}`), the model an entry's override uses (any subset
    of the fields; merged bound by bound into the target's) and the names of its bounds (a section whose
    bounds an override sets all to null is dropped)."""

    annotation: Any
    field: Any  # pydantic FieldInfo
    override: Any = None  # the annotation of the field in a compress entry's override; default: `annotation`
    bounds: tuple[str, ...] = ()  # non-empty: a section merged bound by bound


@dataclass
class _Registry:
    registered: dict[str, type] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    discovered: bool = False
    version: int = 0


_registry = _Registry()


def _discover() -> None:
    if _registry.discovered:
        return
    _registry.discovered = True
    from edgecheck.entrypoints import CHECKS, load_classes

    # edgecheck's own kinds first: a plug-in that claims a built-in budget field is the one refused
    for name, cls, problem in load_classes(CHECKS, _is_check_class, "Check class (edgecheck.checks.base.Check)",
                                           skip=_registry.registered, own_first=True):
        if problem:
            _registry.broken[name] = problem
        else:
            _add(cls)
    _registry.version += 1


def _add(cls: type) -> None:
    owned = {f: other for other in _registry.registered.values() if other.name != cls.name for f in other.budgets}
    clash = sorted(f for f in cls.budgets if f in owned)
    if clash:
        _registry.broken[cls.name] = (f"its budget field {clash[0]!r} is already the {owned[clash[0]].name!r} "
                                      "check's")
        return
    _registry.registered[cls.name] = cls


def register_check(cls: type) -> type:
    """Add a check kind by hand (a conftest.py, tests); usable as a decorator. The spec schema is rebuilt."""
    _discover()
    _registry.broken.pop(cls.name, None)
    _add(cls)
    _registry.version += 1
    return cls


def unregister_check(name: str) -> None:
    _registry.registered.pop(name, None)
    _registry.broken.pop(name, None)
    _registry.version += 1


def reset_checks() -> None:
    """Forget hand-registered checks; entry points are read again on next use (end of a session)."""
    _registry.registered.clear()
    _registry.broken.clear()
    _registry.discovered = False
    _registry.version += 1


def registry_version() -> int:
    """Changes whenever the set of checks does, so the assembled spec schema knows to rebuild."""
    _discover()
    return _registry.version


def check_kinds() -> list[type]:
    """Every registered check kind, in run order."""
    _discover()
    return sorted(_registry.registered.values(), key=lambda c: (c.order, c.name))


def check_names() -> list[str]:
    return [cls.name for cls in check_kinds()]


def broken_checks() -> dict[str, str]:
    _discover()
    return dict(_registry.broken)


def get_check_class(name: str) -> type:
    """The class of check kind `name`."""
    _discover()
    cls = _registry.registered.get(name)
    if cls is None:
        why = _registry.broken.get(name)
        raise SpecError(f"check {name!r} " + (f"cannot be used: {why}" if why else
                        f"is not installed (installed: {', '.join(check_names())})"))
    return cls


def _is_check_class(value: Any) -> bool:
    """A check kind is a class with a name, its budgets and a run method (edgecheck.checks.base.Check)."""
    return (isinstance(value, type) and isinstance(getattr(value, "name", None), str)
            and isinstance(getattr(value, "budgets", None), dict) and callable(getattr(value, "run", None)))
