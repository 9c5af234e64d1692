"""Parity statistics, accuracy judgement and measurements, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgecheck.checks.accuracy import judge_accuracy, topk_accuracy
from edgecheck.checks.parity import compare_output, compare_outputs, judge_parity
from edgecheck.checks.result import CheckResult, Measurement, fmt
from edgecheck.spec import Budgets, ParityBudget

STATS = ("max_abs", "mean_abs", "max_rel", "rel_l2", "cosine", "snr_db")


def _by_name(result: CheckResult) -> dict[str, Measurement]:
    return {m.name: m for m in result.measurements}


def _compare(*args, **kwargs):
    """compare_output with every floating-point warning turned into an error around the call."""
    with np.errstate(all="raise"):
        return compare_output(*args, **kwargs)


# ---------------------------------------------------------------- compare_output


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_identical_outputs(dtype):
    ref = np.random.default_rng(0).normal(size=(5, 7)).astype(dtype)
    parity = _compare("y", ref, ref.copy())
    assert parity.max_abs == 0 and parity.mean_abs == 0 and parity.max_rel == 0
    assert parity.rel_l2 == 0
    assert parity.cosine == pytest.approx(1.0)
    assert parity.snr_db == math.inf
    assert parity.top1_agreement == 1.0
    assert parity.nonfinite == 0 and parity.problem is None
    assert parity.elements == 35


def test_hand_computed_values():
    ref = np.array([[3.0, 4.0]], np.float32)
    out = np.array([[3.0, 5.0]], np.float32)
    parity = _compare("y", ref, out)
    # diff = [0, 1]; ||ref|| = 5; ||out|| = sqrt(34); ||diff|| = 1
    assert parity.max_abs == pytest.approx(1.0)
    assert parity.mean_abs == pytest.approx(0.5)
    assert parity.max_rel == pytest.approx(0.25)  # 1 / |4|
    assert parity.rel_l2 == pytest.approx(0.2)  # 1 / 5
    assert parity.cosine == pytest.approx((9 + 20) / (5 * math.sqrt(34)))
    assert parity.snr_db == pytest.approx(20 * math.log10(5 / 1))
    assert parity.top1_agreement == 1.0


def test_hand_computed_values_on_a_vector():
    ref = np.array([1.0, -2.0, 2.0, 0.5])
    out = np.array([1.5, -2.0, 1.0, 0.5])
    parity = _compare("v", ref, out)
    diff = out - ref  # [0.5, 0, -1, 0]
    assert parity.max_abs == pytest.approx(1.0)
    assert parity.mean_abs == pytest.approx(1.5 / 4)
    assert parity.max_rel == pytest.approx(0.5)  # 0.5/1 and 1/2
    assert parity.rel_l2 == pytest.approx(np.linalg.norm(diff) / np.linalg.norm(ref))
    assert parity.snr_db == pytest.approx(20 * math.log10(np.linalg.norm(ref) / np.linalg.norm(diff)))
    assert parity.cosine == pytest.approx(ref @ out / (np.linalg.norm(ref) * np.linalg.norm(out)))
    assert parity.top1_agreement is None  # 1-D: not class scores


def test_statistics_are_computed_in_float64():
    ref = np.full((2, 3), 1e20, np.float32)  # squares overflow float32
    parity = _compare("big", ref, ref * np.float32(1.001))
    assert parity.rel_l2 == pytest.approx(0.001, rel=1e-3)
    assert parity.cosine == pytest.approx(1.0)
    assert math.isfinite(parity.snr_db)


def test_ten_times_scale_error_is_the_cosine_trap():
    ref = np.random.default_rng(1).normal(size=(8, 10)).astype(np.float32)
    parity = _compare("y", ref, ref * 10)
    assert parity.cosine == pytest.approx(1.0, abs=1e-6)
    assert parity.rel_l2 == pytest.approx(9.0, rel=1e-5)
    assert parity.snr_db == pytest.approx(20 * math.log10(1 / 9), rel=1e-5)
    assert parity.top1_agreement == 1.0

    cosine_only = judge_parity([parity], ParityBudget(cosine=0.999))
    assert cosine_only.passed
    assert len(cosine_only.notes) == 1
    assert "ignores scale" in cosine_only.notes[0] and "rel_l2 here is 9" in cosine_only.notes[0]

    # of several outputs, the note names the one its figure is (a new user read a logits figure that was not)
    other = _compare("logits", ref, ref * 1.5)
    two = judge_parity([other, parity], ParityBudget(cosine=0.999))
    assert "rel_l2 here is 9" in two.notes[0] and "(output 'y', the largest)" in two.notes[0]

    with_rel_l2 = judge_parity([parity], ParityBudget(cosine=0.999, rel_l2=0.1))
    assert not with_rel_l2.passed
    assert with_rel_l2.notes == []
    breach = _by_name(with_rel_l2)["parity.y.rel_l2"]
    assert not breach.passed and breach.margin == pytest.approx(0.1 - 9.0, rel=1e-5)
    assert any(line.startswith("parity.y.rel_l2 = 9") and "(rel_l2)" in line for line in with_rel_l2.breaches())




@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_candidate_is_a_problem_and_a_failure(bad):
    ref = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    out = ref.copy()
    out[1, 2] = bad
    parity = _compare("y", ref, out)
    assert parity.nonfinite == 1
    assert "1 NaN/Inf" in parity.problem and "'y'" in parity.problem
    for stat in STATS:
        assert math.isnan(getattr(parity, stat)), stat
    result = judge_parity([parity], ParityBudget(atol=1e9))
    assert not result.passed
    assert parity.problem in result.problems
    assert not _by_name(result)["parity.y.max_abs"].passed  # NaN never passes, however loose the budget


def test_huge_finite_error_does_not_crash():
    parity = _compare("y", np.ones(4), np.full(4, 1e200))
    assert parity.problem is None
    assert parity.snr_db < -1000 and parity.max_abs == pytest.approx(1e200)  # about -4000 dB, or -inf
    assert not judge_parity([parity], ParityBudget(snr_db=0.0)).passed


def test_nonfinite_reference_values_are_never_left_out_they_fail_with_count_and_place():
    ref = np.array([[1.0, 2.0], [np.nan, 3.0], [np.inf, 4.0]])
    out = np.array([[1.0, 2.0], [7.0, 3.5], [0.0, 4.0]])
    parity = _compare("y", ref, out)
    assert parity.reference_nonfinite == 2 and parity.nonfinite == 0
    assert "the reference (the original model) gives 2 NaN/Inf values of 6 in output 'y', first at sample 1, " \
           "index [1, 0]: parity cannot be judged" in parity.problem
    for stat in STATS:  # no statistic is computed over what is left
        assert math.isnan(getattr(parity, stat)), stat
    assert math.isnan(parity.top1_agreement)
    result = judge_parity([parity], ParityBudget(rel_l2=1e9, top1_agreement=0.0))
    assert not result.passed and parity.problem in result.problems
    assert _by_name(result)["parity.y.reference_nonfinite"].value == 2


def test_half_the_samples_nan_in_the_reference_no_longer_gives_a_pass():
    """The issue's case: NaN rows dropped gave rel_l2 0.013, cosine 0.9999 and a pass."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(32, 10))
    ref[::2] = np.nan
    out = ref * 1.01
    result = judge_parity([_compare("scores", ref, out)], ParityBudget(rel_l2=0.1, cosine=0.99))
    assert result.verdict == "fail"
    assert any("gives 160 NaN/Inf values of 320" in p for p in result.problems)


