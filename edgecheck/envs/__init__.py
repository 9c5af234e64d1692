"""Tool environments: converters whose pinned versions clash with edgecheck's own (onnx2tf pins
numpy 1.26.4 and tensorflow 2.19) each get a virtual environment of their own, made by one command,
`edgecheck env create NAME`, and found again on later runs.

Definitions are data (edgecheck/envs/definitions.py; $EDGECHECK_ENV_DEFS adds folders of them).
An environment lives at `env_root()/NAME`; $EDGECHECK_ENV_<NAME>
points at a team's own venv instead. `create_env` writes `edgecheck-env.json` into the venv last,
so only a complete environment counts as ready, and a changed definition makes it stale.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from edgecheck import progress
from edgecheck.envs.definitions import (DEFS_VAR, builtin_dirs, EnvDefinition, env_definition, known_envs,
                                        load_definitions, override_var, python_meets, read_definition)
from edgecheck.envs.pip_output import PipActivity
from edgecheck.errors import EnvError

__all__ = ["builtin_dirs", "DEFS_VAR", "MARKER", "EnvDefinition", "EnvError", "EnvStatus", "ToolEnv", "create_env",
           "env_definition", "env_root", "env_status", "find_env", "known_envs", "load_definitions", "override_var",
           "python_meets", "read_definition", "run_env_env", "unavailable_reason"]

MARKER = "edgecheck-env.json"
_TAIL = 20


@dataclass(frozen=True)
class ToolEnv:
    """A ready environment: run its `python` with `run_env_env(env)` as the environment."""

    name: str
    path: Path
    python: Path
    bin_dir: Path
    tool_version: str | None
    created: str | None


@dataclass(frozen=True)
class EnvStatus:
    state: Literal["ready", "missing", "stale", "broken"]
    reason: str
    env: ToolEnv | None
    path: Path


def env_root() -> Path:
    """$EDGECHECK_ENVS, else $XDG_DATA_HOME/edgecheck/envs, else ~/.local/share/edgecheck/envs."""
    if os.environ.get("EDGECHECK_ENVS"):
        return Path(os.environ["EDGECHECK_ENVS"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "edgecheck" / "envs"


def _bin_dir(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def _python(venv: Path) -> Path:
    return _bin_dir(venv) / ("python.exe" if os.name == "nt" else "python")


def _read_marker(venv: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((venv / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _tool_env(name: str, venv: Path, marker: dict[str, Any] | None) -> ToolEnv:
    marker = marker or {}
    return ToolEnv(name, venv, _python(venv), _bin_dir(venv), marker.get("tool_version"), marker.get("created"))


def _create_hint(definition: EnvDefinition) -> str:
    return f"run `edgecheck env create {definition.name}` ({definition.size})"


def _status_at(definition: EnvDefinition, venv: Path) -> EnvStatus:
    name, hint = definition.name, _create_hint(definition)
    if not venv.exists():
        return EnvStatus("missing", f"the {name} environment is not created: {hint}", None, venv)
    marker = _read_marker(venv)
    if marker is None:
        why = f"has no readable {MARKER}" if (venv / MARKER).exists() else f"has no {MARKER} (not made by " \
            "edgecheck, or interrupted)"
        return EnvStatus("broken", f"the {name} environment at {venv} {why}: {hint} to rebuild it, or set "
                         f"{override_var(name)}={venv} to use it as it is", None, venv)
    if not _python(venv).exists():
        return EnvStatus("broken", f"the {name} environment at {venv} has lost its interpreter (was the Python "
                         f"it was made from removed?): {hint} to rebuild it", None, venv)
    if marker.get("digest") != definition.digest() or marker.get("name") != name:
        return EnvStatus("stale", f"the {name} definition changed since its environment was created (it has "
                         f"{', '.join(marker.get('requirements') or []) or 'no requirements'}; the definition "
                         f"asks for {', '.join(definition.requirements) or 'none'}): {hint} to rebuild it",
                         None, venv)
    env = _tool_env(name, venv, marker)
    return EnvStatus("ready", f"{env.tool_version or name}, created {env.created}", env, venv)


def env_status(name: str) -> EnvStatus:
    """Whether NAME's environment is ready, and if not, why and what to run."""
    definition = env_definition(name)
    var = override_var(name)
    if os.environ.get(var):
        venv = Path(os.environ[var]).expanduser().absolute()
        if not _python(venv).exists():
            return EnvStatus("broken", f"{var}={venv} has no {_python(venv).relative_to(venv)}: fix or unset "
                             f"{var}, then {_create_hint(definition)}", None, venv)
        env = _tool_env(name, venv, _read_marker(venv))
        return EnvStatus("ready", f"the user's own environment ({var}={venv})", env, venv)
    return _status_at(definition, env_root() / name)


