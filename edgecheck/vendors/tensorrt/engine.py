"""On the board: find trtexec, read its TensorRT version, and build a .trtjob's engine once.

Standard library only, Python 3.8 source (imported by the worker on a Jetson). An engine is specific to
the GPU and the TensorRT version that built it, so it is built where it runs, and kept beside the job's
blob in the board's store under a key of the job's bytes (SHA-256), its build settings, the TensorRT
version and the GPU (the board model from /proc/device-tree/model, and the L4T release line of
/etc/nv_tegra_release, which fixes CUDA, cuDNN and the driver): a board upgraded to another JetPack
builds again, a second run of the same job does not. Two workers that want the same engine take a file
lock, so one builds and the other finds it built. The build log and the layer information (JSON, 8.2 on)
are kept beside the engine: a failed build raises with the log's [E] lines and the log's path.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from edgecheck.vendors.tensorrt.trtexec import BuildSettings, TrtVersion, build_command, supports_layer_info

JETPACK_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"  # where every JetPack puts it (not on PATH by default)
ENGINE_FILE, LOG_FILE, LAYERS_FILE, SETTINGS_FILE = "engine.plan", "build.log", "layers.json", "settings.json"

_versions: Dict[str, TrtVersion] = {}  # trtexec path (with its size and mtime) -> version
SESSION_ENV, STORE_ENV = "EDGECHECK_SESSION", "EDGECHECK_STORE"  # set by the worker from the session's board options
VERSIONS_FILE, FAILED_FILE = "trtexec-versions.json", "failed.json"


class EngineBuildError(RuntimeError):
    """trtexec could not build the engine (or could not be asked its version); the message says why and
    where the whole log is."""


@dataclass(frozen=True)
class EngineBuild:
    engine: Path
    layer_info: Optional[Path]
    build_log: Path
    version: TrtVersion
    cached: bool


def find_trtexec(configured: Optional[str]) -> Optional[str]:
    """The trtexec to use: the boards file's (`trtexec:`), else JetPack's own path, else one on PATH; None
    where there is none (a configured one that is missing is None too: the reason names it)."""
    if configured:
        found = shutil.which(configured) if os.sep not in configured else configured
        return found if found and os.path.isfile(found) and os.access(found, os.X_OK) else None
    if os.path.isfile(JETPACK_TRTEXEC) and os.access(JETPACK_TRTEXEC, os.X_OK):
        return JETPACK_TRTEXEC
    return shutil.which("trtexec")


def trtexec_version(trtexec: str, timeout_s: float = 60) -> TrtVersion:
    """The TensorRT version of `trtexec`, from the banner of `trtexec --help` ("[TensorRT v8201]"), or its
    "TensorRT version:" line; read once per binary (its path, size and mtime)."""
    stat = os.stat(trtexec)
    key = "%s %d %d" % (trtexec, stat.st_size, stat.st_mtime_ns)
    if key in _versions:
        return _versions[key]
    known = _read_versions().get(key)  # a fresh worker: the version an earlier one read, kept on the board
    if known:
        try:
            _versions[key] = TrtVersion.parse(known)
            return _versions[key]
        except ValueError:
            pass
    try:
        done = subprocess.run([trtexec, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineBuildError("cannot run %s --help to read its TensorRT version: %s" % (trtexec, exc))
    text = done.stdout.decode("utf-8", "replace")
    for line in text.splitlines():
        if "TensorRT v" in line or "TensorRT version" in line:
            try:
                version = TrtVersion.parse(line)
            except ValueError:
                continue
            _versions[key] = version
            _write_version(key, version)
            return version
    raise EngineBuildError("%s --help printed no TensorRT version (no \"[TensorRT vNNNN]\" banner); its first lines: %s"
                           % (trtexec, " | ".join(text.strip().splitlines()[:3])[:300]))


def versions_file() -> Path:
    """Where the board keeps the trtexec versions it read: its store (the boards file's `store:`), else ~/.cache."""
    return Path(os.path.expanduser(os.environ.get(STORE_ENV) or "~/.cache/edgecheck")) / VERSIONS_FILE


def _read_versions() -> Dict[str, str]:
    try:
        found = json.loads(versions_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _write_version(key: str, version: TrtVersion) -> None:
    """Kept for the next worker (best effort: a read-only home costs one `--help` per worker, never a failure);
    written whole to a temporary file and renamed, so a reader never sees half of it."""
    path = versions_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        found = _read_versions()
        found[key] = str(version)
        partial = path.with_name("%s.partial-%d" % (path.name, os.getpid()))
        partial.write_text(json.dumps(found, sort_keys=True), encoding="utf-8")
        os.replace(str(partial), str(path))
    except OSError:
        pass


def _earlier_failure(folder: Path, session: str) -> Optional[str]:
    """The message of a build of this engine that failed earlier in this session; None where none did (a failure of
    another session is forgotten: a new session tries again)."""
    try:
        found = json.loads((folder / FAILED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if session and isinstance(found, dict) and found.get("session") == session:
        return str(found.get("message") or "the build failed")
    return None


def gpu_identity(root: str = "/") -> str:
    """The board's model ("NVIDIA Jetson Nano Developer Kit"), which fixes its GPU; "unknown" where unreadable."""
    try:
        with open(os.path.join(root, "proc/device-tree/model"), "rb") as handle:
            return handle.read().replace(b"\x00", b"").decode("utf-8", "replace").strip() or "unknown"
    except OSError:
        return "unknown"


def board_release(root: str = "/") -> str:
    """The board's L4T release line (/etc/nv_tegra_release: JetPack's CUDA, cuDNN and driver come with it), "" where
    there is none. Part of the engine key: a JetPack upgrade that keeps the TensorRT version still rebuilds."""
    try:
        with open(os.path.join(root, "etc/nv_tegra_release"), "rb") as handle:
            return handle.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def engine_key(job_sha256: str, settings: BuildSettings, version: TrtVersion, gpu: str) -> str:
    """What an engine depends on: the job's bytes, the build settings, the TensorRT version and the GPU."""
    text = "\n".join([job_sha256, settings.to_json(), str(version), gpu])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def engine_folder(job: Path, key: str) -> Path:
    """Beside the job's blob: `<blob>.engines/<key>/` (the store's eviction takes it with the blob's neighbours)."""
    return job.with_name(job.name + ".engines") / key


def _error_lines(log: str) -> List[str]:
    return [line.strip() for line in log.splitlines() if "[E]" in line or "&&&& FAILED" in line]


def _run_build(argv: List[str], log_path: Path, timeout_s: float) -> int:
    """trtexec in its own process group, its output to the log; past the limit the whole group is killed."""
    with open(str(log_path), "wb") as log:
        log.write(("$ %s\n" % " ".join(argv)).encode("utf-8"))
        log.flush()
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass
            process.wait()
            raise EngineBuildError("trtexec did not finish building the engine within %g s (killed); its log: %s"
                                   % (timeout_s, log_path))


def ensure_engine(job: Path, settings: BuildSettings, trtexec: str, timeout_s: float, root: str = "/") -> EngineBuild:
    """The engine of `job` (a .trtjob: an ONNX file) for this board: built by trtexec the first time, under a
    lock, then found in its folder. A failed build raises EngineBuildError with the [E] lines and the log."""
    job = Path(job)
    version = trtexec_version(trtexec)
    release = board_release(root)
    gpu = gpu_identity(root) + (" | " + release if release else "")
    key = engine_key(file_sha256(job), settings, version, gpu)
    folder = engine_folder(job, key)
    folder.mkdir(parents=True, exist_ok=True)
    engine, log_path, layers = folder / ENGINE_FILE, folder / LOG_FILE, folder / LAYERS_FILE
    session = os.environ.get(SESSION_ENV, "")
    with open(str(folder / ".lock"), "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # a second worker waits here, then finds the engine built
        if engine.is_file() and engine.stat().st_size > 0:
            return EngineBuild(engine, layers if layers.is_file() else None, log_path, version, True)
        failed = _earlier_failure(folder, session)
        if failed is not None:  # this session's items of this job fail at once, with the first failure's words
            raise EngineBuildError("%s (this build failed earlier in this session and is not tried again until the "
                                   "next one)" % failed)
        try:
            return _build(job, folder, settings, trtexec, version, timeout_s)
        except EngineBuildError as exc:
            if not session:  # no session to remember it for (a worker started outside one): tried again next time
                raise
            try:
                (folder / FAILED_FILE).write_text(json.dumps({"session": session, "message": str(exc)}),
                                                  encoding="utf-8")
            except OSError:
                pass
            raise


def _build(job: Path, folder: Path, settings: BuildSettings, trtexec: str, version: TrtVersion,
           timeout_s: float) -> EngineBuild:
    """One trtexec build into `folder` (its lock held): the engine and layer info renamed in place once whole."""
    engine, log_path, layers = folder / ENGINE_FILE, folder / LOG_FILE, folder / LAYERS_FILE
    # trtexec reads the model by its suffix: the job is an ONNX file, so it gets an .onnx name
    onnx = folder / "model.onnx"
    if onnx.exists():
        onnx.unlink()
    try:
        os.link(str(job), str(onnx))
    except OSError:
        shutil.copyfile(str(job), str(onnx))
    partial = folder / ("engine.partial-%d" % os.getpid())
    partial_layers = folder / ("layers.partial-%d" % os.getpid())  # renamed with the engine: never a stale one
    if layers.exists():
        layers.unlink()
    want_layers = supports_layer_info(version)
    argv = build_command(trtexec, version, settings, str(onnx), str(partial),
                         str(partial_layers) if want_layers else None)
    started = time.monotonic()
    try:
        code = _run_build(argv, log_path, timeout_s)
        log = log_path.read_text(encoding="utf-8", errors="replace")
        if code != 0 and want_layers and "Unknown option: --exportLayerInfo" in log:
            # 8.2.x builds whose trtexec lacks it (RESEARCH20 1.4: unverified either way): build without
            shutil.move(str(log_path), str(folder / "build-with-layer-info.log"))
            argv = build_command(trtexec, version, settings, str(onnx), str(partial), None)
            code = _run_build(argv, log_path, max(timeout_s - (time.monotonic() - started), 1.0))
            log = log_path.read_text(encoding="utf-8", errors="replace")
        if code != 0 or not partial.is_file() or partial.stat().st_size == 0:
            errors = _error_lines(log) or log.strip().splitlines()[-5:]
            raise EngineBuildError("trtexec (TensorRT %s) could not build the engine (exit status %d): %s; the "
                                   "whole log: %s" % (version, code, " | ".join(errors)[-2000:], log_path))
        if partial_layers.is_file():
            os.replace(str(partial_layers), str(layers))
        os.replace(str(partial), str(engine))
        (folder / SETTINGS_FILE).write_text(settings.to_json(), encoding="utf-8")
        if (folder / FAILED_FILE).exists():
            (folder / FAILED_FILE).unlink()
    finally:
        for leftover in (partial, partial_layers, onnx):
            if leftover.exists():
                leftover.unlink()
    return EngineBuild(engine, layers if layers.is_file() else None, log_path, version, False)
