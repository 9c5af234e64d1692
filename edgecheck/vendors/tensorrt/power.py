"""A Jetson's own power readings and the settings that change its results: the INA3221 rails in sysfs, a tegrastats
line, the nvpmodel power mode, whether jetson_clocks locked the GPU clock, and the L4T/JetPack release.

Runs on the board under its own Python (3.8 on JetPack 5; standard library only). Every function takes `root`, the
file system's top ("/" on a board, a tmp tree in tests). An absent or unreadable file is an absent fact (None, or a
key left out), never an error: the caller says what it could not judge.

Sysfs layouts (RESEARCH20 §4.2): JetPack 4 has the iio driver `ina3221x` with `in_power<N>_input` (mW) and
`rail_name_<N>`; JetPack 5/6 the hwmon driver `ina3221` with `in<k>_label`, `in<k>_input` (bus voltage, mV) and
`curr<k>_input` (mA) per the kernel's ina3221 documentation. The hwmon number varies between boots and boards, so
rails are found by globbing and known by their label; channel 7 (the sum of shunt voltages) and "NC" (not connected)
labels are skipped, as jetson-stats does.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

MODULE_INPUT_LABELS = ("VDD_IN", "POM_5V_IN")  # the module's total input (jetson-stats takes the same two)


@dataclass(frozen=True)
class Rail:
    """One power rail. Paths are relative to `root`: either power_path (mW, JetPack 4) or volt_path (mV) with
    curr_path (mA)."""

    label: str
    power_path: Optional[str]
    volt_path: Optional[str]
    curr_path: Optional[str]


def _read(root: str, path: str) -> Optional[str]:
    try:
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as handle:
            return handle.read(65536)
    except (OSError, ValueError):
        return None


def _number(root: str, path: Optional[str]) -> Optional[float]:
    if path is None:
        return None
    text = _read(root, path)
    if text is None:
        return None
    try:
        return float(int(text.strip()))
    except ValueError:
        return None


def _relative(root: str, path: str) -> str:
    return os.path.relpath(path, root)


def _skip_label(label: str) -> bool:
    return not label or "NC" in re.split(r"[_\s]+", label)


def find_rails(root: str = "/") -> List[Rail]:
    """The INA3221 rails this board exposes, JetPack 4 iio form first, then the JetPack 5/6 hwmon form."""
    rails = []
    base = os.path.join(glob.escape(root), "sys/bus/i2c/drivers")
    for name_file in sorted(glob.glob(os.path.join(base, "ina3221x", "*", "iio:device*", "rail_name_*"))):
        channel = name_file.rsplit("_", 1)[1]
        label = (_read(root, _relative(root, name_file)) or "").strip()
        folder = os.path.dirname(name_file)
        if _skip_label(label) or not channel.isdigit():
            continue
        rails.append(Rail(label, _relative(root, os.path.join(folder, f"in_power{channel}_input")),
                          _relative(root, os.path.join(folder, f"in_voltage{channel}_input")),
                          _relative(root, os.path.join(folder, f"in_current{channel}_input"))))
    for label_file in sorted(glob.glob(os.path.join(base, "ina3221", "*", "hwmon", "hwmon*", "in*_label"))):
        match = re.fullmatch(r"in(\d+)_label", os.path.basename(label_file))
        if match is None or match.group(1) == "7":
            continue
        channel, folder = match.group(1), os.path.dirname(label_file)
        label = (_read(root, _relative(root, label_file)) or "").strip()
        if _skip_label(label):
            continue
        rails.append(Rail(label, None, _relative(root, os.path.join(folder, f"in{channel}_input")),
                          _relative(root, os.path.join(folder, f"curr{channel}_input"))))
    return rails


def read_rail_mw(rail: Rail, root: str = "/") -> Optional[float]:
    """The rail's power now in mW (JetPack 4: read directly; 5/6: mV x mA / 1000); None where unreadable."""
    power = _number(root, rail.power_path)
    if power is None:
        volt, curr = _number(root, rail.volt_path), _number(root, rail.curr_path)
        if volt is None or curr is None:
            return None
        power = volt * curr / 1000.0
    return power if power >= 0 else None


def module_input(rails: List[Rail]) -> Optional[Rail]:
    """The rail of the module's total input (VDD_IN, or POM_5V_IN on a Nano). None where the board has none (AGX
    Orin's rails are VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0): summing rails is the caller's call, and says so."""
    for rail in rails:
        if rail.label.upper() in MODULE_INPUT_LABELS:
            return rail
    return None


_TEGRA_RAIL = re.compile(r"(?:^|\s)([A-Z][A-Z0-9_]*)\s+(\d+(?:\.\d+)?)(?:mW)?/(\d+(?:\.\d+)?)(?:mW)?(?=\s|$)")


def read_tegrastats_line(line: str) -> Dict[str, Tuple[float, float]]:
    """Each rail of a tegrastats line: name -> (now mW, average mW). Both the bare `POM_5V_IN 1022/1022` and the
    `VDD_IN 5299mW/5299mW` forms (DataDog's jetson check test lines)."""
    return {m.group(1): (float(m.group(2)), float(m.group(3))) for m in _TEGRA_RAIL.finditer(line)}