def find_env(name: str) -> ToolEnv | None:
    return env_status(name).env


def unavailable_reason(name: str) -> str | None:
    """None when NAME's environment is ready, else one line saying why and the command that fixes it;
    an unknown name or a broken definition file is a reason too (for skip messages)."""
    try:
        status = env_status(name)
    except EnvError as exc:
        return str(exc)
    return None if status.state == "ready" else status.reason


def run_env_env(tool_env: ToolEnv) -> dict[str, str]:
    """os.environ for a process in the tool's venv: its bin first on PATH, and nothing from edgecheck's
    own environment leaking in (user site-packages, PYTHONPATH, PYTHONHOME)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(filter(None, [str(tool_env.bin_dir), env.get("PATH", "")]))
    env["VIRTUAL_ENV"] = str(tool_env.path)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(cmd: list[str], step: str, name: str, env: dict[str, str], log: Callable[[str], None] | None,
         timeout: float | None = None, watch: Callable[[str], str | None] | None = None) -> str:
    """Runs one step, streaming its output through `log`; returns stdout, or raises with its last lines.
    `watch` reads each line for what the step is doing now (a progress update)."""
    tail: deque[str] = deque(maxlen=_TAIL)
    out: list[str] = []
    try:
        if log is None:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            out = done.stdout.splitlines()
            tail.extend((done.stdout + done.stderr).splitlines())
            rc = done.returncode
        else:
            with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  bufsize=1) as proc:
                for line in proc.stdout:  # type: ignore[union-attr]
                    line = line.rstrip("\n")
                    log(line)
                    doing = watch(line) if watch is not None else None
                    if doing:
                        progress.update(doing)
                    tail.append(line)
                    out.append(line)
                rc = proc.wait()
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvError(f"creating the {name} environment failed while {step}: {exc}", step=step) from None
    if rc != 0:
        raise EnvError(f"creating the {name} environment failed while {step} (exit status {rc}); nothing was "
                       f"left behind. The last lines of its output:", step=step,
                       output="\n".join("    " + line for line in tail))
    return "\n".join(out)


def _relocate(venv: Path, old: str, new: str) -> None:
    """venv and pip write the build folder's path into activate scripts and console-script shebangs;
    point them at where the venv will live before it moves there."""
    for path in [venv / "pyvenv.cfg", *_bin_dir(venv).iterdir()]:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
            continue
        data = path.read_bytes()
        if old.encode() in data:
            path.write_bytes(data.replace(old.encode(), new.encode()))


def _swap(built: Path, target: Path) -> None:
    """Moves the finished venv into place; an old one is moved aside first and deleted after."""
    old = target.with_name(f"{target.name}.old-{os.getpid()}")
    if target.exists():
        os.rename(target, old)
    try:
        os.rename(built, target)
    except OSError:
        if old.exists():
            os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def create_env(name: str, *, path: Path | None = None, force: bool = False, python: str | None = None,
               log: Callable[[str], None] = print) -> ToolEnv:
    """Creates NAME's environment (or returns it when it is ready and not stale, unless `force`).

    Built in `<path>.tmp-<pid>` and renamed into place with its marker written, so a failed or
    interrupted create never leaves a half environment that looks ready; a lock beside it makes
    concurrent creates (CI jobs, xdist workers) wait for each other instead of racing."""
    from filelock import FileLock, Timeout

    definition = env_definition(name)
    default = env_root() / name
    target = Path(path).expanduser().absolute() if path else default
    interpreter = sys.executable if not python else python if Path(python).exists() else shutil.which(python)
    if not interpreter:
        raise EnvError(f"no Python interpreter {python!r} found (give a path or a name on PATH)")
    version = ".".join(map(str, sys.version_info[:3]))
    if python:
        code = "import sys; print('.'.join(map(str, sys.version_info[:3])))"
        version = _run([interpreter, "-c", code], f"asking {interpreter} its version", name, dict(os.environ),
                       None).strip()
    if not re.fullmatch(r"\d+\.\d+\.\d+", version) or not python_meets(version, definition.python):
        raise EnvError(f"Python {version} ({interpreter}) does not meet the {name} environment's requirement "
                       f"{definition.python}: pass --python with an interpreter that does")
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.with_name(f"{target.name}.lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"waiting for another `edgecheck env create` of {target} to finish")
        lock.acquire()
    try:
        status = _status_at(definition, target)
        if status.state == "ready" and not force:
            log(f"the {name} environment is already there: {target} ({status.reason})")
            return status.env  # type: ignore[return-value]
        if target.exists() and any(target.iterdir()):  # never replace what is not a venv, nor a user's unasked
            if not (target / "pyvenv.cfg").exists():
                raise EnvError(f"{target} exists and is not a virtual environment: remove it or choose "
                               f"another --path")
            if target != default and _read_marker(target) is None and not force:
                raise EnvError(f"{target} was not made by `edgecheck env create`: pass --force to replace it")
        for suffix in ("tmp", "old"):  # left by an interrupted create (we hold the lock: no one is building)
            for leftover in target.parent.glob(f"{target.name}.{suffix}-*"):
                shutil.rmtree(leftover, ignore_errors=True)
        built = _build(definition, target, interpreter, version, log)
        _swap(built, target)
    finally:
        lock.release()
    env = _tool_env(name, target, _read_marker(target))
    log(f"created the {name} environment at {target}" + (f": {env.tool_version}" if env.tool_version else ""))
    if target != default:
        log(f"edgecheck looks for it at {default}; set {override_var(name)}={target} to use this one")
    elif os.environ.get(override_var(name)):
        log(f"note: {override_var(name)} is set, so edgecheck keeps using {os.environ[override_var(name)]}")
    return env


def _build(definition: EnvDefinition, target: Path, interpreter: str, version: str,
           log: Callable[[str], None]) -> Path:
    """Venv, pip install, check, marker, all in a temporary folder, deleted again on any failure."""
    name = definition.name
    built = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        log(f"creating the {name} environment in {built} with Python {version} ({interpreter})")
        calls = definition.pip_calls()
        venv_cmd = [interpreter, "-m", "venv", "--prompt", target.name, *([] if calls else ["--without-pip"]),
                    str(built)]
        with progress.step(f"{name} environment: creating the virtual environment"):
            _run(venv_cmd, "creating the virtual environment", name, dict(os.environ), log)
        env = run_env_env(_tool_env(name, built, None))
        for number, args in enumerate(calls, start=1):
            log(f"installing {' '.join(args)} ({definition.size})")
            call = f" (call {number} of {len(calls)})" if len(calls) > 1 else ""
            with progress.step(f"{name} environment: pip install{call}"):
                _run([str(_python(built)), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                      "--progress-bar", "off", *args], f"installing the requirements with pip{call}", name, env, log,
                     watch=PipActivity())
        log(f"checking it: {definition.check}")
        with progress.step(f"{name} environment: checking it"):
            out = _run([str(_python(built)), "-c", definition.check], "running the definition's check", name, env,
                       None, timeout=900)
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        _relocate(built, str(built), str(target))
        marker = {"name": name, "requirements": definition.requirements, "digest": definition.digest(),
                  "tool_version": lines[-1] if lines else None, "python": version, "created_with": interpreter,
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (built / f"{MARKER}.tmp").write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        os.replace(built / f"{MARKER}.tmp", built / MARKER)  # last: only a complete env has one
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return built
