"""Tool environment definitions are data: a YAML file per tool in this folder (`onnx2tf.yaml`), then
the files in the folders named in $EDGECHECK_ENV_DEFS (os.pathsep-separated, e.g. a project's own or a
test's), then those passed as `extra_dirs`; a later file with the same name replaces an earlier one."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from edgecheck.errors import EnvError
from edgecheck.strict import StrictModel

DEFS_VAR = "EDGECHECK_ENV_DEFS"


def override_var(name: str) -> str:
    """EDGECHECK_ENV_<NAME>: a venv the user manages, used as it is."""
    return "EDGECHECK_ENV_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _check_requirements(value: list[str]) -> list[str]:
    for req in value:
        if not req.strip() or req.lstrip().startswith("-"):  # a pip option would change what is installed
            raise ValueError(f"{req!r} is not a requirement")
        try:
            from packaging.requirements import Requirement
            Requirement(req)
        except ImportError:
            pass
        except ValueError as exc:  # packaging's InvalidRequirement
            raise ValueError(f"{req!r}: {exc}") from None
    return value


class PipStep(StrictModel):
    """One more pip call after `requirements`, for toolkits whose pins must be side-stepped: e.g. a
    CPU torch first, then the toolkit without its dependencies, then the rest."""

    requirements: list[str] = Field(min_length=1)
    no_deps: bool = Field(False, description="pip install --no-deps: take these packages, not what they pin.")

    @field_validator("requirements")
    @classmethod
    def _valid_requirements(cls, value: list[str]) -> list[str]:
        return _check_requirements(value)

    def pip_args(self) -> list[str]:
        return [*(["--no-deps"] if self.no_deps else []), *self.requirements]


class EnvDefinition(StrictModel):
    """What goes into one tool's environment and how to prove it works."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = Field(pattern=r"^[^\n]*$", description="One line.")
    python: str = Field(description="What the interpreter making the venv must meet, e.g. '>=3.10,<3.13'.")
    requirements: list[str] = Field(description="pip requirement strings, installed in one pip call.")
    then: list[PipStep] = Field(default_factory=list, description="Further pip calls, in order, after requirements.")
    check: str = Field(description="Python run by the env's interpreter; its last stdout line is the version.")
    size: str = Field(description="Disk and time, for the user deciding whether to create it.")
    notes: list[str] = Field(default_factory=list)
    file: Path | None = Field(None, exclude=True)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if override_var(value) == DEFS_VAR:
            raise ValueError(f"{value!r} is reserved: its variable would be {DEFS_VAR}")
        return value

    @field_validator("python")
    @classmethod
    def _valid_specifier(cls, value: str) -> str:
        python_meets("3.0.0", value)  # raises ValueError on a malformed requirement
        return value

    @field_validator("requirements")
    @classmethod
    def _valid_requirements(cls, value: list[str]) -> list[str]:
        return _check_requirements(value)

    @field_validator("check")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compile(value, "<check>", "exec")
        except SyntaxError as exc:
            raise ValueError(f"not valid Python: {exc.msg}") from None
        return value

    def pip_calls(self) -> list[list[str]]:
        """The pip install arguments, one list per call, in order."""
        return [args for args in ([*self.requirements], *(step.pip_args() for step in self.then)) if args]

    def digest(self) -> str:
        """What the environment depends on; a different digest in the marker means stale."""
        fields = {"requirements": self.requirements, "python": self.python, "check": self.check}
        if self.then:  # only when used, so definitions without it keep their digest
            fields["then"] = [step.model_dump() for step in self.then]
        key = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()


def python_meets(version: str, spec: str) -> bool:
    """Whether a Python version meets a requirement like '>=3.10,<3.13' (packaging when installed)."""
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:
        return _simple_meets(version, spec)
    try:
        return SpecifierSet(spec).contains(version, prereleases=True)
    except ValueError as exc:  # packaging's InvalidSpecifier
        raise ValueError(f"{spec!r} is not a version requirement: {exc}") from None


def _simple_meets(version: str, spec: str) -> bool:
    ops = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a[:len(b)] == b,
           "!=": lambda a, b: a[:len(b)] != b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
    have, ok = tuple(int(p) for p in version.split(".")), True
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        match = re.fullmatch(r"(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)", clause)
        if not match:
            raise ValueError(f"{spec!r} is not a version requirement: cannot read {clause!r}")
        ok = ok and ops[match[1]](have, tuple(int(p) for p in match[2].split(".")))
    return ok


_READ: dict[Path, tuple[tuple[int, int], EnvDefinition]] = {}  # by file, with its (mtime_ns, size) when read


def read_definition(path: Path) -> EnvDefinition:
    """One definition file, read again only once it changes (a session asks for them a few times a run: each
    artifact's key names its tools' environments); errors name the file and the field."""
    try:
        info = os.stat(path)
        identity = (info.st_mtime_ns, info.st_size)
    except OSError:
        identity = None
    known = _READ.get(Path(path))
    if identity is not None and known is not None and known[0] == identity:
        return known[1]
    definition = _read_definition(path)
    if identity is not None:
        _READ[Path(path)] = (identity, definition)
    return definition


def _read_definition(path: Path) -> EnvDefinition:
    import yaml

    try:
        # libyaml's parser where PyYAML has it: the same data as safe_load, far faster
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise EnvError(f"{path}: cannot read the environment definition: {exc}") from None
    if not isinstance(data, dict):
        raise EnvError(f"{path}: the environment definition must be a mapping of fields")
    data.setdefault("name", Path(path).stem)
    try:
        return EnvDefinition.model_validate({**data, "file": path})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise EnvError(f"{path}: {field}: {first['msg']}") from None


def builtin_dirs() -> list[Path]:
    """The folders of environment definitions the installed vendors ship (entry point group `edgecheck.envs`)."""
    from edgecheck.entrypoints import ENVS, folders

    found, broken = folders(ENVS)
    for name, why in broken.items():
        raise EnvError(f"environment definitions {name!r}: {why}")
    return found


def load_definitions(extra_dirs: Iterable[Path] = ()) -> dict[str, EnvDefinition]:
    """The built-in folder's, then $EDGECHECK_ENV_DEFS's folders', then `extra_dirs`': later ones win."""
    from_var = [Path(p) for p in os.environ.get(DEFS_VAR, "").split(os.pathsep) if p]
    definitions: dict[str, EnvDefinition] = {}
    for folder in [*builtin_dirs(), *from_var, *(Path(p) for p in extra_dirs)]:
        if not folder.is_dir():
            named = f" (named in ${DEFS_VAR})" if folder in from_var else ""
            raise EnvError(f"{folder}: environment definition folder not found{named}")
        for path in sorted(folder.glob("*.y*ml")):
            definition = read_definition(path)
            definitions[definition.name] = definition
    return definitions


def known_envs() -> list[str]:
    return sorted(load_definitions())


def env_definition(name: str) -> EnvDefinition:
    definitions = load_definitions()
    if name not in definitions:
        raise EnvError(f"unknown tool environment {name!r} (known: {', '.join(sorted(definitions)) or 'none'})")
    return definitions[name]
