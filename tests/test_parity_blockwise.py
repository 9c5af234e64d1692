"""The blockwise parity statistics (edgecheck.checks.parity_stats) against the plain float64 formulas
they replace, on random and adversarial outputs, with blocks small enough that every output spans many."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgecheck.checks import parity_stats
from edgecheck.checks.parity import REL_FLOOR, compare_output

STATS = ("max_abs", "mean_abs", "max_rel", "rel_l2", "cosine", "snr_db")


WIDE = np.longdouble
needs_wide = pytest.mark.skipif(np.finfo(np.longdouble).maxexp <= np.finfo(np.float64).maxexp,
                                reason="long double is float64 here: no wider reference to compare with")


def formula(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """The statistics by their definitions, on whole copies: differences in float64 (as edgecheck computes
    them), every sum, norm and ratio in long double (x86's 80 bits hold any float64's square)."""
    ref = reference.astype(np.float64).ravel()
    out = candidate.astype(np.float64).ravel()
    with np.errstate(all="ignore"):
        diff = out - ref
        abs_diff = np.abs(diff)
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        floor = max(REL_FLOOR * scale, np.finfo(np.float64).tiny)
        wide_ref, wide_out, wide_diff = ref.astype(WIDE), out.astype(WIDE), diff.astype(WIDE)
        ref_norm, out_norm, diff_norm = (np.sqrt(np.sum(v * v)) for v in (wide_ref, wide_out, wide_diff))
        if ref_norm == 0 and out_norm == 0:
            cosine = 1.0
        elif ref_norm == 0 or out_norm == 0:
            cosine = 0.0
        else:
            cosine = float(np.sum(wide_ref * wide_out) / ref_norm / out_norm)
        if diff_norm == 0:
            snr = math.inf
        elif ref_norm == 0 or not np.isfinite(diff_norm):
            snr = -math.inf
        else:
            snr = float(20 * np.log10(ref_norm / diff_norm))
        return {
            "max_abs": float(abs_diff.max()) if ref.size else 0.0,
            "mean_abs": float(np.mean(abs_diff.astype(WIDE))) if ref.size else 0.0,
            "max_rel": float(np.max(abs_diff / np.maximum(np.abs(ref), floor))) if ref.size else 0.0,
            "rel_l2": float(diff_norm / ref_norm) if ref_norm else (0.0 if diff_norm == 0 else math.inf),
            "cosine": cosine,
            "snr_db": snr,
        }


def assert_same(reference: np.ndarray, candidate: np.ndarray) -> None:
    parity = compare_output("y", reference, candidate)
    expected = formula(reference, candidate)
    assert parity.problem is None
    for stat in STATS:
        got, want = getattr(parity, stat), expected[stat]
        if math.isinf(want) or (want == 0 and stat != "snr_db"):
            assert got == want, (stat, got, want)
        elif stat == "snr_db":  # a ratio of norms near 1: its logarithm near 0 is a difference of last bits
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), stat
        elif stat == "cosine":  # in [-1, 1]: its absolute error is what float64 bounds
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), stat
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-300), stat
    finite = reference[np.isfinite(reference)] if reference.dtype.kind == "f" else reference
    if reference.dtype.kind == "f" and finite.size:
        assert parity.reference_max_abs == float(np.max(np.abs(finite.astype(np.float64))))
    ref_all = reference.ndim >= 1 and reference.shape[0] > 1 and bool(np.all(reference == reference[:1]))
    assert parity.reference_constant == ref_all


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Blocks of 7 elements: every output here spans several, and the last one is partial."""
    monkeypatch.setattr(parity_stats, "BLOCK", 7)


FLOATS = st.sampled_from([np.float16, np.float32, np.float64])
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9)


@st.composite
def pairs(draw, elements=None):
    """A reference and a candidate of one shape: the candidate a perturbation of the reference, or independent."""
    dtype = draw(FLOATS)
    shape = draw(SHAPES)
    info = np.finfo(dtype)
    values = elements if elements is not None else st.floats(-float(info.max), float(info.max), allow_nan=False, allow_infinity=False,
                                   width=info.bits)
    reference = draw(hnp.arrays(dtype, shape, elements=values))
    if draw(st.booleans()):
        candidate = draw(hnp.arrays(dtype, shape, elements=values))
    else:
        noise = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e-2, 1e-2)))
        with np.errstate(all="ignore"):
            candidate = (reference.astype(np.float64) * (1 + noise)).astype(dtype)
        candidate[~np.isfinite(candidate)] = reference[~np.isfinite(candidate)]
    return reference, candidate


