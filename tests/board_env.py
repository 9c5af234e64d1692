"""A board's Python for the SSH tests: a virtual environment with only the board's runtimes.

A real board has numpy and its vendor's runtime, never edgecheck, pydantic, onnx or pytest. The tests
that run edgecheck's worker on a "board" (an sshd on 127.0.0.1) give it such a Python, so that a module
the worker side imports by mistake fails there as it would on the board:

- "full": numpy, onnxruntime and ai-edge-litert at exactly the session's versions (their own
  dependencies pinned to the session's versions too, where pip needs them);
- "numpy": numpy alone, for a board without the runtime.

Each is created once under ~/.cache/edgecheck-tests/ (a folder named by a hash of the versions and the
Python version), under a file lock so that parallel xdist workers never race, built in a temporary
folder and renamed into place only when complete and checked: a half-made environment is never reused.

Run as a script (`.ci/run` does, before the tests) it creates both: `.venv/bin/python tests/board_env.py`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

# Read when imported (conftest imports this at collection), before pytester gives a test another HOME.
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgecheck-tests"

VARIANTS: dict[str, tuple[str, ...]] = {
    "full": ("numpy", "onnxruntime", "ai-edge-litert"),
    "numpy": ("numpy",),
}
# What each variant must import, and what no board has: the check made before an environment is kept.
IMPORTS = {"full": ("numpy", "onnxruntime", "ai_edge_litert.interpreter"), "numpy": ("numpy",)}
FOREIGN = ("edgecheck", "pydantic", "onnx", "pytest", "yaml")
PIP_TIMEOUT_S = 1800  # a cold pip cache downloads ~100 MB; a busy CI machine installs slowly
LOCK_TIMEOUT_S = 3600


class BoardEnvUnavailable(RuntimeError):
    """The environment cannot be made here (pip could not install: no network, no wheel)."""


def session_versions(variant: str) -> dict[str, str]:
    """The session's installed version of each package of the variant."""
    versions = {}
    for name in VARIANTS[variant]:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise BoardEnvUnavailable(f"{name} is not installed in this session, so a board environment "
                                      f"with the same version cannot be made") from exc
    return versions


def env_path(variant: str = "full") -> Path:
    """The variant's folder: named by a hash of its packages' versions and the Python version."""
    identity = {"variant": variant, "packages": session_versions(variant),
                "python": ".".join(map(str, sys.version_info[:3])), "implementation": sys.implementation.name}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    prefix = "board-env" if variant == "full" else f"board-env-{variant}"
    return CACHE_ROOT / f"{prefix}-{digest}"


def env_python(env: Path) -> Path:
    return env / "bin" / "python"


def board_python(variant: str = "full") -> Path:
    """The python of the variant's environment, created on first use (then reused)."""
    env = env_path(variant)
    if _complete(env):  # made by an earlier run: renamed into place only after its check
        return env_python(env)
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with FileLock(str(env) + ".lock", timeout=LOCK_TIMEOUT_S):
        if not _complete(env):  # another worker may have made it while this one waited
            _create(variant, env)
    return env_python(env)


def _complete(env: Path) -> bool:
    """Renamed into place after its check, and its python still there (exists() follows the venv's link
    to the base interpreter: a Python removed since leaves it dangling, and the environment is remade)."""
    return (env / "board-env.json").is_file() and env_python(env).exists()


def clean_environ() -> dict[str, str]:
    """The environment a board's python runs with here: none of the session's Python variables."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")}


def _create(variant: str, env: Path) -> None:
    for stale in CACHE_ROOT.glob(f".{env.name}.tmp-*"):  # left by a creation that died: the lock is ours
        shutil.rmtree(stale, ignore_errors=True)
    if env.exists():  # a folder without its marker: never reused
        shutil.rmtree(env)
    tmp = CACHE_ROOT / f".{env.name}.tmp-{os.getpid()}"
    try:
        made = subprocess.run([sys.executable, "-m", "venv", str(tmp)], capture_output=True, text=True,
                              env=clean_environ(), timeout=600)
        if made.returncode != 0:  # Debian's python without python3-venv (no ensurepip), for one
            raise BoardEnvUnavailable(f"`{sys.executable} -m venv` failed: {made.stderr.strip()[-1000:]}")
        versions = session_versions(variant)
        constraints = tmp / "constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in _session_pins().items()))
        command = [str(env_python(tmp)), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                   "-c", str(constraints), *(f"{name}=={version}" for name, version in versions.items())]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, env=clean_environ(),
                           timeout=PIP_TIMEOUT_S)
        except subprocess.CalledProcessError as exc:
            tail = "\n".join((exc.stderr or exc.stdout or "").strip().splitlines()[-8:])
            raise BoardEnvUnavailable(f"pip could not install the board environment ({variant}): {tail}") from exc
        except subprocess.TimeoutExpired as exc:
            raise BoardEnvUnavailable(f"pip did not install the board environment ({variant}) within "
                                      f"{PIP_TIMEOUT_S} s") from exc
        _check(variant, env_python(tmp))
        (tmp / "board-env.json").write_text(json.dumps(
            {"variant": variant, "packages": versions, "python": sys.version}, indent=1) + "\n")
        tmp.rename(env)
        _check(variant, env_python(env))  # a venv's python finds its prefix from pyvenv.cfg: it moves
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _session_pins() -> dict[str, str]:
    """Every distribution of the session by version, but edgecheck itself: the board's dependencies
    (protobuf, flatbuffers, ...) are then the ones the session's runtimes were tested with."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "edgecheck" and dist.version:
            pins[name] = dist.version
    return pins


