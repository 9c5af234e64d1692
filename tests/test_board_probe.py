"""edgecheck/boards/probe.py: what a board says about itself (facts, thermal snapshots, throttling between two).

The board's files are real sysfs-, procfs- and /etc-shaped trees in the test's temp folder, read through the
probe's `root`; its tools (nvpmodel, vcgencmd) are real executables on PATH. The probe also runs on this
machine (a container: most of those files are absent, nothing may raise), as a script under `python -I`
(nothing of edgecheck importable), as `python -c <its source>`, after another script's text, and under a
real Python 3.8 where one is installed.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from edgecheck.boards import probe
from test_board_python import python38

PROBE = ROOT / "edgecheck" / "boards" / "probe.py"
RK3588_FEATURES = "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
X86_FLAGS = "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov avx2 avx512f"


def library_text(future: bool = True) -> str:
    """The probe's text as a script that includes it uses it: cut at its command line (its last block)."""
    text = PROBE.read_text().split('\nif __name__ == "__main__":', 1)[0] + "\n"
    return text if future else text.replace("from __future__ import annotations\n", "", 1)


def write(root: Path, path: str, text: str | bytes) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text)
    return target


def arm_cpuinfo(parts: list[str], implementer: str = "0x41") -> str:
    blocks = []
    for n, part in enumerate(parts):
        blocks.append(f"processor\t: {n}\nBogoMIPS\t: 48.00\n{RK3588_FEATURES}\nCPU implementer\t: {implementer}\n"
                      f"CPU architecture: 8\nCPU variant\t: 0x2\nCPU part\t: {part}\nCPU revision\t: 0\n")
    return "\n".join(blocks) + "\n"


def zone(root: Path, n: int, kind: str, millidegrees: int | None, trips: list[tuple[str, int]]) -> Path:
    folder = f"/sys/class/thermal/thermal_zone{n}"
    write(root, f"{folder}/type", kind + "\n")
    if millidegrees is not None:
        write(root, f"{folder}/temp", f"{millidegrees}\n")
    for i, (trip_type, temp) in enumerate(trips):
        write(root, f"{folder}/trip_point_{i}_type", trip_type + "\n")
        write(root, f"{folder}/trip_point_{i}_temp", f"{temp}\n")
    return root / folder.lstrip("/")


def policy(root: Path, name: str, cpus: str, cur: int, maximum: int, hardware: int, governor: str = "performance") -> Path:
    folder = f"/sys/devices/system/cpu/cpufreq/{name}"
    for file, value in (("related_cpus", cpus), ("scaling_cur_freq", cur), ("scaling_max_freq", maximum),
                        ("cpuinfo_max_freq", hardware), ("scaling_governor", governor)):
        write(root, f"{folder}/{file}", f"{value}\n")
    return root / folder.lstrip("/")


@pytest.fixture
def rk3588(tmp_path) -> Path:
    """An RK3588 board's files: 4 Cortex-A55 + 4 Cortex-A76, its SoC and GPU zones, three cpufreq policies,
    the NPU driver's version in debugfs."""
    root = tmp_path / "rk3588"
    write(root, "/proc/cpuinfo", arm_cpuinfo(["0xd05"] * 4 + ["0xd0b"] * 4))
    write(root, "/proc/device-tree/model", b"Rockchip RK3588 EVB1 LP4 V10 Board\x00")
    write(root, "/etc/os-release", 'NAME="Ubuntu"\nVERSION="20.04.6 LTS (Focal Fossa)"\nID=ubuntu\n'
                                   'PRETTY_NAME="Ubuntu 20.04.6 LTS"\nVERSION_ID="20.04"\n')
    write(root, "/proc/meminfo", "MemTotal:        7902100 kB\nMemFree:          512000 kB\n"
                                 "MemAvailable:    6100000 kB\nBuffers:           10000 kB\n")
    write(root, "/sys/kernel/debug/rknpu/version", "RKNPU driver: v0.9.6\n")
    zone(root, 0, "soc-thermal", 41_250, [("passive", 85_000), ("passive", 95_000), ("critical", 115_000)])
    zone(root, 1, "bigcore0-thermal", 43_000, [("passive", 85_000), ("critical", 115_000)])
    zone(root, 2, "gpu-thermal", 39_800, [("passive", 85_000), ("critical", 115_000)])
    policy(root, "policy0", "0 1 2 3", 1_800_000, 1_800_000, 1_800_000)
    policy(root, "policy4", "4 5", 2_400_000, 2_400_000, 2_400_000)
    policy(root, "policy6", "6 7", 2_400_000, 2_400_000, 2_400_000, governor="schedutil")
    return root