def test_nan_in_both_at_the_same_place_is_still_reported():
    ref = np.array([1.0, np.nan])
    parity = _compare("y", ref, ref.copy())
    assert parity.reference_nonfinite == 1 and parity.problem


def test_candidate_nan_problem_says_where():
    ref = np.zeros((4, 3))
    out = ref.copy()
    out[2, 1] = np.nan
    assert "first at sample 2, index [2, 1]" in _compare("y", ref, out).problem


def test_near_zero_reference_on_synthetic_inputs_is_inconclusive_not_a_pass():
    ref = np.full((8, 4), 3e-9, np.float32)
    out = ref * 2
    parity = _compare("boxes", ref, out)
    on_noise = judge_parity([parity], ParityBudget(rel_l2=2.0), synthetic=True)
    assert on_noise.verdict == "inconclusive"
    assert any("not meaningful" in n and "data.parity" in n for n in on_noise.notes)
    assert any(b.startswith("inconclusive: on synthetic inputs the reference's output 'boxes' is at most 3")
               for b in on_noise.breaches())
    assert judge_parity([parity], ParityBudget(rel_l2=2.0), synthetic=False).verdict == "pass"  # real data: judged
    big = _compare("boxes", ref + 1, out + 1)
    assert judge_parity([big], ParityBudget(rel_l2=2.0), synthetic=True).verdict == "pass"
    ints = _compare("label", np.zeros(4, np.int64), np.zeros(4, np.int64))  # class 0 is an answer, not noise
    assert judge_parity([ints], ParityBudget(rel_l2=2.0), synthetic=True).verdict == "pass"


