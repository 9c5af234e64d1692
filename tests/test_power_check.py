"""The `power` check: board power and energy per inference, sampled in the worker on a board
(edgecheck/worker/power.py) and judged against `power: {power_w, energy_mj, power_mode, clocks_locked}`.

No machine here has a power sensor: the sampler's readers are fed by a meter command written by the test
(a stand-in printing made-up watts, never a board's figure) and by a sensor module of the same interface as
the INA3221 reader; the spec sessions are real pytest sessions, one of them on the localhost SSH board."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest

from edgecheck.checks.base import check_names, register_check, unregister_check
from edgecheck.checks.power import PowerBudget, PowerCheck, combine_rounds, judge_power
from edgecheck.errors import CannotJudge
from edgecheck.worker import power as sampling
from edgecheck.worker.power import PowerError, PowerRun, watts_from_text

# the power check, where this checkout's entry points are not installed yet (the installed metadata is another's)
REGISTER = """
from edgecheck.checks.base import check_names, register_check
from edgecheck.checks.power import PowerCheck

if "power" not in check_names():
    register_check(PowerCheck)
"""


@pytest.fixture
def power_registered():
    added = "power" not in check_names()
    if added:
        register_check(PowerCheck)
    yield
    if added:
        unregister_check("power")


def meter(tmp_path: Path, body: str) -> str:
    """A meter command: a STAND-IN script printing made-up watts (never a board's figure)."""
    script = tmp_path / "meter.sh"
    script.write_text("#!/bin/sh\n# stand-in power meter for edgecheck's tests: made-up figures\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


# --- reading a meter ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "watts"), [("4.2", 4.2), ("4.2 W\n", 4.2), ("note\n4200 mW", 4.2), (" 7 w", 7.0),
                                             ("1e1", 10.0)])
def test_a_meter_prints_watts_or_milliwatts(text, watts):
    assert watts_from_text(text, "m") == pytest.approx(watts)


@pytest.mark.parametrize(("text", "says"), [("", "printed nothing"), ("about four", "not a power in watts"),
                                            ("4.2 kW", "not a power in watts")])
def test_a_meter_that_prints_no_number_is_named(text, says):
    with pytest.raises(PowerError, match=says):
        watts_from_text(text, "power_command 'x'")


def _run(request: dict, window_s: float = 0.4, inferences: int = 8) -> dict:
    import time

    run = PowerRun({"idle_s": 0.3, "interval_s": 0.02, **request})
    run.idle()
    start = time.time()
    time.sleep(window_s)
    return run.finish([start, time.time()], inferences)


def test_a_meter_command_gives_idle_and_active_power_and_energy(tmp_path):
    # idle readings first (the count file is absent), then 6 W
    command = meter(tmp_path, f'f={tmp_path}/n; if [ -f "$f" ]; then echo 6; else echo 2.5 W; fi')
    run = PowerRun({"idle_s": 0.3, "interval_s": 0.02, "command": command})
    run.idle()
    (tmp_path / "n").write_text("")
    import time

    time.sleep(0.05)
    start = time.time()
    time.sleep(0.4)
    answer = run.finish([start, time.time()], 8)
    assert "error" not in answer, answer
    assert answer["source"] == f"power_command {command!r}"
    assert answer["idle_w"] == pytest.approx(2.5) and answer["active_w"] == pytest.approx(6.0)
    assert answer["samples"] >= 3 and answer["idle_samples"] >= 3
    assert answer["energy_mj"] == pytest.approx(6.0 * answer["window_s"] / 8 * 1000)
    assert answer["dynamic_energy_mj"] == pytest.approx(3.5 * answer["window_s"] / 8 * 1000)


@pytest.mark.parametrize(("body", "says"), [("echo nan", "printed 'nan', not a power in watts"),
                                            ("printf '%s\\n' -1", "not a finite positive number"),
                                            ("echo 0", "not a finite positive number"),
                                            ("exit 3", "exited with status 3"), ("echo hello", "not a power")])
def test_a_meter_that_reads_nothing_usable_says_so_and_gives_no_figure(tmp_path, body, says):
    answer = _run({"command": meter(tmp_path, body)})
    assert says in answer["error"]
    assert answer.get("active_w") is None and "energy_mj" not in answer  # never a zero


