from __future__ import annotations

# What a board says about itself: run ON THE BOARD, under the board's own Python (3.8 or later),
# standard library only (numpy may be missing there: the facts say so).
#
# It travels as source text and runs with `python -c`, alone (`facts <store>` / `thermal` print one
# JSON object) or after another script's text. So: no relative imports, nothing of edgecheck, and
# its body is valid Python 3.8 even without the first line's future import (annotations use the
# typing module's forms), so a script that concatenates it may drop that line and put one future
# import at the top of the whole. A script that includes it as a library cuts it at its last block
# (`if __name__ == "__main__":`) or sets `EDGECHECK_PROBE_LIBRARY = True` before this text: the command
# line then does not run; `main` is bound here only where the including script has none of its own
# (`probe_main` always is).
#
# Every function takes `root`, the file system root its /proc, /sys and /etc are read under
# (tests point it at a tree of real sysfs-shaped files). A file that is absent or unreadable is an
# absent fact, never an error: a container, an old kernel or a board without a sensor says less.

import glob
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional

# the board runtimes' distributions (their versions) and modules (importable, found without importing)
RUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime",
                         "rknn-toolkit-lite2", "tensorrt")
RUNTIME_MODULES = ("onnxruntime", "ai_edge_litert", "tflite_runtime", "rknnlite", "tensorrt")
# where Rockchip's NPU driver says its version (debugfs on mainline-style kernels, procfs on vendor ones)
RKNPU_VERSION_FILES = ("/sys/kernel/debug/rknpu/version", "/proc/debug/rknpu/version")
# beside PATH: a non-login SSH shell's PATH often lacks sbin (nvpmodel) and Raspbian's old /opt/vc/bin
TOOL_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/opt/vc/bin")
NVPMODEL_TIMEOUT_S = 5.0
VCGENCMD_TIMEOUT_S = 2.0
# Raspberry Pi firmware's `vcgencmd get_throttled` bits
VCGENCMD_BITS = {
    0: "under-voltage detected",
    1: "arm frequency capped",
    2: "currently throttled",
    3: "soft temperature limit active",
    16: "under-voltage has occurred",
    17: "arm frequency capping has occurred",
    18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}
# the bits that say the clock is held down now; under-voltage is among them: the firmware caps the
# clock while the supply sags
VCGENCMD_NOW = (0, 1, 2, 3)
VCGENCMD_OCCURRED = (16, 17, 18, 19)
# Arm's CPU part numbers (implementer 0x41) as /proc/cpuinfo gives them on aarch64, which names no model
ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE", "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2", "0xd49": "Neoverse-N2", "0xd4b": "Cortex-A78C", "0xd4d": "Cortex-A715",
    "0xd4e": "Cortex-X3", "0xd4f": "Neoverse-V2",
}


# --- reading files ------------------------------------------------------------------------------

def _path(root: str, path: str) -> str:
    return os.path.join(root or "/", path.lstrip("/"))


def _read(path: str, limit: int = 1 << 16) -> Optional[str]:
    """A small text file's content, stripped (a device-tree string's NULs too); None where unreadable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit)
    except (OSError, ValueError):
        return None
    return data.decode("utf-8", "replace").replace("\x00", "").strip()


def _read_int(path: str) -> Optional[int]:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _number(path: str) -> int:
    """The trailing number of a path (thermal_zone12 → 12), for a natural order."""
    found = re.search(r"(\d+)$", os.path.basename(path.rstrip("/")))
    return int(found.group(1)) if found else -1


def _natural(paths: List[str]) -> List[str]:
    return sorted(paths, key=lambda p: (_number(p), p))


def _which(name: str) -> Optional[str]:
    # no empty entry: shutil.which would read it as the current folder
    search = os.pathsep.join([d for d in os.environ.get("PATH", "").split(os.pathsep) if d] + list(TOOL_DIRS))
    return shutil.which(name, path=search)


def _run_tool(argv: List[str], timeout_s: float) -> Dict[str, Any]:
    """A tool's output, or why there is none."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout_s, universal_newlines=True)
    except subprocess.TimeoutExpired:
        return {"error": "%s gave no answer within %g s" % (os.path.basename(argv[0]), timeout_s)}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": "%s: %s" % (type(exc).__name__, exc)}
    if done.returncode != 0:
        said = (done.stderr or done.stdout or "").strip().splitlines()
        return {"error": "%s exited with status %d%s" % (os.path.basename(argv[0]), done.returncode,
                                                         (": " + said[-1]) if said else "")}
    return {"output": done.stdout}


