"""Latency statistics: nearest-rank percentiles, their order-statistic intervals, pytest-benchmark parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecheck.checks.result import Measurement
from edgecheck.measure.stats import (
    BENCHMARK_STATS_KEYS,
    MLPERF_MIN_SAMPLES,
    LatencyStats,
    required_samples,
)

TEN = LatencyStats(np.array([7.0, 1.0, 10.0, 4.0, 2.0, 9.0, 3.0, 8.0, 6.0, 5.0]))


# --- construction ---------------------------------------------------------------------------

def test_samples_are_sorted_and_read_only() -> None:
    assert TEN.samples_ms.tolist() == [float(i) for i in range(1, 11)]
    assert TEN.samples_ms.dtype == np.float64
    with pytest.raises(ValueError):
        TEN.samples_ms[0] = 99.0


def test_from_ns_converts_to_milliseconds() -> None:
    stats = LatencyStats.from_ns([3_000_000, 1_500_000, 2_000_000])
    assert stats.samples_ms.tolist() == [1.5, 2.0, 3.0]
    assert stats.count == 3
    assert stats.min == 1.5 and stats.max == 3.0


@pytest.mark.parametrize("bad", [[], [1, -1, 2], [1.0, float("nan")], [1.0, float("inf")]])
def test_from_ns_rejects_bad_input(bad: list) -> None:
    with pytest.raises(ValueError):
        LatencyStats.from_ns(np.array(bad, dtype=np.float64))


def test_repr_leaves_out_the_samples() -> None:
    text = repr(LatencyStats(np.arange(1000.0)))
    assert "count=1000" in text
    assert len(text) < 120


# --- point statistics -----------------------------------------------------------------------

@pytest.mark.parametrize("q, expected", [
    (10, 1.0), (10.5, 2.0), (50, 5.0), (55, 6.0), (90, 9.0), (91, 10.0), (99, 10.0), (100, 10.0),
    (0.1, 1.0),
])
def test_percentile_is_nearest_rank(q: float, expected: float) -> None:
    assert TEN.percentile(q) == expected


def test_percentile_rank_is_not_thrown_off_by_rounding() -> None:
    # 0.07 * 100 is 7.000000000000001 in floating point; the nearest rank is still 7.
    stats = LatencyStats(np.arange(1.0, 101.0))
    assert stats.percentile(7) == 7.0
    assert stats.percentile(29) == 29.0
    assert LatencyStats(np.arange(1.0, 1001.0)).percentile(99.9) == 999.0


@pytest.mark.parametrize("q", [0, -5, 100.5, float("nan")])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        TEN.percentile(q)


def test_mean_std_min_max() -> None:
    assert TEN.mean == 5.5
    assert TEN.std == pytest.approx(np.std(np.arange(1, 11), ddof=1))
    assert TEN.min == 1.0 and TEN.max == 10.0
    single = LatencyStats(np.array([4.0]))
    assert single.std == 0.0 and single.mean == 4.0
    assert LatencyStats(np.full(7, 0.1)).std == 0.0


def test_summary() -> None:
    summary = TEN.summary()
    assert summary == {"p50": 5.0, "p90": 9.0, "p95": 10.0, "p99": 10.0, "mean": 5.5,
                       "std": pytest.approx(3.0276503540974917), "min": 1.0, "max": 10.0,
                       "count": 10}


# --- intervals --------------------------------------------------------------------------------

def test_interval_small_sample_values() -> None:
    # Binomial(10, 0.5): P(K <= 1) = 0.0107 <= 0.025 < P(K <= 2) = 0.0547, so l = 2 and u = 9.
    assert TEN.interval(50) == (2.0, 9.0)
    # Binomial(10, 0.9): P(K <= 6) = 0.0128 <= 0.025; P(K >= 10) = 0.349 > 0.025: no upper rank.
    assert TEN.interval(90) == (7.0, math.inf)


def test_interval_upper_side_is_infinite_when_too_few_samples_for_p99() -> None:
    stats = LatencyStats(np.random.default_rng(1).lognormal(size=100))
    low, high = stats.interval(99)
    assert high == math.inf
    assert 0.0 < low <= stats.percentile(99)
    # With MLPerf's minimum for p99 both bounds exist.
    enough = LatencyStats(np.random.default_rng(1).lognormal(size=MLPERF_MIN_SAMPLES[99.0]))
    assert math.isfinite(enough.interval(99)[1])


def test_interval_lower_side_is_zero_when_too_few_samples_for_a_low_percentile() -> None:
    # Binomial(3, 0.01): P(K = 0) = 0.970 > 0.025, so no lower rank; P(K >= 1) = 0.0297 > 0.025
    # but P(K >= 2) = 0.0003, so the upper rank is 2.
    low, high = LatencyStats(np.array([5.0, 6.0, 7.0])).interval(1)
    assert low == 0.0
    assert high == 6.0


def test_interval_widens_with_confidence() -> None:
    stats = LatencyStats(np.random.default_rng(2).lognormal(size=500))
    narrow, wide = stats.interval(90, 0.80), stats.interval(90, 0.99)
    assert wide[0] <= narrow[0] and narrow[1] <= wide[1]
    assert wide != narrow
    with pytest.raises(ValueError):
        stats.interval(90, 1.0)


def test_interval_coverage_by_simulation() -> None:
    """The 95 % interval of p90 must cover the true p90 of a lognormal in about 95 % of draws."""
    rng = np.random.default_rng(20240611)
    true_p90 = math.exp(1.2815515655446004)   # lognormal(0, 1): exp of the normal's 0.9 quantile
    draws, n = 2000, 200
    samples = rng.lognormal(mean=0.0, sigma=1.0, size=(draws, n))
    covered = 0
    for row in samples:
        low, high = LatencyStats(row).interval(90, 0.95)
        covered += low <= true_p90 <= high
    coverage = covered / draws
    # The exact coverage of these ranks is 0.967; an interval far wider than it needs is a bug too.
    assert 0.93 <= coverage <= 0.99, coverage


# --- required sample counts -------------------------------------------------------------------

@pytest.mark.parametrize("q, expected", [(50, 64), (90, 64), (95, 130), (99, 662), (99.9, 6643)])
def test_required_samples(q: float, expected: int) -> None:
    assert required_samples(q) == expected


def test_required_samples_agrees_with_mlperf() -> None:
    for q, count in MLPERF_MIN_SAMPLES.items():
        assert required_samples(q) == count


@pytest.mark.parametrize("q", [0, 100, 120])
def test_required_samples_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        required_samples(q)


# --- verdicts: a budget within the interval is inconclusive ------------------------------------

def _verdict(value: float, interval: tuple[float, float], budget: float, bound: str = "max") -> str:
    return Measurement("latency.p50", value, "ms", budget, bound, interval=interval).verdict  # type: ignore[arg-type]


def test_an_upper_bound_is_judged_on_the_whole_interval() -> None:
    assert _verdict(9.0, (8.0, 10.0), budget=10.0) == "pass"
    assert _verdict(12.0, (10.5, 13.0), budget=10.0) == "fail"
    assert _verdict(9.5, (9.0, 11.0), budget=10.0) == "inconclusive"
    assert _verdict(9.5, (9.0, math.inf), budget=10.0) == "inconclusive"  # too few samples: never a pass
    assert _verdict(11.0, (10.0, 12.0), budget=10.0) == "inconclusive"  # low == budget


def test_a_lower_bound_mirrors_it() -> None:
    assert _verdict(12.0, (10.0, 13.0), budget=10.0, bound="min") == "pass"
    assert _verdict(8.0, (7.0, 9.5), budget=10.0, bound="min") == "fail"
    assert _verdict(10.5, (9.0, 11.0), budget=10.0, bound="min") == "inconclusive"


def test_without_a_real_interval_the_value_decides() -> None:
    nan = float("nan")
    assert _verdict(9.0, (nan, nan), budget=10.0) == "pass"
    assert _verdict(11.0, (nan, 12.0), budget=10.0) == "fail"
    assert _verdict(nan, (nan, nan), budget=10.0) == "fail"  # nothing measured is never a pass


# --- pytest-benchmark parity ------------------------------------------------------------------

def _reference_stats(seconds: list[float]) -> dict:
    pb_stats = pytest.importorskip("pytest_benchmark.stats",
                                   reason="pytest-benchmark is not installed (pip install .[dev])")
    reference = pb_stats.Stats()
    for value in seconds:
        reference.update(value)
    expected = reference.as_dict()
    expected["iterations"] = 1
    return expected


def _assert_same_stats(ours: dict, expected: dict) -> None:
    assert tuple(ours) == BENCHMARK_STATS_KEYS
    assert set(ours) == set(expected)
    for key, value in expected.items():
        if isinstance(value, str):
            assert ours[key] == value, key
        else:
            assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 200, 1001])
def test_benchmark_stats_match_pytest_benchmark(n: int) -> None:
    samples_ns = np.random.default_rng(n).lognormal(mean=13.0, sigma=0.6, size=n).round()
    samples_ns[::7] *= 4.0   # a few slow outliers so that the outlier counts are not all zero
    stats = LatencyStats.from_ns(samples_ns)
    # Same data, unsorted, in seconds, as pytest-benchmark's timer loop would have recorded it.
    seconds = (samples_ns / 1e6 / 1e3).tolist()
    _assert_same_stats(stats.benchmark_stats(), _reference_stats(seconds))


def test_benchmark_stats_types_are_json_ready() -> None:
    out = LatencyStats.from_ns([1_000_000, 2_000_000, 4_000_000]).benchmark_stats()
    assert isinstance(out["rounds"], int) and isinstance(out["iterations"], int)
    assert isinstance(out["outliers"], str)
    assert all(type(v) in (int, float, str) for v in out.values())
    assert out["min"] == 0.001 and out["max"] == 0.004 and out["median"] == 0.002


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1e4, allow_nan=False), min_size=1, max_size=60))
def test_benchmark_stats_match_pytest_benchmark_on_any_data(values: list[float]) -> None:
    stats = LatencyStats(np.array(values))
    _assert_same_stats(stats.benchmark_stats(), _reference_stats((stats.samples_ms / 1e3).tolist()))


# --- properties -------------------------------------------------------------------------------

latencies = st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=300)


@settings(max_examples=150, deadline=None)
@given(latencies)
def test_order_of_statistics(values: list[float]) -> None:
    stats = LatencyStats(np.array(values))
    p50, p90, p99 = stats.percentile(50), stats.percentile(90), stats.percentile(99)
    assert stats.min <= p50 <= p90 <= p99 <= stats.max
    assert stats.min <= stats.mean * (1 + 1e-12) and stats.mean <= stats.max * (1 + 1e-12)
    assert stats.std >= 0.0


@settings(max_examples=150, deadline=None)
@given(latencies, st.sampled_from([1.0, 10.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0]),
       st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_interval_contains_point_estimate(values: list[float], q: float, confidence: float) -> None:
    stats = LatencyStats(np.array(values))
    low, high = stats.interval(q, confidence)
    assert 0.0 <= low <= stats.percentile(q) <= high
    assert low == 0.0 or low in stats.samples_ms
    assert high == math.inf or high in stats.samples_ms