def test_a_window_shorter_than_the_readings_says_how_to_time_longer(tmp_path):
    answer = _run({"command": meter(tmp_path, "echo 3"), "interval_s": 0.2}, window_s=0.0)
    assert "no power reading fell in the timed window" in answer["error"] and "duration_s" in answer["error"]
    assert "energy_mj" not in answer


class _Rail:
    def __init__(self, label: str):
        self.label = label


def _sensor_module(monkeypatch, name: str, rails: list[str], module_input: str | None, values: dict) -> str:
    """A sensor module of the INA3221 reader's interface (find_rails, module_input, read_rail_mw)."""
    module = types.ModuleType(name)
    found = [_Rail(label) for label in rails]
    module.find_rails = lambda root="/": found  # type: ignore[attr-defined]
    module.module_input = lambda found_rails: next((r for r in found_rails if r.label == module_input), None)  # type: ignore[attr-defined]
    module.read_rail_mw = lambda rail, root="/": values[rail.label]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    return name


def test_the_module_input_rail_is_read_where_there_is_one(monkeypatch):
    name = _sensor_module(monkeypatch, "fake_rails_a", ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"], "VDD_IN",
                          {"VDD_IN": 4067.0, "VDD_CPU_GPU_CV": 738.0, "VDD_SOC": 1353.0})
    answer = _run({"sensors": ["missing_reader_module", name]})
    assert "error" not in answer, answer
    assert answer["active_w"] == pytest.approx(4.067) and answer["rails"] == ["VDD_IN"]
    assert "VDD_IN (the module's input power)" in answer["source"]


def test_without_a_module_input_rail_the_sum_is_used_and_labelled_so(monkeypatch):
    name = _sensor_module(monkeypatch, "fake_rails_b", ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"], None,
                          {"VDD_GPU_SOC": 4940.0, "VDD_CPU_CV": 988.0, "VIN_SYS_5V0": 4442.0})
    answer = _run({"sensors": [name]})
    assert answer["active_w"] == pytest.approx(10.37)
    assert answer["source"].startswith("sum of the rails VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0")
    assert "no module-input rail" in answer["source"]


def test_a_rail_that_cannot_be_read_gives_no_figure(monkeypatch):
    name = _sensor_module(monkeypatch, "fake_rails_c", ["VDD_IN"], "VDD_IN", {"VDD_IN": None})
    answer = _run({"sensors": [name]})
    assert "unreadable" in answer["error"] and answer["active_w"] is None


def test_no_sensor_and_no_meter_says_so(monkeypatch):
    name = _sensor_module(monkeypatch, "fake_rails_none", [], None, {})
    answer = PowerRun({"sensors": [name], "idle_s": 5}).finish([0.0, 1.0], 3)  # no idle wait without a source
    assert answer["source"] is None
    assert "no power sensor on this board" in answer["error"] and "power_command" in answer["error"]
    assert f"{name}: no rails" in answer["error"]
    assert sampling.power_source({})[0] is None


# --- judging ---------------------------------------------------------------------------------------------------

def _round(active: float, window: float, inferences: int, idle: float | None = 2.0) -> dict:
    return {"source": "power_command 'm'", "rails": [], "active_w": active, "idle_w": idle, "window_s": window,
            "inferences": inferences, "samples": 10}


def test_rounds_are_combined_by_energy_and_time():
    combined = combine_rounds([_round(5.0, 1.0, 100), _round(8.0, 2.0, 100)])
    assert combined["active_w"] == pytest.approx(21.0 / 3.0)
    assert combined["energy_mj"] == pytest.approx(21.0 / 200 * 1000)
    assert combined["dynamic_energy_mj"] == pytest.approx((21.0 - 2.0 * 3.0) / 200 * 1000)


@pytest.mark.parametrize(("rounds", "says"), [
    ([None], "sampled no power"),
    ([{"source": None, "error": "no power sensor on this board (x)"}], "no power sensor on this board"),
    ([_round(5.0, 1.0, 10), {**_round(5.0, 1.0, 10), "error": "3 of 9 active power readings were unreadable"}],
     "3 of 9 active power readings"),
])
def test_no_power_figure_cannot_be_judged_with_the_reason(rounds, says):
    with pytest.raises(CannotJudge, match=says):
        combine_rounds(rounds)