def _guarded(errors: Dict[str, str], name: str, read: Callable[[], Any]) -> Any:
    """One section of the facts; an unforeseen failure is named in `errors`, the rest still said."""
    try:
        return read()
    except Exception as exc:
        errors[name] = "%s: %s" % (type(exc).__name__, exc)
        return None


# --- facts --------------------------------------------------------------------------------------

def _cpuinfo(root: str) -> List[str]:
    text = _read(_path(root, "/proc/cpuinfo"), 1 << 22)  # ~1.5 KiB a CPU: a many-core server's runs long
    return text.splitlines() if text else []


def _field(line: str) -> str:
    return line.split(":", 1)[1].strip() if ":" in line else ""


def cpu_signature(root: str = "/") -> str:
    """sha256[:16] of /proc/cpuinfo's first flags (x86) or Features (Arm) line, as the host's
    machine_signature hashes it (edgecheck/execute.py)."""
    flags = ""
    for line in _cpuinfo(root):
        if line.startswith(("flags", "Features")):
            flags = line
            break
    return hashlib.sha256(flags.encode()).hexdigest()[:16]


def cpu_facts(root: str = "/") -> Dict[str, Any]:
    """The CPU: its model (x86's 'model name'; Arm's 'Hardware' / 'Model' lines, or the device tree's
    model), its cores by Arm part, its flags' signature."""
    lines = _cpuinfo(root)
    found = {}  # type: Dict[str, str]
    parts = {}  # type: Dict[str, int]
    implementer = "0x41"
    for line in lines:
        key = line.split(":", 1)[0].strip()
        if key in ("model name", "Hardware", "Model") and key not in found:
            found[key] = _field(line)
        elif key == "CPU implementer":  # comes before its CPU part
            implementer = _field(line).lower()
        elif key == "CPU part":
            part = _field(line).lower()
            name = ARM_PARTS.get(part) if implementer == "0x41" else None
            name = name or "implementer %s part %s" % (implementer, part)
            parts[name] = parts.get(name, 0) + 1
    board = _read(_path(root, "/proc/device-tree/model"))
    facts = {"signature": cpu_signature(root), "count": os.cpu_count()}  # type: Dict[str, Any]
    model = found.get("model name") or found.get("Model") or found.get("Hardware") or board
    if model:
        facts["model"] = model
    if board:
        facts["board"] = board
    if found.get("Hardware"):
        facts["hardware"] = found["Hardware"]
    if parts:
        facts["cores"] = parts
    # the host's machine_signature, word for word, for a cache key or a lock's name made on the board
    name = found.get("model name") or platform.processor() or ""
    facts["machine_signature"] = "%s %s" % (("%s %s" % (platform.machine(), name)).strip(), platform.system()) \
        + " " + facts["signature"]
    return facts


def os_release(root: str = "/") -> Optional[str]:
    """/etc/os-release's PRETTY_NAME (or NAME VERSION)."""
    for name in ("/etc/os-release", "/usr/lib/os-release"):
        text = _read(_path(root, name))
        if text is None:
            continue
        values = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                    value = value[1:-1]
                values[key.strip()] = value
        pretty = values.get("PRETTY_NAME") or " ".join(filter(None, (values.get("NAME"), values.get("VERSION"))))
        if pretty:
            return pretty
    return None