def test_shape_mismatch_is_a_problem_not_an_exception():
    ref = np.zeros((2, 3), np.float32)
    parity = _compare("y", ref, np.zeros((3, 2), np.float32))
    assert "shape [3, 2], the reference [2, 3]" in parity.problem
    assert all(math.isnan(getattr(parity, stat)) for stat in STATS)
    result = judge_parity([parity], ParityBudget(rel_l2=1.0))
    assert not result.passed and parity.problem in result.problems


def test_missing_output_is_a_problem_not_an_exception():
    ref = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}
    outputs = compare_outputs(ref, {"a": np.ones((2, 3), np.float32), "c": np.ones(1)})
    assert [p.name for p in outputs] == ["a", "b"]
    assert outputs[0].problem is None and outputs[0].max_abs == 0
    assert outputs[1].problem == "the artifact has no output 'b' (outputs: a, c)"
    assert compare_outputs(ref, {})[0].problem == "the artifact has no output 'a' (outputs: none)"
    result = judge_parity(outputs, ParityBudget(atol=1.0))
    assert not result.passed
    assert outputs[1].problem in result.problems
    assert _by_name(result)["parity.a.max_abs"].passed


def test_extra_candidate_outputs_are_ignored():
    ref = {"a": np.ones((2, 3), np.float32)}
    outputs = compare_outputs(ref, {"a": np.ones((2, 3), np.float32), "extra": np.zeros(3)})
    assert [p.name for p in outputs] == ["a"]
    assert judge_parity(outputs, ParityBudget(atol=0.0)).passed


def test_top1_and_topk_agreement_hand_computed():
    ref = np.array([[0.9, 0.5, 0.1, 0.0],
                    [0.1, 0.2, 0.3, 0.4],
                    [0.4, 0.3, 0.2, 0.1]], np.float32)
    out = np.array([[0.9, 0.1, 0.5, 0.0],   # top1 same (0); top2 {0,1} vs {0,2}: 1/2
                    [0.4, 0.3, 0.2, 0.1],   # top1 3 vs 0; top2 {3,2} vs {0,1}: 0
                    [0.4, 0.3, 0.2, 0.1]], np.float32)  # identical: 1
    parity = _compare("scores", ref, out, k=2)
    assert parity.top1_agreement == pytest.approx(2 / 3)
    assert parity.topk_agreement == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert parity.k == 2
    top3 = _compare("scores", ref, out, k=3)
    # top3 {0,1,2} vs {0,2,1}: 1; {3,2,1} vs {0,1,2}: 2/3; identical: 1
    assert top3.topk_agreement == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert _compare("scores", ref, out).topk_agreement is None


def test_topk_larger_than_the_classes_is_clamped():
    ref = np.array([[1.0, 2.0], [2.0, 1.0]], np.float32)
    parity = _compare("s", ref, ref[:, ::-1].copy(), k=5)
    assert parity.top1_agreement == 0.0
    assert parity.topk_agreement == 1.0


def test_agreement_budgets_are_judged():
    ref = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]], np.float32)
    out = ref.copy()
    out[0] = [2.0, 3.0, 1.0]  # argmax changes; the top-2 set {0, 1} stays
    out[1] = [3.0, 2.0, 1.0]  # argmax changes; top-2 {2, 1} -> {0, 1}: overlap 1/2
    outputs = compare_outputs({"s": ref}, {"s": out}, k=2)
    result = judge_parity(outputs, ParityBudget(top1_agreement=0.6, topk_agreement={"k": 2, "min": 0.85}))
    measured = _by_name(result)
    top1 = measured["parity.s.top1_agreement"]
    assert top1.value == 0.5 and top1.bound == "min" and top1.budget == 0.6
    assert not top1.passed and top1.margin == pytest.approx(-0.1)
    assert top1.budget_desc() == ">= 0.6 (top1_agreement)"
    top2 = measured["parity.s.top2_overlap"]
    assert top2.value == pytest.approx((1 + 0.5 + 1 + 1) / 4) and top2.budget == 0.85 and top2.passed
    assert not result.passed
    loose = judge_parity(outputs, ParityBudget(top1_agreement=0.5, topk_agreement={"k": 2, "min": 0.875}))
    assert loose.passed