def test_over_budget_fails_with_the_figures_and_idle_apart():
    power = combine_rounds([_round(6.0, 2.0, 400)])
    result = judge_power(power, PowerBudget(power_w=5, energy_mj=50), "MAXN", True)
    assert result.verdict == "fail"
    breaches = "\n".join(result.breaches())
    assert "power.average = 6 W, budget <= 5 W, over by 1" in breaches
    assert "energy_per_inference" not in breaches  # 30 mJ is within 50
    figures = {m.name: m.value for m in result.measurements}
    assert figures["power.idle"] == 2.0 and figures["power.energy_above_idle"] == pytest.approx(20.0)
    assert judge_power(power, PowerBudget(power_w=7, energy_mj=31), "MAXN", True).verdict == "pass"


def test_the_power_mode_and_clocks_are_judged_and_unknown_is_never_a_pass():
    power = combine_rounds([_round(3.0, 1.0, 10)])
    budget = PowerBudget(power_w=10, power_mode="MAXN", clocks_locked=True)
    wrong = judge_power(power, budget, "5W", False)
    assert wrong.verdict == "fail"
    assert any("power mode 5W, the budget requires MAXN" in p for p in wrong.problems)
    assert any("clocks are not locked" in p and "jetson_clocks" in p for p in wrong.problems)
    unknown = judge_power(power, budget, None, None)
    assert unknown.verdict == "inconclusive" and len(unknown.doubts) == 2
    assert judge_power(power, budget, "maxn", True).verdict == "pass"


# --- the spec -------------------------------------------------------------------------------------------------

SPEC = """\
edgecheck: 1
model: {{path: ../models/clf.onnx}}
targets:
  {target}:
    backends: [onnxruntime]
    budgets:
      {budget}
"""


@pytest.mark.parametrize(("budget", "says"), [
    ("power: {power_w: -1}", "greater than 0"),
    ("power: {}", "power names no bound"),
    ("power: {power_w: yes}", "power.power_w"),
    ("power: {clocks_locked: maybe}", "power.clocks_locked"),
    ("power: {power_mode: ''}", "power.power_mode"),
    ("power: {watts: 5}", "power.watts"),
    ("power: 5", "a mapping of power bounds"),
])
def test_a_bad_power_budget_is_a_spec_error_naming_the_field(pytester, spec_project, budget, says):
    pytester.makeconftest(REGISTER)
    spec_project(SPEC.format(target="host", budget=budget))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    assert result.ret != 0
    out = result.stdout.str()
    assert "invalid spec" in out and says in out, out[-3000:]


def test_the_host_and_a_device_without_a_board_cannot_judge_power(pytester, spec_project):
    pytester.makeconftest(REGISTER)
    spec_project(SPEC.format(target="host", budget="power: {power_w: 5}"), name="host")
    spec_project(SPEC.format(target="jetson-nano", budget="power: {energy_mj: 5}"), name="nano")
    result = pytester.runpytest("specs", "-rs", "-p", "no:cacheprovider", "--edge-target", "host", "--edge-target", "jetson-nano")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*cannot judge power on the host: edgecheck samples power only on a board*"])
    result.stdout.fnmatch_lines(["*cannot judge jetson-nano power here: no jetson-nano to measure on*"])
    strict = pytester.runpytest("specs", "-p", "no:cacheprovider", "--edge-strict", "--edge-target", "host")
    strict.assert_outcomes(failed=1)


def test_the_budget_is_in_the_spec_schema(power_registered):
    from edgecheck.spec.editor import json_schema

    definitions = json_schema()["$defs"]
    power = definitions["Budgets"]["properties"]["power"]
    assert "Board power while timing" in power["description"]
    found = definitions[power["anyOf"][0]["$ref"].rsplit("/", 1)[-1]]["properties"]
    assert set(found) == {"power_w", "energy_mj", "power_mode", "clocks_locked"}


# --- the boards file's options and the label ------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value", "says"), [
    ("power_command", "''", "power_command (board 'nano-a'): Value error, give one shell command line"),
    ("power_command", '"a\\nb"', "power_command (board 'nano-a'): Value error, give one shell command line"),
    ("trtexec", "''", "trtexec (board 'nano-a'): Value error, give the path of trtexec"),
    ("power_idle_s", "-1", "power_idle_s (board 'nano-a'): Input should be greater than or equal to 0"),
])
def test_bad_board_options_are_named_with_the_file_and_board(tmp_path, field, value, says):
    from edgecheck.boards.config import BoardsError, load_boards_file

    path = tmp_path / "boards.yaml"
    path.write_text(f"boards:\n  - {{name: nano-a, device: jetson-nano, ssh: a@b, {field}: {value}}}\n")
    with pytest.raises(BoardsError) as caught:
        load_boards_file(path)
    assert str(path) in str(caught.value) and says in str(caught.value)