def numpy_facts() -> Dict[str, Any]:
    """numpy's version, or why it cannot be imported (a board without it cannot run a worker)."""
    try:
        import numpy  # noqa: F401
    except Exception as exc:
        return {"error": "%s: %s" % (type(exc).__name__, exc)}
    return {"version": str(getattr(numpy, "__version__", "unknown"))}


def runtime_facts() -> Dict[str, Any]:
    """The board runtimes' distributions (version or None) and whether their modules can be imported
    (found on the path, not imported: importing TensorRT or RKNNLite takes seconds)."""
    try:
        from importlib import metadata
    except ImportError:  # Python 3.7: no metadata module
        metadata = None  # type: ignore[assignment]
    distributions = {}  # type: Dict[str, Optional[str]]
    for name in RUNTIME_DISTRIBUTIONS:
        version = None
        if metadata is not None:
            try:
                version = metadata.version(name)
            except Exception:  # PackageNotFoundError; a broken dist-info
                version = None
        distributions[name] = version
    modules = {}  # type: Dict[str, bool]
    for name in RUNTIME_MODULES:
        try:
            modules[name] = importlib.util.find_spec(name) is not None
        except Exception:  # a broken package on the path
            modules[name] = False
    return {"distributions": distributions, "modules": modules}


def npu_driver(root: str = "/") -> Optional[str]:
    """Rockchip's NPU driver version ("RKNPU driver: v0.9.6"), where readable (debugfs needs root)."""
    for name in RKNPU_VERSION_FILES:
        text = _read(_path(root, name))
        if text:
            return text
    return None


def _policy_dirs(root: str) -> List[str]:
    """Each cpufreq policy's folder; on kernels without policy folders, each CPU's cpufreq folder."""
    policies = _natural(glob.glob(_path(root, "/sys/devices/system/cpu/cpufreq/policy[0-9]*")))
    if policies:
        return policies
    return _natural([os.path.dirname(p) for p in glob.glob(_path(root, "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/"))])


def _policy_name(folder: str) -> str:
    folder = folder.rstrip("/")
    base = os.path.basename(folder)
    return os.path.basename(os.path.dirname(folder)) if base == "cpufreq" else base


def governors(root: str = "/") -> Dict[str, str]:
    """Each cpufreq policy's governor ('performance' times steadier than 'ondemand' or 'schedutil')."""
    found = {}
    for folder in _policy_dirs(root):
        governor = _read(os.path.join(folder, "scaling_governor"))
        if governor:
            found[_policy_name(folder)] = governor
    return found


def disk_facts(store: str) -> Dict[str, Any]:
    """Free and total bytes of the file system that holds `store` (its nearest existing folder)."""
    path = os.path.abspath(os.path.expanduser(store))
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    stat = os.statvfs(path)
    return {"store": store, "path": path, "free_bytes": stat.f_bavail * stat.f_frsize,
            "total_bytes": stat.f_blocks * stat.f_frsize}


def memory_facts(root: str = "/") -> Dict[str, int]:
    """MemTotal and MemAvailable from /proc/meminfo, in bytes."""
    text = _read(_path(root, "/proc/meminfo")) or ""
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        words = value.split()
        if key in ("MemTotal", "MemAvailable") and words:
            try:
                number = int(words[0]) * (1024 if words[1:2] == ["kB"] else 1)
            except ValueError:
                continue
            found["total_bytes" if key == "MemTotal" else "available_bytes"] = number
    return found


def jetson_facts(root: str = "/") -> Dict[str, Any]:
    """NVIDIA Jetson: the L4T release (/etc/nv_tegra_release) and the nvpmodel power mode; empty elsewhere."""
    found = {}  # type: Dict[str, Any]
    text = _read(_path(root, "/etc/nv_tegra_release"))
    if text:
        line = text.splitlines()[0]
        found["nv_tegra_release"] = line.lstrip("# ").strip()
        major = re.search(r"R(\d+)\s*\(release\)", line)
        revision = re.search(r"REVISION:\s*([\d.]+)", line)
        if major:
            found["l4t"] = major.group(1) + ("." + revision.group(1) if revision else "")
    tool = _which("nvpmodel")
    if tool:
        answer = _run_tool([tool, "-q"], NVPMODEL_TIMEOUT_S)
        if "output" in answer:
            mode = {"output": answer["output"].strip()}  # type: Dict[str, Any]
            named = re.search(r"NV Power Mode:\s*(.+)", answer["output"])
            if named:
                mode["name"] = named.group(1).strip()
            numbers = [line.strip() for line in answer["output"].splitlines() if line.strip().isdigit()]
            if numbers:
                mode["id"] = int(numbers[0])
            found["nvpmodel"] = mode
        else:
            found["nvpmodel"] = answer
    return found