@needs_wide
@settings(max_examples=300)
@given(pairs())
def test_statistics_equal_the_float64_formulas_across_the_whole_range(pair):
    assert_same(*pair)


@needs_wide
@settings(max_examples=100)
@given(pairs(st.floats(-10, 10, allow_nan=False, width=16)))
def test_statistics_equal_the_float64_formulas_on_ordinary_values(pair):
    assert_same(*pair)


@needs_wide
@pytest.mark.parametrize("reference, candidate", [
    (np.full(40, 1e300), np.full(40, -1e300)),  # squares and the difference overflow float64
    # an overflowed difference in the first block, a finite one far smaller in the next (found by hypothesis:
    # rescaling inf by a factor whose square underflows to 0 gave nan)
    (np.full(8, -3.15154162e297), np.array([np.finfo(np.float64).max] + [0.0] * 7)),
    (np.full(40, 1e-300), np.full(40, 2e-300)),  # squares underflow float64
    (np.array([1e-300, 1e300] * 10), np.array([2e-300, 1e300] * 10)),  # both ends in one output
    (np.full(30, 3e38, np.float32), np.full(30, -3e38, np.float32)),  # float32's largest
    (np.full(30, 1e-45, np.float32), np.zeros(30, np.float32)),  # float32's subnormals
    (np.zeros(20, np.float32), np.zeros(20, np.float32)),
    (np.zeros(20), np.ones(20)),
    (np.ones(20), np.zeros(20)),
    (np.ones((20, 3)), np.ones((20, 3)) * 10),  # the cosine trap
    (np.arange(-10, 10, dtype=np.int64), np.arange(-10, 10, dtype=np.int64)[::-1].copy()),
    (np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max] * 5), np.zeros(10, np.int64)),
    (np.array([True, False] * 9), np.array([False, True] * 9)),
    (np.ones(15, np.float32), np.ones(15, np.float64)),  # mixed dtypes
    (np.asarray(np.float32(2.5)), np.asarray(np.float32(3.0))),  # a scalar output
    (np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32)),
    (np.random.default_rng(0).normal(size=(9, 5, 3)).astype(np.float32)[:, ::2],  # not contiguous
     np.random.default_rng(1).normal(size=(9, 5, 3)).astype(np.float32)[:, ::2]),
])
def test_statistics_equal_the_float64_formulas_on_adversarial_outputs(reference, candidate):
    assert_same(reference, candidate)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("where", [0, 6, 7, 33, 39])  # first, block end, block start, middle, last
def test_nonfinite_values_are_counted_and_placed_across_blocks(dtype, where):
    reference = np.arange(40, dtype=dtype).reshape(8, 5)
    candidate = reference.copy()
    candidate.flat[where] = np.nan
    candidate.flat[39 - where] = np.inf
    place = [int(i) for i in np.unravel_index(min(where, 39 - where), reference.shape)]
    parity = compare_output("y", reference, candidate)
    assert parity.nonfinite == 2 and parity.reference_nonfinite == 0
    assert f"first at sample {place[0]}, index {place}" in parity.problem
    assert all(math.isnan(getattr(parity, stat)) for stat in STATS)

    broken = reference.copy()
    broken.flat[where] = -np.inf
    parity = compare_output("y", broken, candidate)
    assert parity.reference_nonfinite == 1
    assert parity.nonfinite == 1  # the candidate's NaN where the reference is -inf is the reference's problem
    assert f"first at sample {where // 5}, index {[where // 5, where % 5]}: parity cannot be judged" in parity.problem
    finite = np.delete(reference.ravel(), where).astype(np.float64)
    assert parity.reference_max_abs == float(np.max(np.abs(finite)))


def test_a_sample_that_differs_late_is_not_constant():
    reference = np.ones((50, 3), np.float32)
    assert compare_output("y", reference, reference).reference_constant
    reference[49, 2] = 2
    assert not compare_output("y", reference, reference).reference_constant


def test_top1_and_topk_are_unchanged_by_blocks():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(20, 6)).astype(np.float32)
    candidate = reference + rng.normal(scale=0.5, size=reference.shape).astype(np.float32)
    parity = compare_output("scores", reference, candidate, k=3)
    assert parity.top1_agreement == float(np.mean(reference.argmax(1) == candidate.argmax(1)))
    assert parity.k == 3 and 0 <= parity.topk_agreement <= 1