def test_topk_agreement_with_k_1_does_not_collide_with_top1():
    ref = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    result = judge_parity(compare_outputs({"s": ref}, {"s": ref}, k=1),
                          ParityBudget(top1_agreement=0.5, topk_agreement={"k": 1, "min": 0.9}))
    names = [m.name for m in result.measurements]
    assert len(names) == len(set(names))


def test_agreement_budget_on_an_output_that_is_not_class_scores_is_a_problem():
    outputs = compare_outputs({"v": np.ones(4)}, {"v": np.ones(4)}, k=2)
    result = judge_parity(outputs, ParityBudget(top1_agreement=0.9, topk_agreement={"k": 2, "min": 0.5}))
    assert not result.passed
    assert any("top1_agreement needs class scores" in p for p in result.problems)
    assert any("topk_agreement needs class scores" in p for p in result.problems)


def test_zero_reference():
    zeros = np.zeros((2, 3), np.float32)
    same = _compare("z", zeros, zeros.copy())
    assert (same.max_abs, same.rel_l2, same.cosine, same.snr_db) == (0.0, 0.0, 1.0, math.inf)
    off = _compare("z", zeros, np.ones((2, 3), np.float32))
    assert off.max_abs == 1.0 and off.mean_abs == 1.0
    assert off.rel_l2 == math.inf and off.snr_db == -math.inf and off.cosine == 0.0
    assert off.max_rel > 1e300 and not math.isnan(off.max_rel)
    assert not judge_parity([off], ParityBudget(rel_l2=1.0)).passed
    assert not judge_parity([off], ParityBudget(rtol=1.0)).passed
    assert judge_parity([same], ParityBudget(rel_l2=0.0, rtol=0.0, snr_db=100, cosine=1.0)).passed


def test_zero_candidate_and_mixed_zero_reference():
    ref = np.array([0.0, 2.0, 0.0, -2.0])
    off = _compare("z", ref, np.zeros(4))
    assert off.cosine == 0.0 and off.rel_l2 == pytest.approx(1.0) and off.snr_db == pytest.approx(0.0)
    near = _compare("z", ref, np.array([1e-9, 2.0, 0.0, -2.0]))
    assert near.max_rel == pytest.approx(1e-9 / (1e-6 * 2.0))  # zeros divide by REL_FLOOR * max|ref|


def test_empty_outputs():
    empty = np.zeros((0, 3), np.float32)
    parity = _compare("e", empty, empty.copy(), k=2)
    assert parity.problem is None and parity.max_abs == 0 and parity.top1_agreement == 1.0


def test_integer_and_bool_outputs():
    ints = _compare("i", np.array([1, 2, 3], np.int64), np.array([1, 2, 4], np.int64))
    assert ints.max_abs == 1.0 and ints.top1_agreement is None
    flags = _compare("b", np.array([True, False]), np.array([True, False]))
    assert flags.max_abs == 0.0


def test_every_statistic_is_recorded_and_only_budgeted_ones_judged():
    ref = np.array([[1.0, 2.0]], np.float32)
    result = judge_parity(compare_outputs({"y": ref}, {"y": ref + 0.5}), ParityBudget(atol=0.1))
    measured = _by_name(result)
    assert set(measured) == {f"parity.y.{s}" for s in (*STATS, "top1_agreement")}
    assert [m.name for m in result.measurements if m.judged] == ["parity.y.max_abs"]
    assert measured["parity.y.max_abs"].budget_desc() == "<= 0.1 (atol)"
    assert measured["parity.y.snr_db"].unit == "dB"
    assert not result.passed
    assert result.breaches() == ["parity.y.max_abs = 0.5, budget <= 0.1 (atol), over by 0.4"]