def board_facts(store: str, root: str = "/") -> Dict[str, Any]:
    """Everything a board says about itself, for `edgecheck boards` and for the label of every figure
    measured there. Never raises: a section that fails for an unforeseen reason is named under "errors"."""
    errors = {}  # type: Dict[str, str]
    uname = platform.uname()
    facts = {
        "hostname": socket.gethostname() or uname.node,
        "kernel": uname.release,
        "machine": uname.machine,
        "system": uname.system,
        "python": {"executable": sys.executable, "version": platform.python_version(),
                   "implementation": platform.python_implementation()},
    }  # type: Dict[str, Any]
    sections = [
        ("os", lambda: os_release(root)),
        ("cpu", lambda: cpu_facts(root)),
        ("numpy", numpy_facts),
        ("runtimes", runtime_facts),
        ("npu_driver", lambda: npu_driver(root)),
        ("governors", lambda: governors(root)),
        ("disk", lambda: disk_facts(store)),
        ("memory", lambda: memory_facts(root)),
        ("jetson", lambda: jetson_facts(root)),
        ("thermal", lambda: thermal_summary(thermal_snapshot(root))),
    ]  # type: List[Any]
    for name, read in sections:
        value = _guarded(errors, name, read)
        if value is not None and value != {}:
            facts[name] = value
    if errors:
        facts["errors"] = errors
    return facts


# --- thermal ------------------------------------------------------------------------------------

def _zone(folder: str) -> Dict[str, Any]:
    millidegrees = _read_int(os.path.join(folder, "temp"))
    trips = []
    for path in glob.glob(os.path.join(folder, "trip_point_*_temp")):
        found = re.match(r"trip_point_(\d+)_temp$", os.path.basename(path))
        if not found:
            continue
        index = int(found.group(1))
        temp = _read_int(path)
        kind = _read(os.path.join(folder, "trip_point_%d_type" % index))
        if temp is None:
            continue
        trips.append({"index": index, "type": kind or "unknown", "temp_c": temp / 1000.0})
    trips.sort(key=lambda trip: trip["index"])
    return {"type": _read(os.path.join(folder, "type")) or os.path.basename(folder),
            "temp_c": millidegrees / 1000.0 if millidegrees is not None else None, "trips": trips}


def _vcgencmd() -> Optional[Dict[str, Any]]:
    tool = _which("vcgencmd")
    if not tool:
        return None
    answer = _run_tool([tool, "get_throttled"], VCGENCMD_TIMEOUT_S)
    if "output" not in answer:
        return answer
    found = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)", answer["output"])
    if not found:
        return {"error": "vcgencmd get_throttled said %r" % answer["output"].strip()[:200]}
    value = int(found.group(1), 0)
    return {"throttled": found.group(1), "value": value,
            "bits": {label: bool(value >> bit & 1) for bit, label in sorted(VCGENCMD_BITS.items())}}