def test_board_options_reach_the_worker_and_the_power_request():
    from edgecheck.boards.config import Board
    from edgecheck.boards.runs import power_request

    board = Board(name="n", device="jetson-nano", ssh="a@b", trtexec="/opt/trt/bin/trtexec",
                  power_command="cat /run/watts", power_idle_s=1.5)
    assert board.run_options() == {"trtexec": "/opt/trt/bin/trtexec"}
    assert power_request(board) == {"idle_s": 1.5, "interval_s": 0.05, "command": "cat /run/watts"}
    plain = Board(name="p", device="jetson-nano", ssh="a@b")
    assert plain.run_options() == {} and "command" not in power_request(plain)


def test_a_jetsons_label_says_jetpack_tensorrt_power_mode_and_clocks():
    from edgecheck.boards.runs import _jetson_parts, jetson_state

    facts = {"jetson": {"l4t": "32.7", "nvpmodel": {"name": "5W", "id": 1}}}
    runtime = {"tensorrt": "8.2.1", "jetpack": "4.6.1 (looked up from L4T R32.7.1)", "power_mode": "MAXN (nvpmodel mode 0)",
               "clocks": "locked"}
    assert _jetson_parts(facts, runtime) == ["JetPack 4.6.1 (looked up from L4T R32.7.1)", "TensorRT 8.2.1",
                                             "power mode MAXN (nvpmodel mode 0)", "clocks locked (jetson_clocks)"]
    assert _jetson_parts(facts, {}) == ["JetPack unknown (L4T 32.7)", "power mode 5W", "clocks unknown"]
    assert jetson_state({}, {}) == {} and _jetson_parts({"cpu": {}}, {"version": "1.17"}) == []


# --- review fixes (issue 20) ----------------------------------------------------------------------------------

def test_a_zero_power_round_cannot_be_judged_never_a_pass():
    # a rail that reads 0 W (a dead sensor) would pass any power_w and energy_mj bound as 0
    with pytest.raises(CannotJudge, match="read 0 W while timing"):
        combine_rounds([_round(0.0, 1.0, 10)])


def test_a_jetsons_unlocked_clocks_fail_a_budget_that_requires_them_locked(tmp_path):
    # the facts' own words ("not locked", from power.jetson_facts) through the label state to the check
    from edgecheck.boards.runs import jetson_state
    from edgecheck.checks.power import clocks_state
    from edgecheck.vendors.tensorrt.power import jetson_facts

    gpu = tmp_path / "sys/class/devfreq/57000000.gpu"
    gpu.mkdir(parents=True)
    (gpu / "min_freq").write_text("76800000\n")
    (gpu / "max_freq").write_text("921600000\n")
    facts = jetson_facts(str(tmp_path))
    assert facts["clocks"] == "not locked"
    clocks = clocks_state(jetson_state({}, facts)["clocks"])
    assert clocks is False
    power = combine_rounds([_round(3.0, 1.0, 10)])
    result = judge_power(power, PowerBudget(clocks_locked=True), "MAXN", clocks)
    assert result.verdict == "fail" and any("clocks are not locked" in p for p in result.problems)
    (gpu / "min_freq").write_text("921600000\n")
    assert clocks_state(jetson_state({}, jetson_facts(str(tmp_path)))["clocks"]) is True
    assert clocks_state("who knows") is None


@pytest.mark.parametrize(("body", "says"), [
    ("yes 4.2", r"printed more than 64 KiB \(killed\)"),  # a meter that never stops printing: bounded memory
    ("sleep 60 & wait", r"did not finish within 1 s \(killed\)"),  # a child holding the pipe: bounded time
])
def test_a_runaway_meter_command_is_killed_with_a_reason(tmp_path, body, says):
    import time

    from edgecheck.worker.power import command_reader

    started = time.monotonic()
    with pytest.raises(PowerError, match=says):
        command_reader(meter(tmp_path, body), timeout_s=1.0)()
    assert time.monotonic() - started < 30  # not the child's 60 s: the group was killed
