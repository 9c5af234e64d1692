"""edgecheck.vendors.tensorrt.power on real-shaped Jetson files in a tmp tree: INA3221 rails (JetPack 4 iio and
JetPack 5/6 hwmon), tegrastats lines, nvpmodel, jetson_clocks' locked GPU clock, the L4T/JetPack release. Sample
lines are verbatim from the sources cited beside them; the sysfs layouts follow RESEARCH20 §4.2 (kernel ina3221 doc,
jetson-stats' reader). Absent files are absent facts, never errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecheck.vendors.tensorrt import power
from edgecheck.vendors.tensorrt.power import (Rail, clocks_locked, find_rails, jetpack_for, jetson_facts,
                                              l4t_release, module_input, nvpmodel_mode, read_nvpmodel,
                                              read_rail_mw, read_tegrastats_line)

# DataDog/datadog-agent pkg/collector/corechecks/nvidia/jetson/jetson_test.go @ 020f92f4a5f629e0838d2f460c371f3e455628cf
NANO_SAMPLE = "RAM 534/3964MB (lfb 98x4MB) SWAP 5/1982MB (cached 1MB) IRAM 0/252kB(lfb 252kB) CPU [16%@204,9%@204,0%@204,0%@204] EMC_FREQ 0%@204 GR3D_FREQ 0%@76 APE 25 PLL@34C CPU@36.5C PMIC@100C GPU@36C AO@39.5C thermal@36.25C POM_5V_IN 1022/1022 POM_5V_GPU 0/0 POM_5V_CPU 204/204"
XAVIER_NX_SAMPLE = "RAM 4412/7772MB (lfb 237x4MB) SWAP 139/3886MB (cached 2MB) CPU [9%@1190,6%@1190,6%@1190,5%@1190,4%@1190,8%@1267] EMC_FREQ 10%@1600 GR3D_FREQ 62%@306 APE 150 MTS fg 0% bg 0% AO@41.5C GPU@43C PMIC@100C AUX@41.5C CPU@43.5C thermal@42.55C VDD_IN 4067/4067 VDD_CPU_GPU_CV 738/738 VDD_SOC 1353/1353"
VOLTAGE_UNIT_SAMPLE = "RAM 6334/15388MB (lfb 1770x4MB) SWAP 491/7694MB (cached 0MB) CPU [6%@729,9%@729,5%@729,16%@729,off,off,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@611 VIC_FREQ 729 APE 174 CV0@45.812C CPU@47.937C SOC2@46.093C SOC0@46.968C CV1@46.406C GPU@45.875C tj@48.875C SOC1@48.875C CV2@45.75C VDD_IN 5299mW/5299mW VDD_CPU_GPU_CV 773mW/773mW VDD_SOC 1424mW/1424mW"
R36_SAMPLE = "RAM 29114/30697MB (lfb 3x4MB)    SWAP 4915/15348MB (cached 1MB) CPU [3%@729,4%@729,0%@729,1%@729,0%@2201,100%@2201,1%@2201,0%@2201,100%@2201,0%@2201,0%@2201,0%@2201] EMC_FREQ 1%@2133 GR3D_FREQ 0%@[305,305] NVENC      off  NVDEC    off NVJPG off NVJPG1    off         VIC        off          OFA           off          NVDLA0    off       NVDLA1     off          PVA0_FREQ off         APE           174        cpu@53.062C soc2@48.25C soc0@48.843C  gpu@47.812C tj@53.062C soc1@48.968C    VDD_GPU_SOC 3205mW/3205mW VDD_CPU_CV 4405mW/4405mW VIN_SYS_5V0 4767mW/4767mW"

# `nvpmodel -q` on a Nano (index id 464781463) and with a fan-mode line first (index id 27914354166)
NVPMODEL_5W = "NV Power Mode: 5W\n1\n"
NVPMODEL_FAN = "NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n"

# /etc/nvpmodel.conf's power model section of a Nano (nvpmodel_t210_jetson-nano.conf as quoted, index id 38319927461)
NVPMODEL_CONF = """###########################
#                         #
# POWER_MODEL DEFINITIONS #
#                         #
###########################