def test_min_bounds_are_judged_as_minimums():
    ref = np.array([3.0, 4.0])
    parity = [_compare("v", ref, np.array([3.0, 5.0]))]  # snr 13.98 dB, cosine 0.9947
    assert judge_parity(parity, ParityBudget(snr_db=13.9, cosine=0.99)).passed
    failing = judge_parity(parity, ParityBudget(snr_db=14.0))
    assert not failing.passed
    assert _by_name(failing)["parity.v.snr_db"].budget_desc() == ">= 14 dB (snr_db)"


# ---------------------------------------------------------------- accuracy


def test_topk_accuracy_hand_computed():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = np.array([1, 1, 0, 2])
    assert topk_accuracy(scores, labels, 1) == pytest.approx(25.0)  # only sample 0
    assert topk_accuracy(scores, labels, 2) == pytest.approx(50.0)  # samples 0 and 1
    assert topk_accuracy(scores, labels, 3) == pytest.approx(100.0)
    assert topk_accuracy(scores, labels.reshape(-1, 1), 1) == pytest.approx(25.0)
    assert math.isnan(topk_accuracy(np.zeros((0, 3)), np.zeros(0, np.int64), 1))


def test_accuracy_drop_in_points():
    result = judge_accuracy(98.0, 96.5, "%", True, Budgets(accuracy_drop=1.0, accuracy_min=95))
    measured = _by_name(result)
    assert measured["accuracy"].value == 96.5 and measured["accuracy"].passed and measured["accuracy"].bound == "min"
    assert measured["accuracy.original"].value == 98.0 and not measured["accuracy.original"].judged
    drop = measured["accuracy_drop"]
    assert drop.value == pytest.approx(1.5) and drop.unit == "pts" and drop.budget == 1.0 and not drop.passed
    assert drop.budget_desc() == "<= 1 pts"
    relative = measured["accuracy_drop_relative"]
    assert relative.value == pytest.approx(1.5 / 98 * 100) and not relative.judged  # measured, not judged
    assert not result.passed and result.notes == []


def test_accuracy_drop_relative():
    # 90 -> 89.5 is 0.5 points but 0.556 % of the original: a '0.5%' budget fails, '0.6%' passes
    failing = judge_accuracy(90.0, 89.5, "%", True, Budgets(accuracy_drop="0.5%"))
    measured = _by_name(failing)
    assert not measured["accuracy_drop"].judged and measured["accuracy_drop"].value == pytest.approx(0.5)
    assert measured["accuracy_drop_relative"].value == pytest.approx(0.5 / 90 * 100)
    assert measured["accuracy_drop_relative"].budget_desc() == "<= 0.5%"
    assert not failing.passed
    assert judge_accuracy(90.0, 89.5, "%", True, Budgets(accuracy_drop="0.6%")).passed
    assert judge_accuracy(90.0, 89.5, "%", True, Budgets(accuracy_drop=0.5)).passed  # 0.5 pts exactly


def test_lower_is_better_metric():
    # mse 0.10 -> 0.12: a drop of 0.02 (an increase), 20 % relative
    result = judge_accuracy(0.10, 0.12, "", False, Budgets(accuracy_drop=0.01, accuracy_max=0.2))
    measured = _by_name(result)
    assert measured["accuracy_drop"].value == pytest.approx(0.02) and not measured["accuracy_drop"].passed
    assert measured["accuracy_drop_relative"].value == pytest.approx(20.0)
    assert measured["accuracy"].bound == "max" and measured["accuracy"].passed
    assert any("lower is better" in note for note in result.notes)
    improved = judge_accuracy(0.10, 0.08, "", False, Budgets(accuracy_drop=0.0, accuracy_max=0.09))
    assert improved.passed and _by_name(improved)["accuracy_drop"].value == pytest.approx(-0.02)
    too_high = judge_accuracy(0.10, 0.10, "", False, Budgets(accuracy_max=0.09))
    assert not too_high.passed


def test_accuracy_min_is_ignored_for_lower_is_better_and_max_for_higher():
    assert judge_accuracy(0.1, 0.5, "", False, Budgets(accuracy_min=1.0)).passed
    assert judge_accuracy(90.0, 95.0, "%", True, Budgets(accuracy_max=1.0)).passed