def thermal_snapshot(root: str = "/") -> Dict[str, Any]:
    """Temperatures with their trip points, CPU frequency limits, throttle counters and (Raspberry Pi)
    the firmware's throttle bits, now: one before a timing and one after say whether it was throttled."""
    zones = {}
    for folder in _natural(glob.glob(_path(root, "/sys/class/thermal/thermal_zone[0-9]*"))):
        zones[os.path.basename(folder)] = _zone(folder)
    cpufreq = {}
    for folder in _policy_dirs(root):
        cpufreq[_policy_name(folder)] = {
            "cpus": _read(os.path.join(folder, "related_cpus")) or _read(os.path.join(folder, "affected_cpus")),
            "cur_khz": _read_int(os.path.join(folder, "scaling_cur_freq")),
            "max_khz": _read_int(os.path.join(folder, "scaling_max_freq")),
            "cpuinfo_max_khz": _read_int(os.path.join(folder, "cpuinfo_max_freq")),
        }
    counters = {}
    pattern = _path(root, "/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle/*_throttle_count")
    for path in sorted(glob.glob(pattern), key=lambda p: (_number(os.path.dirname(os.path.dirname(p))), p)):
        count = _read_int(path)
        if count is not None:
            cpu = os.path.basename(os.path.dirname(os.path.dirname(path)))
            counters["%s/%s" % (cpu, os.path.basename(path))] = count
    snapshot = {"monotonic": time.monotonic(), "time": time.time(), "zones": zones, "cpufreq": cpufreq,
                "throttle_counts": counters}  # type: Dict[str, Any]
    vcgencmd = _vcgencmd()
    if vcgencmd is not None:
        snapshot["vcgencmd"] = vcgencmd
    return snapshot