def _check(variant: str, python: Path) -> None:
    """The variant imports what it must and nothing a board lacks; raises RuntimeError when it does not."""
    script = (
        "import importlib, importlib.util, sys\n"
        f"for name in {IMPORTS[variant]!r}: importlib.import_module(name)\n"
        f"found = [n for n in {FOREIGN!r} if importlib.util.find_spec(n) is not None]\n"
        "if found: sys.exit('importable on a board: ' + ', '.join(found))\n"
    )
    result = subprocess.run([str(python), "-c", script], capture_output=True, text=True,
                            env=clean_environ(), cwd="/", timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"the board environment ({variant}, {python}) is not as it must be: "
                           f"{result.stderr.strip()[-2000:]}")


# The oldest board Python edgecheck's worker supports (Ubuntu 20.04, JetPack 5): the last numpy and
# ONNX Runtime releases for it. Made only where a Python 3.8 is installed (pyenv's, here); else its test skips.
OLDEST = "3.8"
OLDEST_PACKAGES = ("numpy>=1.24,<1.25", "onnxruntime>=1.19,<1.20")


def oldest_interpreter() -> Path | None:
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    for candidate in sorted(pyenv.glob(f"{OLDEST}.*"), reverse=True):
        if (candidate / "bin" / f"python{OLDEST}").exists():
            return candidate / "bin" / f"python{OLDEST}"
    found = shutil.which(f"python{OLDEST}")  # a pyenv shim is no interpreter: it may name none
    return Path(found) if found and "shims" not in Path(found).parts else None


def oldest_board_python() -> Path:
    """A board on Python 3.8 with numpy and onnxruntime (their last releases for it), made once."""
    interpreter = oldest_interpreter()
    if interpreter is None:
        raise BoardEnvUnavailable(f"no Python {OLDEST} on this machine (PATH or pyenv): the oldest-board test needs one")
    env = CACHE_ROOT / ("board-env-py38-" + hashlib.sha256(
        json.dumps([str(interpreter), OLDEST_PACKAGES]).encode()).hexdigest()[:16])
    if _complete(env):
        return env_python(env)
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with FileLock(str(env) + ".lock", timeout=LOCK_TIMEOUT_S):
        if _complete(env):
            return env_python(env)
        tmp = CACHE_ROOT / f".{env.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            for command in ([str(interpreter), "-m", "venv", str(tmp)],
                            [str(env_python(tmp)), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                             *OLDEST_PACKAGES]):
                done = subprocess.run(command, capture_output=True, text=True, env=clean_environ(), timeout=PIP_TIMEOUT_S)
                if done.returncode != 0:
                    raise BoardEnvUnavailable(f"cannot make the Python {OLDEST} board: {' '.join(command[:4])}: "
                                              f"{(done.stderr or done.stdout).strip()[-1000:]}")
            (tmp / "board-env.json").write_text(json.dumps({"variant": "py38", "packages": OLDEST_PACKAGES}) + "\n")
            tmp.rename(env)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return env_python(env)


def main() -> int:
    status = 0
    for variant in VARIANTS:
        started = time.monotonic()
        try:
            python = board_python(variant)
        except BoardEnvUnavailable as exc:
            print(f"board environment {variant!r} not made (its tests will skip): {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"board environment {variant!r}: {python} ({time.monotonic() - started:.1f} s)")
    try:
        print(f"board environment 'py38': {oldest_board_python()}")
    except BoardEnvUnavailable as exc:  # optional: its test skips
        print(f"board environment 'py38' not made (its test will skip): {exc}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