def test_zero_original_metric():
    # no change from 0 is no share of anything: cannot judge (inconclusive), never a pass
    same = judge_accuracy(0.0, 0.0, "", False, Budgets(accuracy_drop="1%"))
    assert _by_name(same)["accuracy_drop_relative"].value == 0.0 and same.verdict == "inconclusive"
    assert "a drop relative to 0 means nothing" in _by_name(same)["accuracy_drop_relative"].cannot_judge
    worse = _by_name(judge_accuracy(0.0, 0.5, "", False, Budgets(accuracy_drop="1%")))
    assert worse["accuracy_drop_relative"].value == math.inf and not worse["accuracy_drop_relative"].passed


def test_nan_candidate_accuracy_fails_every_judged_budget():
    result = judge_accuracy(90.0, math.nan, "%", True, Budgets(accuracy_drop=100.0, accuracy_min=0.0))
    assert not result.passed
    assert {m.name for m in result.measurements if not m.passed} == {"accuracy", "accuracy_drop"}


# ---------------------------------------------------------------- Measurement


@pytest.mark.parametrize("value, budget, bound, passed, margin", [
    (1.0, 2.0, "max", True, 1.0),
    (2.0, 2.0, "max", True, 0.0),
    (3.0, 2.0, "max", False, -1.0),
    (3.0, 2.0, "min", True, 1.0),
    (2.0, 2.0, "min", True, 0.0),
    (1.0, 2.0, "min", False, -1.0),
    (math.inf, 2.0, "max", False, -math.inf),
    (math.inf, 2.0, "min", True, math.inf),
])
def test_measurement_margin_and_passed(value, budget, bound, passed, margin):
    m = Measurement("x", value, "", budget, bound)
    assert m.judged and m.passed is passed and m.margin == margin


@pytest.mark.parametrize("bound", ["max", "min"])
@pytest.mark.parametrize("budget", [0.0, 1e300, math.inf, -math.inf, math.nan])
def test_nan_never_passes(bound, budget):
    m = Measurement("x", math.nan, "", budget, bound)
    assert m.passed is False
    assert CheckResult("c", [m]).passed is False


@pytest.mark.parametrize("bound", ["max", "min"])
def test_nan_budget_never_passes(bound):
    assert Measurement("x", 1.0, "", math.nan, bound).passed is False


def test_unjudged_measurement():
    m = Measurement("x", 5.0, "MiB")
    assert not m.judged and m.passed and m.margin is None and m.budget_desc() == ""
    assert m.value_text() == "5 MiB"
    assert not Measurement("x", 5.0, "", 1.0, None).judged  # a budget without a bound is not judged


def test_check_result_pass_breaches_and_headline():
    ok_far = Measurement("far", 1.0, "", 10.0, "max")
    ok_near = Measurement("near", 9.5, "", 10.0, "max")
    result = CheckResult("c", [ok_far, ok_near, Measurement("free", 99.0)])
    assert result.passed and result.breaches() == []
    assert result.headline() is ok_far  # passing: the first judged figure, in the check's own order
    bad = Measurement("bad", 12.0, "MiB", 10.0, "max", budget_text="10 MiB")
    worse = Measurement("worse", 0.5, "", 1.0, "min")  # 50 % short of its budget, against 20 % over
    result.measurements += [bad, worse]
    assert not result.passed
    assert result.headline() is worse  # failing: the worst breach relative to its budget
    assert result.breaches() == ["bad = 12 MiB, budget <= 10 MiB, over by 2", "worse = 0.5, budget >= 1, short by 0.5"]
    assert CheckResult("c", problems=["broken"]).passed is False
    assert CheckResult("c").headline() is None


@pytest.mark.parametrize("value, text", [
    (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"), (0.0, "0"), (1.0, "1"), (9.0, "9"),
    (1.23456, "1.2346"), (0.5, "0.5"), (1e-5, "1.000e-05"), (2e6, "2.000e+06"), (100.0, "100"),
])
def test_fmt(value, text):
    assert fmt(value) == text


def test_the_cosine_of_identical_or_opposite_outputs_stays_within_one():
    # seed 4: the scaled sums round so that products / ref / out came out 1.0000000000000002
    ref = np.random.default_rng(4).standard_normal(1000).astype(np.float32)
    assert _compare("y", ref, ref.copy()).cosine == 1.0
    assert _compare("y", ref, -ref).cosine == -1.0
    for seed in range(50):
        ref = np.random.default_rng(seed).standard_normal(1000).astype(np.float32)
        assert -1.0 <= _compare("y", ref, ref * np.float32(-0.5)).cosine <= 1.0