def _limit(zone: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The trip point a zone throttles at: its lowest passive one, else its lowest hot one."""
    for kind in ("passive", "hot"):
        trips = [trip for trip in zone.get("trips") or () if trip.get("type") == kind
                 and isinstance(trip.get("temp_c"), (int, float)) and trip["temp_c"] > 0]
        if trips:
            return min(trips, key=lambda trip: trip["temp_c"])
    return None


def _c(value: float) -> str:
    return "%.1f °C" % value


def _mhz(khz: int) -> str:
    return "%g MHz" % round(khz / 1000.0, 1)


def _zone_reasons(before: Dict[str, Any], after: Dict[str, Any]) -> List[str]:
    reasons = []
    old_zones, new_zones = before.get("zones") or {}, after.get("zones") or {}
    for name in _natural(list(set(old_zones) | set(new_zones))):
        old, new = old_zones.get(name) or {}, new_zones.get(name) or {}
        limit = _limit(new) or _limit(old)
        if limit is None:
            continue
        over = []
        for when, zone in (("before", old), ("after", new)):
            temp = zone.get("temp_c")
            if isinstance(temp, (int, float)) and temp >= limit["temp_c"]:
                over.append("%s %s the timing" % (_c(temp), when))
        if over:
            reasons.append("thermal zone %s (%s) at %s: at or over its %s trip point %s" % (
                new.get("type") or old.get("type") or name, name, " and ".join(over), limit["type"],
                _c(limit["temp_c"])))
    return reasons


def _cpufreq_reasons(before: Dict[str, Any], after: Dict[str, Any]) -> List[str]:
    reasons = []
    old_policies, new_policies = before.get("cpufreq") or {}, after.get("cpufreq") or {}
    for name in _natural([p for p in new_policies if p in old_policies]):
        old, new = old_policies[name], new_policies[name]
        was, now = old.get("max_khz"), new.get("max_khz")
        if not isinstance(was, int) or not isinstance(now, int):
            continue
        top = new.get("cpuinfo_max_khz") or old.get("cpuinfo_max_khz")
        where = "cpufreq %s%s" % (name, " (CPUs %s)" % new["cpus"] if new.get("cpus") else "")
        hardware = " (cpuinfo_max_freq %s)" % _mhz(top) if isinstance(top, int) else ""
        if now < was:
            reasons.append("%s: scaling_max_freq dropped from %s to %s during the timing%s" % (
                where, _mhz(was), _mhz(now), hardware))
        elif now > was and isinstance(top, int) and was < top:
            reasons.append("%s: scaling_max_freq was capped at %s when the timing began and rose to %s by its "
                           "end%s: capped below its maximum for part of it" % (where, _mhz(was), _mhz(now), hardware))
    return reasons


def _counter_reasons(before: Dict[str, Any], after: Dict[str, Any]) -> List[str]:
    old_counts, new_counts = before.get("throttle_counts") or {}, after.get("throttle_counts") or {}
    risen = {}  # type: Dict[str, List[str]]
    for key in sorted(new_counts, key=lambda k: (_number(k.split("/")[0]), k)):
        was, now = old_counts.get(key), new_counts[key]
        if isinstance(was, int) and isinstance(now, int) and now > was:
            cpu, _, counter = key.partition("/")
            risen.setdefault(counter, []).append("%s %d → %d" % (cpu, was, now))
    reasons = []
    for counter in sorted(risen):
        shown = risen[counter][:4] + (["and %d more" % (len(risen[counter]) - 4)] if len(risen[counter]) > 4 else [])
        reasons.append("%s rose during the timing on %d CPU%s: %s" % (
            counter, len(risen[counter]), "" if len(risen[counter]) == 1 else "s", ", ".join(shown)))
    return reasons


def _vcgencmd_reasons(before: Dict[str, Any], after: Dict[str, Any]) -> List[str]:
    new = after.get("vcgencmd") or {}
    if not isinstance(new.get("value"), int):
        return []
    old = before.get("vcgencmd") or {}
    was = old.get("value") if isinstance(old.get("value"), int) else None
    now = new["value"]
    reasons = []
    current = [VCGENCMD_BITS[bit] for bit in VCGENCMD_NOW if now >> bit & 1]
    if current:
        reasons.append("vcgencmd get_throttled=%s after the timing: %s" % (new.get("throttled", hex(now)),
                                                                          ", ".join(current)))
    if was is not None:
        occurred = [VCGENCMD_BITS[bit] for bit in VCGENCMD_OCCURRED if now >> bit & 1 and not was >> bit & 1]
        if occurred:
            reasons.append("vcgencmd get_throttled went from %s to %s during the timing: %s" % (
                old.get("throttled", hex(was)), new.get("throttled", hex(now)), ", ".join(occurred)))
    return reasons


def throttling(before: Dict[str, Any], after: Dict[str, Any]) -> List[str]:
    """Why a timing between two snapshots was throttled, each naming the zone, policy or counter and
    its figures; an empty list where nothing says so."""
    return (_zone_reasons(before, after) + _cpufreq_reasons(before, after) + _counter_reasons(before, after)
            + _vcgencmd_reasons(before, after))


def thermal_summary(snapshot: Dict[str, Any]) -> str:
    """The hottest zones (at most three), e.g. "soc-thermal 41.2 °C, gpu-thermal 39.8 °C"."""
    readings = [(zone["temp_c"], zone.get("type") or name) for name, zone in (snapshot.get("zones") or {}).items()
                if isinstance(zone.get("temp_c"), (int, float))]
    if not readings:
        return "no thermal sensors readable"
    readings.sort(key=lambda reading: -reading[0])
    return ", ".join("%s %s" % (name, _c(temp)) for temp, name in readings[:3])


# --- command line -------------------------------------------------------------------------------

USAGE = "usage: probe.py facts <store> [--root DIR] | probe.py thermal [--root DIR]"


def probe_main(argv: Optional[List[str]] = None) -> int:
    """`facts <store>` or `thermal`: one JSON object on stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    root = "/"
    if "--root" in args:
        at = args.index("--root")
        if at + 1 >= len(args):
            sys.stderr.write(USAGE + "\n")
            return 2
        root = args[at + 1]
        del args[at:at + 2]
    if args[:1] == ["facts"] and len(args) == 2:
        result = board_facts(args[1], root)
    elif args == ["thermal"]:
        result = thermal_snapshot(root)
    else:
        sys.stderr.write(USAGE + "\n")
        return 2
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


if "main" not in globals():
    main = probe_main

# the last block: a script that includes this text may cut it here, or set EDGECHECK_PROBE_LIBRARY before it
if __name__ == "__main__":
    if not globals().get("EDGECHECK_PROBE_LIBRARY"):
        sys.exit(probe_main())