@pytest.fixture
def tools(tmp_path, monkeypatch) -> Path:
    """A folder of the board's tools, first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return folder


def tool(folder: Path, name: str, script: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


# --- facts ------------------------------------------------------------------------------------------

def test_facts_of_an_rk3588(rk3588, tmp_path):
    store = tmp_path / "store" / "not" / "made"  # the store's nearest existing folder says the disk
    facts = probe.board_facts(str(store), root=str(rk3588))
    assert facts["os"] == "Ubuntu 20.04.6 LTS"
    cpu = facts["cpu"]
    assert cpu["model"] == "Rockchip RK3588 EVB1 LP4 V10 Board" == cpu["board"]  # aarch64 names no model
    assert cpu["cores"] == {"Cortex-A55": 4, "Cortex-A76": 4}
    assert cpu["signature"] == hashlib.sha256(RK3588_FEATURES.encode()).hexdigest()[:16]
    assert cpu["machine_signature"].endswith(" " + cpu["signature"])
    assert facts["npu_driver"] == "RKNPU driver: v0.9.6"
    assert facts["governors"] == {"policy0": "performance", "policy4": "performance", "policy6": "schedutil"}
    assert facts["memory"] == {"total_bytes": 7902100 * 1024, "available_bytes": 6100000 * 1024}
    disk = facts["disk"]
    assert disk["store"] == str(store) and disk["path"] == str(tmp_path)
    stat = os.statvfs(tmp_path)
    assert disk["total_bytes"] == stat.f_blocks * stat.f_frsize and 0 < disk["free_bytes"] <= disk["total_bytes"]
    assert facts["thermal"] == "bigcore0-thermal 43.0 °C, soc-thermal 41.2 °C, gpu-thermal 39.8 °C"
    assert facts["python"] == {"executable": sys.executable, "version": platform.python_version(),
                               "implementation": platform.python_implementation()}
    assert facts["kernel"] == platform.release() and facts["machine"] == platform.machine()
    assert facts["hostname"]
    assert "jetson" not in facts and "errors" not in facts
    json.dumps(facts)  # it travels as JSON


def test_the_npu_driver_version_in_procfs_and_unreadable(tmp_path):
    root = tmp_path / "board"
    write(root, "/proc/debug/rknpu/version", "RKNPU driver: v0.8.2\n")
    assert probe.npu_driver(str(root)) == "RKNPU driver: v0.8.2"
    folder = write(root, "/sys/kernel/debug/rknpu/version", "RKNPU driver: v0.9.6\n")
    folder.chmod(0)  # debugfs as a user: unreadable is absent, never an error (root reads it all the same)
    try:
        expected = "RKNPU driver: v0.9.6" if os.geteuid() == 0 else "RKNPU driver: v0.8.2"
        assert probe.npu_driver(str(root)) == expected
    finally:
        folder.chmod(0o644)
    assert probe.npu_driver(str(tmp_path / "elsewhere")) is None
    assert "npu_driver" not in probe.board_facts(str(tmp_path), root=str(tmp_path / "elsewhere"))


def test_facts_of_a_raspberry_pi(tmp_path):
    root = tmp_path / "pi"
    write(root, "/proc/cpuinfo", arm_cpuinfo(["0xd08"] * 4)
          + "Hardware\t: BCM2835\nRevision\t: c03114\nSerial\t\t: 100000003d7a1b2c\n"
            "Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
    write(root, "/proc/device-tree/model", b"Raspberry Pi 4 Model B Rev 1.4\x00")
    write(root, "/usr/lib/os-release", "PRETTY_NAME='Debian GNU/Linux 11 (bullseye)'\n")  # no /etc/os-release
    cpu = probe.cpu_facts(str(root))
    assert cpu["model"] == "Raspberry Pi 4 Model B Rev 1.4" and cpu["hardware"] == "BCM2835"
    assert cpu["cores"] == {"Cortex-A72": 4}
    assert probe.os_release(str(root)) == "Debian GNU/Linux 11 (bullseye)"


def test_an_x86_cpu_signature_is_the_hosts_own(tmp_path):
    root = tmp_path / "x86"
    write(root, "/proc/cpuinfo", f"processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) "
                                 f"i7-8700 CPU @ 3.20GHz\n{X86_FLAGS}\n\nprocessor\t: 1\n{X86_FLAGS} extra\n")
    cpu = probe.cpu_facts(str(root))
    assert cpu["model"] == "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"
    assert cpu["signature"] == hashlib.sha256(X86_FLAGS.encode()).hexdigest()[:16]  # the first flags line
    assert cpu["machine_signature"] == (f"{platform.machine()} Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz "
                                        f"{platform.system()} {cpu['signature']}")
    assert "cores" not in cpu and "board" not in cpu


def test_jetson_release_and_power_mode(tmp_path, tools):
    root = tmp_path / "orin"
    write(root, "/etc/nv_tegra_release", "# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref, "
                                         "EABI: aarch64, DATE: Sun Mar 19 15:19:21 UTC 2023\n")
    tool(tools, "nvpmodel", 'if [ "$1" = "-q" ]; then printf "NV Fan Mode:quiet\\nNV Power Mode: 15W\\n2\\n"; '
                            'else exit 1; fi\n')
    jetson = probe.board_facts(str(tmp_path), root=str(root))["jetson"]
    assert jetson["l4t"] == "35.3.1"
    assert jetson["nv_tegra_release"].startswith("R35 (release), REVISION: 3.1")
    assert jetson["nvpmodel"]["name"] == "15W" and jetson["nvpmodel"]["id"] == 2


def test_a_failing_or_hung_tool_is_named_never_waited_on(tmp_path, tools, monkeypatch):
    tool(tools, "nvpmodel", 'echo "NVPM ERROR: failed to read PARAM" >&2; exit 1\n')
    assert probe.jetson_facts(str(tmp_path)) == {
        "nvpmodel": {"error": "nvpmodel exited with status 1: NVPM ERROR: failed to read PARAM"}}
    tool(tools, "nvpmodel", "exec sleep 30\n")
    monkeypatch.setattr(probe, "NVPMODEL_TIMEOUT_S", 0.3)
    assert probe.jetson_facts(str(tmp_path)) == {"nvpmodel": {"error": "nvpmodel gave no answer within 0.3 s"}}


def test_no_jetson_and_no_tools_say_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(probe, "TOOL_DIRS", ())
    for name in ("nvpmodel", "vcgencmd"):  # in the current folder, which is not on PATH
        tool(tmp_path, name, "echo 'NV Power Mode: MAXN'; echo throttled=0x5\n")
    monkeypatch.chdir(tmp_path)
    for path in (str(tmp_path / "empty"), "", os.pathsep):
        monkeypatch.setenv("PATH", path)
        assert probe.jetson_facts(str(tmp_path)) == {}
        assert "vcgencmd" not in probe.thermal_snapshot(str(tmp_path))


def test_a_many_core_cpuinfo_is_read_whole(tmp_path):
    root = tmp_path / "server"
    write(root, "/proc/cpuinfo", arm_cpuinfo(["0xd0c"] * 1024))  # ~250 KiB
    assert probe.cpu_facts(str(root))["cores"] == {"Neoverse-N1": 1024}
    write(root, "/proc/cpuinfo", arm_cpuinfo(["0x004"] * 8, implementer="0x4e"))  # Jetson Xavier's NVIDIA Carmel
    assert probe.cpu_facts(str(root))["cores"] == {"implementer 0x4e part 0x004": 8}


def test_runtimes_name_distributions_and_modules_without_importing_them():
    runtimes = probe.runtime_facts()
    assert set(runtimes["distributions"]) == set(probe.RUNTIME_DISTRIBUTIONS)
    assert set(runtimes["modules"]) == set(probe.RUNTIME_MODULES)
    import onnxruntime

    assert runtimes["distributions"]["onnxruntime"] == onnxruntime.__version__
    assert runtimes["modules"]["onnxruntime"] is True
    assert runtimes["modules"]["rknnlite"] is False and runtimes["distributions"]["rknn-toolkit-lite2"] is None
    done = subprocess.run([sys.executable, "-I", "-c", library_text() + "import sys\nrt = runtime_facts()\n"
                           "print(sorted(m for m in ('onnxruntime', 'ai_edge_litert', 'tensorrt') if m in sys.modules))\n"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # found on the path, never imported


def test_a_section_that_fails_is_named_the_rest_still_said(rk3588, monkeypatch):
    def broken(root="/"):
        raise RuntimeError("a sysfs file went away")

    monkeypatch.setattr(probe, "governors", broken)
    facts = probe.board_facts("/tmp", root=str(rk3588))
    assert facts["errors"] == {"governors": "RuntimeError: a sysfs file went away"}
    assert facts["npu_driver"] == "RKNPU driver: v0.9.6" and "governors" not in facts


# --- thermal snapshots ------------------------------------------------------------------------------

def test_a_thermal_snapshot_of_an_rk3588(rk3588):
    snapshot = probe.thermal_snapshot(str(rk3588))
    soc = snapshot["zones"]["thermal_zone0"]
    assert soc["type"] == "soc-thermal" and soc["temp_c"] == 41.25
    assert soc["trips"] == [{"index": 0, "type": "passive", "temp_c": 85.0},
                            {"index": 1, "type": "passive", "temp_c": 95.0},
                            {"index": 2, "type": "critical", "temp_c": 115.0}]
    assert list(snapshot["zones"]) == ["thermal_zone0", "thermal_zone1", "thermal_zone2"]
    assert snapshot["cpufreq"]["policy4"] == {"cpus": "4 5", "cur_khz": 2_400_000, "max_khz": 2_400_000,
                                              "cpuinfo_max_khz": 2_400_000}
    assert snapshot["throttle_counts"] == {}
    assert "vcgencmd" not in snapshot or os.path.exists("/usr/bin/vcgencmd")
    later = probe.thermal_snapshot(str(rk3588))
    assert later["monotonic"] >= snapshot["monotonic"]
    json.dumps(snapshot)


def test_zones_are_in_natural_order_and_an_unreadable_one_has_no_temperature(tmp_path):
    root = tmp_path / "board"
    for n in (10, 2, 1):
        zone(root, n, f"zone-{n}", 30_000 + n * 1000, [])
    (root / "sys/class/thermal/thermal_zone2/temp").unlink()
    (root / "sys/class/thermal/thermal_zone2/temp").mkdir()  # a read that fails (EINVAL on a real one)
    write(root, "/sys/class/thermal/thermal_zone1/temp", "garbage\n")
    snapshot = probe.thermal_snapshot(str(root))
    assert list(snapshot["zones"]) == ["thermal_zone1", "thermal_zone2", "thermal_zone10"]
    assert snapshot["zones"]["thermal_zone1"]["temp_c"] is None
    assert snapshot["zones"]["thermal_zone2"]["temp_c"] is None
    assert probe.thermal_summary(snapshot) == "zone-10 40.0 °C"


def test_cpufreq_without_policy_folders_reads_each_cpu(tmp_path):
    root = tmp_path / "old-kernel"
    for cpu in (0, 1):
        folder = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
        write(root, f"{folder}/scaling_max_freq", "1200000\n")
        write(root, f"{folder}/cpuinfo_max_freq", "1200000\n")
        write(root, f"{folder}/scaling_governor", "ondemand\n")
    assert probe.governors(str(root)) == {"cpu0": "ondemand", "cpu1": "ondemand"}
    assert probe.thermal_snapshot(str(root))["cpufreq"]["cpu1"]["max_khz"] == 1_200_000


def test_thermal_summary():
    snapshot = {"zones": {f"thermal_zone{n}": {"type": kind, "temp_c": temp, "trips": []}
                          for n, (kind, temp) in enumerate([("acpitz", 27.8), ("x86_pkg_temp", 55.04),
                                                            ("iwlwifi_1", None), ("pch", 49.0), ("nvme", 38.9)])}}
    assert probe.thermal_summary(snapshot) == "x86_pkg_temp 55.0 °C, pch 49.0 °C, nvme 38.9 °C"
    assert probe.thermal_summary({"zones": {}}) == "no thermal sensors readable"


# --- throttling between two snapshots --------------------------------------------------------------

def test_nothing_changed_is_no_throttling(rk3588):
    before = probe.thermal_snapshot(str(rk3588))
    after = probe.thermal_snapshot(str(rk3588))
    assert probe.throttling(before, after) == []
    assert probe.throttling({}, {}) == []


def test_a_zone_at_its_passive_trip_after_the_timing(rk3588):
    before = probe.thermal_snapshot(str(rk3588))
    write(rk3588, "/sys/class/thermal/thermal_zone1/temp", "85000\n")  # at the trip point: throttling begins
    after = probe.thermal_snapshot(str(rk3588))
    assert probe.throttling(before, after) == [
        "thermal zone bigcore0-thermal (thermal_zone1) at 85.0 °C after the timing: at or over its passive trip "
        "point 85.0 °C"]


def test_a_zone_over_its_lowest_passive_trip_before_the_timing_only(rk3588):
    write(rk3588, "/sys/class/thermal/thermal_zone0/temp", "88500\n")
    before = probe.thermal_snapshot(str(rk3588))
    write(rk3588, "/sys/class/thermal/thermal_zone0/temp", "84900\n")
    after = probe.thermal_snapshot(str(rk3588))
    assert probe.throttling(before, after) == [
        "thermal zone soc-thermal (thermal_zone0) at 88.5 °C before the timing: at or over its passive trip "
        "point 85.0 °C"]  # the lowest of its two passive trips


def test_a_zone_with_a_hot_trip_and_one_with_only_fan_and_critical_trips(tmp_path):
    root = tmp_path / "board"
    zone(root, 0, "cpu-thermal", 71_000, [("active", 50_000), ("hot", 70_000), ("critical", 90_000)])
    zone(root, 1, "fan-only", 60_000, [("active", 45_000), ("critical", 100_000)])
    snapshot = probe.thermal_snapshot(str(root))
    assert probe.throttling(snapshot, snapshot) == [
        "thermal zone cpu-thermal (thermal_zone0) at 71.0 °C before the timing and 71.0 °C after the timing: at or "
        "over its hot trip point 70.0 °C"]


def test_a_cpufreq_cap_that_dropped_during_the_timing(rk3588):
    before = probe.thermal_snapshot(str(rk3588))
    write(rk3588, "/sys/devices/system/cpu/cpufreq/policy4/scaling_max_freq", "1608000\n")
    write(rk3588, "/sys/devices/system/cpu/cpufreq/policy4/scaling_cur_freq", "1608000\n")
    after = probe.thermal_snapshot(str(rk3588))
    assert probe.throttling(before, after) == [
        "cpufreq policy4 (CPUs 4 5): scaling_max_freq dropped from 2400 MHz to 1608 MHz during the timing "
        "(cpuinfo_max_freq 2400 MHz)"]


def test_a_cpufreq_cap_lifted_during_the_timing(rk3588):
    write(rk3588, "/sys/devices/system/cpu/cpufreq/policy6/scaling_max_freq", "1800000\n")
    before = probe.thermal_snapshot(str(rk3588))
    write(rk3588, "/sys/devices/system/cpu/cpufreq/policy6/scaling_max_freq", "2400000\n")
    after = probe.thermal_snapshot(str(rk3588))
    assert probe.throttling(before, after) == [
        "cpufreq policy6 (CPUs 6 7): scaling_max_freq was capped at 1800 MHz when the timing began and rose to "
        "2400 MHz by its end (cpuinfo_max_freq 2400 MHz): capped below its maximum for part of it"]


def test_a_steady_cap_is_a_setting_not_throttling(rk3588):
    write(rk3588, "/sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq", "1416000\n")  # set by the user
    before = probe.thermal_snapshot(str(rk3588))
    write(rk3588, "/sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq", "408000\n")  # DVFS at idle
    after = probe.thermal_snapshot(str(rk3588))
    assert probe.throttling(before, after) == []


def test_x86_throttle_counters_that_rose(tmp_path):
    root = tmp_path / "x86"
    for cpu in range(6):
        write(root, f"/sys/devices/system/cpu/cpu{cpu}/thermal_throttle/core_throttle_count", "3\n")
        write(root, f"/sys/devices/system/cpu/cpu{cpu}/thermal_throttle/package_throttle_count", "10\n")
        write(root, f"/sys/devices/system/cpu/cpu{cpu}/thermal_throttle/core_power_limit_count", "0\n")
    before = probe.thermal_snapshot(str(root))
    assert before["throttle_counts"]["cpu5/core_throttle_count"] == 3
    assert "cpu0/core_power_limit_count" not in before["throttle_counts"]
    assert probe.throttling(before, probe.thermal_snapshot(str(root))) == []
    write(root, "/sys/devices/system/cpu/cpu2/thermal_throttle/core_throttle_count", "5\n")
    for cpu in range(6):
        write(root, f"/sys/devices/system/cpu/cpu{cpu}/thermal_throttle/package_throttle_count", "11\n")
    assert probe.throttling(before, probe.thermal_snapshot(str(root))) == [
        "core_throttle_count rose during the timing on 1 CPU: cpu2 3 → 5",
        "package_throttle_count rose during the timing on 6 CPUs: cpu0 10 → 11, cpu1 10 → 11, cpu2 10 → 11, "
        "cpu3 10 → 11, and 2 more"]


def vcgencmd(tools: Path, state: Path, value: str) -> None:
    state.write_text(value)
    tool(tools, "vcgencmd", f'[ "$1" = get_throttled ] || exit 2\necho "throttled=$(cat {state})"\n')


def test_raspberry_pi_firmware_throttle_bits(tmp_path, tools):
    state = tmp_path / "throttled"
    vcgencmd(tools, state, "0x0")
    before = probe.thermal_snapshot(str(tmp_path))
    assert before["vcgencmd"]["value"] == 0 and not any(before["vcgencmd"]["bits"].values())
    assert probe.throttling(before, probe.thermal_snapshot(str(tmp_path))) == []
    state.write_text("0xe000e")  # capped, throttled, soft limit now; and each has occurred
    after = probe.thermal_snapshot(str(tmp_path))
    assert after["vcgencmd"]["bits"]["soft temperature limit active"] is True
    assert after["vcgencmd"]["bits"]["under-voltage detected"] is False
    assert probe.throttling(before, after) == [
        "vcgencmd get_throttled=0xe000e after the timing: arm frequency capped, currently throttled, "
        "soft temperature limit active",
        "vcgencmd get_throttled went from 0x0 to 0xe000e during the timing: arm frequency capping has occurred, "
        "throttling has occurred, soft temperature limit has occurred"]


def test_raspberry_pi_bits_that_occurred_before_the_timing_are_not_its_own(tmp_path, tools):
    state = tmp_path / "throttled"
    vcgencmd(tools, state, "0x50000")  # under-voltage and throttling occurred since boot, nothing now
    before = probe.thermal_snapshot(str(tmp_path))
    assert probe.throttling(before, probe.thermal_snapshot(str(tmp_path))) == []
    state.write_text("0x50001")  # the supply sags during the timing
    assert probe.throttling(before, probe.thermal_snapshot(str(tmp_path))) == [
        "vcgencmd get_throttled=0x50001 after the timing: under-voltage detected"]


def test_a_vcgencmd_that_fails_is_named(tmp_path, tools):
    tool(tools, "vcgencmd", 'echo "VCHI initialization failed" >&2; exit 255\n')
    snapshot = probe.thermal_snapshot(str(tmp_path))
    assert snapshot["vcgencmd"] == {"error": "vcgencmd exited with status 255: VCHI initialization failed"}
    assert probe.throttling(snapshot, snapshot) == []


# --- this machine, and the probe as the board runs it -----------------------------------------------

def test_on_this_machine_nothing_raises():
    facts = probe.board_facts("/tmp")
    assert "errors" not in facts, facts["errors"]
    assert facts["python"]["version"] == platform.python_version()
    assert facts["numpy"]["version"] == __import__("numpy").__version__
    from edgecheck.execute import machine_signature

    assert facts["cpu"]["machine_signature"] == machine_signature()  # a board's is made as the host's is
    before, after = probe.thermal_snapshot(), probe.thermal_snapshot()
    assert isinstance(probe.throttling(before, after), list)
    assert isinstance(probe.thermal_summary(after), str)
    json.dumps([facts, before])


def test_the_probe_is_standard_library_only():
    tree = ast.parse(PROBE.read_text())
    assert PROBE.read_text().startswith("from __future__ import annotations\n")
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    assert imported - {"__future__", "numpy"} <= set(sys.stdlib_module_names), imported
    numpy_imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import)
                     and any(a.name == "numpy" for a in node.names)]
    assert [n.lineno for n in numpy_imports] and all(n.col_offset > 0 for n in numpy_imports)  # inside a try only


def run_probe(argv: list[str], interpreter: str = sys.executable, flags: tuple[str, ...] = ("-I",),
              cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([interpreter, *flags, *argv], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_the_probe_as_a_script_under_isolated_python(tmp_path, rk3588):
    done = run_probe([str(PROBE), "facts", "/tmp"], cwd=tmp_path)  # -I: no edgecheck on the path
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert done.stdout.count("\n") == 1 and facts["disk"]["path"] == "/tmp" and facts["python"]["version"]
    done = run_probe(["-c", PROBE.read_text(), "thermal", "--root", str(rk3588)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["zones"]["thermal_zone0"]["temp_c"] == 41.25
    done = run_probe(["-c", PROBE.read_text(), "facts", "~/edgecheck-store", "--root", str(rk3588)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["npu_driver"] == "RKNPU driver: v0.9.6" and facts["disk"]["store"] == "~/edgecheck-store"
    for wrong in ([], ["facts"], ["thermal", "extra"], ["nonsense"], ["thermal", "--root"]):
        done = run_probe(["-c", PROBE.read_text(), *wrong])
        assert done.returncode == 2 and done.stdout == "" and "usage: probe.py" in done.stderr


def test_a_board_without_numpy_says_so(tmp_path):
    done = run_probe([str(PROBE), "facts", str(tmp_path)], flags=("-I", "-S"))  # -S: no site-packages, no numpy
    assert done.returncode == 0, done.stderr
    numpy = json.loads(done.stdout)["numpy"]
    assert numpy == {"error": "ModuleNotFoundError: No module named 'numpy'"}


def test_the_probe_after_another_scripts_text(tmp_path, rk3588):
    """As the board gets it inside one `python -c` program: the future import moved to the top (or the text
    cut at its last block), its functions called by what comes after."""
    source = PROBE.read_text()
    future = "from __future__ import annotations\n"
    before = "import sys\n\ndef main(argv):\n    return 'the including script keeps its own main'\n\n"
    after = ("\nfacts = board_facts(sys.argv[1], root=sys.argv[2])\n"
             "snap = thermal_snapshot(sys.argv[2])\n"
             "print(json.dumps({'npu': facts['npu_driver'], 'zones': len(snap['zones']), 'main': main([]),\n"
             "                  'throttled': throttling(snap, snap), 'summary': thermal_summary(snap)}))\n")
    flagged = future + before + "EDGECHECK_PROBE_LIBRARY = True\n" + source.replace(future, "", 1) + after
    cut = future + before + library_text(future=False) + after
    plain = before + library_text(future=False) + after  # no future import at all
    for program in (flagged, cut, plain):
        done = run_probe(["-c", program, str(tmp_path), str(rk3588)], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {
            "npu": "RKNPU driver: v0.9.6", "zones": 3, "main": "the including script keeps its own main",
            "throttled": [], "summary": "bigcore0-thermal 43.0 °C, soc-thermal 41.2 °C, gpu-thermal 39.8 °C"}


def test_the_probe_under_a_real_python_38(tmp_path, rk3588, tools):
    interpreter = python38()
    if interpreter is None:
        pytest.skip("no Python 3.8 interpreter here (python3.8 on PATH or under ~/.pyenv)")
    state = tmp_path / "throttled"
    vcgencmd(tools, state, "0x0")
    done = run_probe([str(PROBE), "facts", str(tmp_path), "--root", str(rk3588)], interpreter=interpreter)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["python"]["version"].startswith("3.8.")
    expected = probe.board_facts(str(tmp_path), root=str(rk3588))
    for key in ("os", "cpu", "npu_driver", "governors", "memory", "thermal"):
        assert facts[key] == expected[key], key
    assert "errors" not in facts
    program = (library_text(future=False)  # valid 3.8 without the future import too
               + "\nimport sys\nfirst = thermal_snapshot(sys.argv[1])\n"
          "open(sys.argv[2], 'w').write('0x50005')\n"
          "print(json.dumps(throttling(first, thermal_snapshot(sys.argv[1]))))\n")
    done = run_probe(["-c", program, str(rk3588), str(state)], interpreter=interpreter)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        "vcgencmd get_throttled=0x50005 after the timing: under-voltage detected, currently throttled",
        "vcgencmd get_throttled went from 0x0 to 0x50005 during the timing: under-voltage has occurred, "
        "throttling has occurred"]