def read_nvpmodel(text: str) -> Tuple[Optional[str], Optional[int]]:
    """`nvpmodel -q` output -> (mode name, mode id): "NV Power Mode: MAXN" and a line of digits."""
    name = number = None
    for line in text.splitlines():
        found = re.search(r"(?:NV Power Mode|NVPOWERMODE):\s*(\S+)", line)
        if found is not None:
            name = found.group(1)
        elif re.fullmatch(r"\s*\d{1,6}\s*", line):
            number = int(line)
    return name, number


def _mode_names(text: str) -> Dict[int, str]:
    return {int(m.group(1)): m.group(2)
            for m in re.finditer(r"<\s*POWER_MODEL\s+ID=(\d{1,6})\s+NAME=(\S+?)\s*>", text)}


def nvpmodel_mode(root: str = "/") -> Tuple[Optional[str], Optional[int]]:
    """The power mode from /var/lib/nvpmodel/status (`pmode:0000`) and its name from /etc/nvpmodel.conf
    (`< POWER_MODEL ID=0 NAME=MAXN >`). The status file holds the mode nvpmodel last set; `nvpmodel -q` asks live."""
    status = _read(root, "var/lib/nvpmodel/status")
    found = re.search(r"pmode:(\d{1,6})", status or "")
    if found is None:
        return None, None
    number = int(found.group(1))
    return _mode_names(_read(root, "etc/nvpmodel.conf") or "").get(number), number


_GPU_DEVFREQ = ("sys/class/devfreq/*gpu*", "sys/class/devfreq/*gv11b*", "sys/class/devfreq/*ga10b*",
                "sys/class/devfreq/*gp10b*", "sys/devices/gpu.0/devfreq/*")


def clocks_locked(root: str = "/") -> Optional[bool]:
    """Whether the GPU clock is locked (jetson_clocks sets its devfreq min_freq to max_freq). None where no GPU
    devfreq is readable. The CPU is not judged: a low power mode can cap it to one frequency unlocked."""
    seen = []
    for pattern in _GPU_DEVFREQ:
        for folder in sorted(glob.glob(os.path.join(glob.escape(root), pattern))):
            low = _number(root, _relative(root, os.path.join(folder, "min_freq")))
            high = _number(root, _relative(root, os.path.join(folder, "max_freq")))
            if low is not None and high is not None:
                seen.append(low == high)
    return all(seen) if seen else None


# JetPack per L4T release, looked up (RESEARCH20 §6.1: NVIDIA's release tables as copied by others). A release not in
# the table is given by its family: L4T R32 is JetPack 4, R35 JetPack 5, R36 JetPack 6.
_JETPACK = {(32, 6, 1): "4.6", (32, 7): "4.6.x (4.6.1 or later)", (35, 1): "5.0.2", (35, 3): "5.1.1",
            (35, 5): "5.1.3", (36, 3): "6.0", (36, 4): "6.1 or 6.2"}
_FAMILY = {32: "4.x", 35: "5.x", 36: "6.x"}


def jetpack_for(l4t: Tuple[int, ...]) -> Optional[str]:
    for key in (l4t[:3], l4t[:2]):
        if key in _JETPACK:
            return _JETPACK[key]
    return _FAMILY.get(l4t[0]) if l4t else None


def l4t_release(root: str = "/") -> Optional[Tuple[int, ...]]:
    """L4T release from /etc/nv_tegra_release's first line: `# R32 (release), REVISION: 6.1, ...` -> (32, 6, 1)."""
    text = _read(root, "etc/nv_tegra_release") or ""
    found = re.search(r"#\s*R(\d{1,4})\s*\(release\),\s*REVISION:\s*(\d{1,4}(?:\.\d{1,4})*)", text)
    if found is None:
        return None
    return (int(found.group(1)),) + tuple(int(part) for part in found.group(2).split("."))


def jetson_facts(root: str = "/") -> Dict[str, str]:
    """What a result measured on a Jetson is labelled with. Keys, each only where known: "model" (device tree),
    "l4t", "jetpack" (looked up from the L4T release: says so), "power_mode" (nvpmodel's status), "clocks"
    ("locked" / "not locked": the GPU's devfreq min and max)."""
    facts: Dict[str, str] = {}
    for path in ("proc/device-tree/model", "sys/firmware/devicetree/base/model"):
        model = (_read(root, path) or "").replace("\x00", "").strip()
        if model:
            facts["model"] = model
            break
    release = l4t_release(root)
    if release is not None:
        facts["l4t"] = "R" + ".".join(map(str, release))
        jetpack = jetpack_for(release)
        if jetpack is not None:
            facts["jetpack"] = f"{jetpack} (looked up from L4T {facts['l4t']})"
    name, number = nvpmodel_mode(root)
    if number is not None:
        facts["power_mode"] = f"{name} (nvpmodel mode {number})" if name else f"nvpmodel mode {number}"
    locked = clocks_locked(root)
    if locked is not None:
        facts["clocks"] = "locked" if locked else "not locked"
    return facts