# MAXN is the NONE power model to release all constraints
< POWER_MODEL ID=0 NAME=MAXN >
CPU_ONLINE CORE_0 1
CPU_ONLINE CORE_1 1
CPU_ONLINE CORE_2 1
CPU_ONLINE CORE_3 1
CPU_A57 MIN_FREQ  0
CPU_A57 MAX_FREQ -1
GPU_POWER_CONTROL_ENABLE GPU_PWR_CNTL_EN on
GPU MIN_FREQ  0
GPU MAX_FREQ -1
GPU_POWER_CONTROL_DISABLE GPU_PWR_CNTL_DIS auto
EMC MAX_FREQ 0

< POWER_MODEL ID=1 NAME=5W >
CPU_ONLINE CORE_0 1
CPU_ONLINE CORE_1 1
CPU_ONLINE CORE_2 0
CPU_ONLINE CORE_3 0
"""

# /etc/nv_tegra_release of a Nano on JetPack 4.6 (index id 24142266071)
NV_TEGRA_RELEASE_R32_6_1 = "# R32 (release), REVISION: 6.1, GCID: 27863751, BOARD: t210ref, EABI: aarch64, DATE: Mon Jul 26 19:20:30 UTC 2021\n"
# JetPack 4.5 (index id 10878535018): a revision without a minor number
NV_TEGRA_RELEASE_R32_5 = "# R32 (release), REVISION: 5, GCID: 25531747, BOARD: t186ref, EABI: aarch64, DATE: Sat Nov 07 23:21:05 UTC 2020\n"
# L4T R36.4 (index id 69622047474)
NV_TEGRA_RELEASE_R36_4_4 = "# R36 (release), REVISION: 4.4, GCID: 41062509, BOARD: generic, EABI: aarch64\n"


def _write(root: Path, path: str, text: str) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def nano_jp4(root: Path) -> None:
    """A Nano on JetPack 4: iio ina3221x at 6-0040, three channels in mW with rail names."""
    folder = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    for channel, (label, mw) in enumerate([("POM_5V_IN", "1022"), ("POM_5V_GPU", "0"), ("POM_5V_CPU", "204")]):
        _write(root, f"{folder}/rail_name_{channel}", label + "\n")
        _write(root, f"{folder}/in_power{channel}_input", mw + "\n")
    _write(root, "proc/device-tree/model", "NVIDIA Jetson Nano Developer Kit\x00")
    _write(root, "etc/nv_tegra_release", NV_TEGRA_RELEASE_R32_6_1)
    _write(root, "var/lib/nvpmodel/status", "pmode:0001\n")
    _write(root, "etc/nvpmodel.conf", NVPMODEL_CONF)
    # jetson_clocks --show before jetson_clocks (index id 38734628431): GPU MinFreq=76800000 MaxFreq=614400000
    _write(root, "sys/devices/gpu.0/devfreq/57000000.gpu/min_freq", "76800000\n")
    _write(root, "sys/devices/gpu.0/devfreq/57000000.gpu/max_freq", "614400000\n")


def xavier_jp5(root: Path, hwmon: str = "hwmon3") -> None:
    """A Xavier NX on JetPack 5: hwmon ina3221 at 1-0040 with labels, mV and mA, channel 7 and an NC label."""
    folder = f"sys/bus/i2c/drivers/ina3221/1-0040/hwmon/{hwmon}"
    for k, (label, mv, ma) in enumerate([("VDD_IN", "5000", "813"), ("VDD_CPU_GPU_CV", "5000", "148"),
                                         ("VDD_SOC", "5000", "271")], start=1):
        _write(root, f"{folder}/in{k}_label", label + "\n")
        _write(root, f"{folder}/in{k}_input", mv + "\n")
        _write(root, f"{folder}/curr{k}_input", ma + "\n")
    _write(root, f"{folder}/in7_label", "sum of shunt voltages\n")
    _write(root, f"{folder}/in7_input", "1\n")
    second = "sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon4"
    _write(root, f"{second}/in1_label", "NC\n")
    _write(root, f"{second}/in1_input", "0\n")
    _write(root, f"{second}/curr1_input", "0\n")
    _write(root, "etc/nv_tegra_release", "# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref, EABI: aarch64, DATE: Sun Mar 19 15:19:21 UTC 2023\n")
    _write(root, "sys/class/devfreq/17000000.gv11b/min_freq", "1109250000\n")
    _write(root, "sys/class/devfreq/17000000.gv11b/max_freq", "1109250000\n")


# --- rails -----------------------------------------------------------------------------------------------------------


def test_jetpack4_rails(tmp_path):
    nano_jp4(tmp_path)
    rails = find_rails(str(tmp_path))
    assert [r.label for r in rails] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
    assert rails[0].power_path == "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power0_input"
    assert [read_rail_mw(r, str(tmp_path)) for r in rails] == [1022.0, 0.0, 204.0]
    assert module_input(rails) == rails[0]


@pytest.mark.parametrize("hwmon", ["hwmon0", "hwmon3"])
def test_jetpack5_rails_by_label_not_index(tmp_path, hwmon):
    xavier_jp5(tmp_path, hwmon)
    rails = find_rails(str(tmp_path))
    assert [r.label for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]  # in7 and the NC channel skipped
    vdd_in = module_input(rails)
    assert vdd_in is not None and vdd_in.power_path is None
    assert read_rail_mw(vdd_in, str(tmp_path)) == pytest.approx(5000 * 813 / 1000)


def test_orin_without_module_input_rail(tmp_path):
    folder = tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    for k, label in enumerate(["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"], start=1):
        _write(folder, f"in{k}_label", label)
        _write(folder, f"in{k}_input", "5000")
        _write(folder, f"curr{k}_input", "100")
    rails = find_rails(str(tmp_path))
    assert len(rails) == 3 and module_input(rails) is None


def test_missing_or_garbled_rail_reads_none(tmp_path):
    nano_jp4(tmp_path)
    rail = find_rails(str(tmp_path))[0]
    (tmp_path / rail.power_path).write_text("not a number\n")
    assert read_rail_mw(rail, str(tmp_path)) is None
    (tmp_path / rail.power_path).unlink()
    assert read_rail_mw(rail, str(tmp_path)) is None
    assert read_rail_mw(Rail("X", None, "nowhere", None), str(tmp_path)) is None
    assert find_rails(str(tmp_path / "empty")) == []


# --- tegrastats ------------------------------------------------------------------------------------------------------


def test_tegrastats_jetpack4_form():
    assert read_tegrastats_line(NANO_SAMPLE) == {"POM_5V_IN": (1022.0, 1022.0), "POM_5V_GPU": (0.0, 0.0),
                                                 "POM_5V_CPU": (204.0, 204.0)}
    assert read_tegrastats_line(XAVIER_NX_SAMPLE)["VDD_IN"] == (4067.0, 4067.0)


def test_tegrastats_milliwatt_form():
    assert read_tegrastats_line(VOLTAGE_UNIT_SAMPLE) == {"VDD_IN": (5299.0, 5299.0), "VDD_CPU_GPU_CV": (773.0, 773.0),
                                                         "VDD_SOC": (1424.0, 1424.0)}
    assert read_tegrastats_line(R36_SAMPLE) == {"VDD_GPU_SOC": (3205.0, 3205.0), "VDD_CPU_CV": (4405.0, 4405.0),
                                                "VIN_SYS_5V0": (4767.0, 4767.0)}


def test_tegrastats_memory_fields_are_not_rails():
    assert read_tegrastats_line("RAM 534/3964MB SWAP 5/1982MB IRAM 0/252kB(lfb 252kB)") == {}


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_tegrastats_any_text(text):
    for name, (now, average) in read_tegrastats_line(text).items():
        assert name and now >= 0 and average >= 0


# --- nvpmodel, clocks, release ---------------------------------------------------------------------------------------


def test_read_nvpmodel():
    assert read_nvpmodel(NVPMODEL_5W) == ("5W", 1)
    assert read_nvpmodel(NVPMODEL_FAN) == ("MAXN", 0)
    assert read_nvpmodel("") == (None, None)


def test_nvpmodel_mode_from_status_and_conf(tmp_path):
    nano_jp4(tmp_path)
    assert nvpmodel_mode(str(tmp_path)) == ("5W", 1)
    # a Xavier NX status line as a board script writes it (index id 32206917766), no conf readable
    _write(tmp_path, "var/lib/nvpmodel/status", "pmode:0008 fmode:quiet")
    (tmp_path / "etc/nvpmodel.conf").unlink()
    assert nvpmodel_mode(str(tmp_path)) == (None, 8)
    assert nvpmodel_mode(str(tmp_path / "nothing")) == (None, None)


def test_clocks_locked(tmp_path):
    nano_jp4(tmp_path)
    assert clocks_locked(str(tmp_path)) is False
    # after jetson_clocks (index id 38734628431): GPU MinFreq=614400000 MaxFreq=614400000
    _write(tmp_path, "sys/devices/gpu.0/devfreq/57000000.gpu/min_freq", "614400000\n")
    assert clocks_locked(str(tmp_path)) is True
    assert clocks_locked(str(tmp_path / "nothing")) is None


@pytest.mark.parametrize("text, release, jetpack", [
    (NV_TEGRA_RELEASE_R32_6_1, (32, 6, 1), "4.6"),
    (NV_TEGRA_RELEASE_R32_5, (32, 5), "4.x"),
    ("# R32 (release), REVISION: 7.4, GCID: 33514132, BOARD: t210ref, EABI: aarch64, DATE: Fri Jun  9 04:25:08 UTC 2023",
     (32, 7, 4), "4.6.x (4.6.1 or later)"),  # index id 38848037198
    (NV_TEGRA_RELEASE_R36_4_4, (36, 4, 4), "6.1 or 6.2"),
])
def test_l4t_and_jetpack(tmp_path, text, release, jetpack):
    _write(tmp_path, "etc/nv_tegra_release", text)
    assert l4t_release(str(tmp_path)) == release
    assert jetpack_for(release) == jetpack


def test_jetson_facts(tmp_path):
    nano_jp4(tmp_path)
    assert jetson_facts(str(tmp_path)) == {
        "model": "NVIDIA Jetson Nano Developer Kit", "l4t": "R32.6.1",
        "jetpack": "4.6 (looked up from L4T R32.6.1)", "power_mode": "5W (nvpmodel mode 1)", "clocks": "not locked"}
    assert jetson_facts(str(tmp_path / "not-a-jetson")) == {}


def test_jetson_facts_xavier(tmp_path):
    xavier_jp5(tmp_path)
    facts = jetson_facts(str(tmp_path))
    assert facts == {"l4t": "R35.3.1", "jetpack": "5.1.1 (looked up from L4T R35.3.1)", "clocks": "locked"}


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from(["etc/nv_tegra_release", "var/lib/nvpmodel/status", "etc/nvpmodel.conf",
                                        "proc/device-tree/model", "sys/devices/gpu.0/devfreq/x/min_freq",
                                        "sys/devices/gpu.0/devfreq/x/max_freq",
                                        "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/rail_name_0",
                                        "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power0_input",
                                        "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon0/in1_label",
                                        "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon0/in1_input"]),
                       st.text(max_size=60) | st.integers().map(str) | st.just("# R99 (release), REVISION: 1.2.3"),
                       max_size=10))
def test_garbage_files_are_never_errors(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("board")
    for path, text in files.items():
        _write(root, path, text)
    jetson_facts(str(root))
    for rail in find_rails(str(root)):
        value = read_rail_mw(rail, str(root))
        assert value is None or value >= 0
    nvpmodel_mode(str(root))


def test_module_is_python38_standard_library():
    # the board's Python: a plain interpreter imports it with nothing but the standard library on its path
    source = Path(power.__file__).read_text()
    import ast
    tree = ast.parse(source, feature_version=(3, 8))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
    code = f"import runpy; m = runpy.run_path({str(power.__file__)!r}); print(m['read_nvpmodel']('NV Power Mode: MAXN\\n0'))"
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True,
                            env={"PATH": os.environ.get("PATH", "")})
    assert result.stdout.strip() == "('MAXN', 0)"
