from __future__ import annotations

# What `edgecheck boards` asks of a board's tools: its trtexec (the boards file's `trtexec:`, or JetPack's own on a
# Jetson) and its TensorRT version, and one reading of its `power_command:`. Run ON THE BOARD inside the agent's
# script (edgecheck.boards.store.agent_script puts this text between probe.py's and agent.py's): standard library
# only, Python 3.8, no imports of edgecheck. The same words as a run would meet: a trtexec that is missing or
# prints no version, a meter that fails or prints no watts, each said with the board's own output.

import os
import re
import shutil
import subprocess
from typing import Any, Dict, Optional

JETPACK_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"  # where every JetPack puts it (not on PATH by default)
TOOL_TIMEOUT_S = 60.0
METER_TIMEOUT_S = 10.0


def tensorrt_version(text: str) -> Optional[str]:
    """"8.2.1" from trtexec's banner ("[TensorRT v8201]", "[TensorRT v100300]") or a "TensorRT version: 8.2.1" line."""
    found = re.search(r"TensorRT version:\s*(\d+)\.(\d+)(?:\.(\d+))?", text)
    if found:
        return "%d.%d.%d" % (int(found.group(1)), int(found.group(2)), int(found.group(3) or 0))
    found = re.search(r"TensorRT v(\d{4,})", text)
    if not found:
        return None
    digits = found.group(1)
    if len(digits) >= 6:  # 10.x on: MMmmpp
        return "%d.%d.%d" % (int(digits[:-4]), int(digits[-4:-2]), int(digits[-2:]))
    return "%d.%d.%d" % (int(digits[0]), int(digits[1]), int(digits[2:]))


def trtexec_check(configured: str, jetson: bool) -> Dict[str, Any]:
    """{} where nothing is to be checked (no `trtexec:`, not a Jetson); else the path, and the TensorRT version or
    the error. "required": a configured trtexec, or one found that fails, makes the board unusable; a Jetson without
    one at JetPack's path or on PATH is said, not refused (its other runtimes may run)."""
    if not configured and not jetson:
        return {}
    if configured:
        path = configured if os.sep in configured else shutil.which(configured)
        if not path or not os.path.isfile(path):
            return {"path": configured, "required": True,
                    "error": "no trtexec at %s (the boards file's trtexec:)" % configured}
    else:
        path = JETPACK_TRTEXEC if os.path.isfile(JETPACK_TRTEXEC) else shutil.which("trtexec")
        if not path:
            return {"path": None, "required": False,
                    "error": "no trtexec at %s or on PATH: TensorRT items cannot run here (install JetPack's "
                             "TensorRT samples, or name it with trtexec: in the boards file)" % JETPACK_TRTEXEC}
    if not os.access(path, os.X_OK):
        return {"path": path, "required": True, "error": "%s is not executable" % path}
    try:
        done = subprocess.run([path, "--help"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"path": path, "required": True, "error": "%s --help gave no answer within %g s" % (path, TOOL_TIMEOUT_S)}
    except OSError as exc:
        return {"path": path, "required": True, "error": "cannot run %s --help: %s" % (path, exc)}
    text = done.stdout.decode("utf-8", "replace")
    version = tensorrt_version(text)
    if version is None:
        first = " | ".join(text.strip().splitlines()[:3])[:300]
        return {"path": path, "required": True,
                "error": "%s --help printed no TensorRT version (exit status %d): %s" % (path, done.returncode,
                                                                                         first or "nothing")}
    return {"path": path, "version": version}


def watts(text: str) -> Optional[float]:
    """The last non-empty line as watts: `4.2`, `4.2 W` or `4200 mW` (as the worker's meter reader takes it)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    found = re.fullmatch(r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(mW|W|w)?", lines[-1])
    if not found:
        return None
    value = float(found.group(1))
    return value / 1000.0 if found.group(2) == "mW" else value


def meter_check(command: str) -> Dict[str, Any]:
    """One reading of the boards file's `power_command:` ({} where none is set)."""
    if not command:
        return {}
    try:
        done = subprocess.run(["sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=METER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"command": command, "error": "power_command %r did not finish within %g s" % (command, METER_TIMEOUT_S)}
    except OSError as exc:
        return {"command": command, "error": "power_command %r failed: %s" % (command, exc)}
    out = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        said = (done.stderr.decode("utf-8", "replace") or out).strip()[-200:]
        return {"command": command, "error": "power_command %r exited with status %d: %s" % (command, done.returncode,
                                                                                            said)}
    found = watts(out)
    if found is None or found <= 0:
        shown = (out.strip().splitlines() or [""])[-1][:80]
        return {"command": command, "error": "power_command %r printed %r, not a power in watts (such as 4.2, 4.2 W "
                                             "or 4200 mW)" % (command, shown)}
    return {"command": command, "watts": found}


def tools_facts(configured_trtexec: str, power_command: str, jetson: str) -> Dict[str, Any]:
    """The agent's `tools` operation: {"trtexec": ..., "power": ...}, each {} where nothing was to be checked."""
    unset = ("", "-")  # "-": nothing set (an empty argument may not survive the remote shell)
    return {"trtexec": trtexec_check("" if configured_trtexec in unset else configured_trtexec, jetson == "1"),
            "power": meter_check("" if power_command in unset else power_command)}
