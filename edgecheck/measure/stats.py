"""Latency statistics, kept apart from the timing loop and from storage (as pytest-benchmark does).

Percentiles use the nearest-rank definition MLPerf reports, and their confidence intervals come
from order statistics and the exact binomial distribution, so they hold for any latency
distribution (latencies are skewed and heavy-tailed; normal approximations do not fit them).
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

# MLPerf inference's early-stopping minimum query counts for its tail-latency percentiles.
MLPERF_MIN_SAMPLES: dict[float, int] = {90.0: 64, 99.0: 662}

# The chance that none of n samples lies above the true q-quantile is q**n; MLPerf's minimums
# keep it near 0.0013 (0.9**64 and 0.99**662), and the same rule gives the count for other q.
_MISS_CHANCE = 0.0013
# Fewer samples than this make mean and standard deviation too noisy to report, whatever q is.
_FLOOR_SAMPLES = 64


# The keys of pytest-benchmark's (5.x) "stats" object, in the order it writes them.
BENCHMARK_STATS_KEYS: tuple[str, ...] = (
    "min", "max", "mean", "stddev", "rounds", "median", "iqr", "q1", "q3", "iqr_outliers",
    "stddev_outliers", "outliers", "ld15iqr", "hd15iqr", "ops", "total", "iterations",
)


def required_samples(percentile: float) -> int:
    """Fewest samples for a `percentile` estimate to mean anything.

    MLPerf's 64 for p90 and 662 for p99; for other percentiles the rule those come from,
    ceil(ln(0.0013) / ln(q)), and never fewer than 64 so that mean and std are meaningful too
    (p50 -> 64, p95 -> 130).
    """
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must lie in (0, 100), got {percentile!r}")
    if percentile in MLPERF_MIN_SAMPLES:
        return MLPERF_MIN_SAMPLES[percentile]
    needed = math.ceil(math.log(_MISS_CHANCE) / math.log(percentile / 100.0))
    return max(_FLOOR_SAMPLES, needed)


def _nearest_rank(q: float, n: int) -> int:
    """1-based nearest rank ceil(q/100 * n); rounded first so that 0.07 * 100 is rank 7, not 8."""
    return min(n, max(1, math.ceil(round(q * n / 100.0, 9))))


def _check_q(q: float) -> float:
    value = float(q)
    if not 0.0 < value <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], got {q!r}")
    return value


@lru_cache(maxsize=256)
def _order_ranks(n: int, q: float, confidence: float) -> tuple[int, int]:
    """1-based ranks (l, u) with P(X_(l) <= true q-quantile <= X_(u)) >= confidence.

    The count K of samples at or below the true quantile is Binomial(n, q/100); X_(l) lies at or
    below the quantile when K >= l and X_(u) at or above it when K < u. Each tail gets half of
    1 - confidence. 0 means no lower rank exists, n + 1 that no upper rank exists.
    """
    p = q / 100.0
    tail = (1.0 - confidence) / 2.0
    k = np.arange(n + 1, dtype=np.float64)
    log_fact = np.array([math.lgamma(i + 1.0) for i in range(n + 1)])
    log_choose = log_fact[n] - log_fact - log_fact[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = math.log(p)
        log_not_p = math.log1p(-p) if p < 1.0 else -math.inf
        # 0 * log(0) is 0 here (all n samples at or below the quantile when p == 1).
        below = np.where(k == 0, 0.0, k * log_p)
        above = np.where(k == n, 0.0, (n - k) * log_not_p)
    pmf = np.exp(log_choose + below + above)
    cdf = np.cumsum(pmf)                      # P(K <= k)
    sf = np.cumsum(pmf[::-1])[::-1]           # P(K >= k), summed from the small end
    lower = int(np.searchsorted(cdf, tail, side="right"))   # largest l with P(K <= l-1) <= tail
    fits = np.flatnonzero(sf[1:] <= tail)                   # u with P(K >= u) <= tail, u >= 1
    upper = int(fits[0]) + 1 if fits.size else n + 1
    return lower, upper


@dataclass(frozen=True, eq=False)
class LatencyStats:
    """Latency samples in milliseconds, sorted, with the statistics budgets are judged on."""

    samples_ms: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        data = np.array(self.samples_ms, dtype=np.float64).ravel()
        if data.size == 0:
            raise ValueError("no latency samples")
        if not np.all(np.isfinite(data)):
            raise ValueError("latency samples must be finite")
        if np.any(data < 0):
            raise ValueError("latency samples must not be negative")
        data.sort()
        data.setflags(write=False)
        object.__setattr__(self, "samples_ms", data)

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int] | np.ndarray) -> LatencyStats:
        """From timer readings in nanoseconds (time.perf_counter_ns), the unit timing loops take."""
        return cls(np.asarray(samples_ns, dtype=np.float64) / 1e6)

    def __repr__(self) -> str:
        return (f"LatencyStats(count={self.count}, p50={self.percentile(50):.4g} ms, "
                f"p99={self.percentile(99):.4g} ms, max={self.max:.4g} ms)")

    @property
    def count(self) -> int:
        return int(self.samples_ms.size)

    @cached_property
    def mean(self) -> float:
        return statistics.fmean(self.samples_ms.tolist())

    @cached_property
    def std(self) -> float:
        """Sample standard deviation (ddof=1); 0.0 for a single sample."""
        if self.count < 2:
            return 0.0
        return statistics.stdev(self.samples_ms.tolist())

    @property
    def min(self) -> float:
        return float(self.samples_ms[0])

    @property
    def max(self) -> float:
        return float(self.samples_ms[-1])

    def percentile(self, q: float) -> float:
        """Nearest-rank q-th percentile (sorted[ceil(q/100 * n) - 1]), what MLPerf reports."""
        q = _check_q(q)
        return float(self.samples_ms[_nearest_rank(q, self.count) - 1])

    def interval(self, q: float, confidence: float = 0.95) -> tuple[float, float]:
        """Distribution-free confidence interval of the q-th percentile, in ms.

        Bounds are order statistics whose ranks come from the exact Binomial(n, q/100), so the
        interval covers the true percentile with at least `confidence` whatever the distribution.
        When the sample is too small for a bound to exist the upper side is math.inf (nothing
        measured rules out any tail) and the lower side 0.0 (latencies are never negative).
        """
        q = _check_q(q)
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
        lower, upper = _order_ranks(self.count, q, float(confidence))
        low = float(self.samples_ms[lower - 1]) if lower >= 1 else 0.0
        high = float(self.samples_ms[upper - 1]) if upper <= self.count else math.inf
        return low, high

    def summary(self) -> dict[str, float]:
        """The figures a report shows, in ms, plus the sample count."""
        return {
            "p50": self.percentile(50), "p90": self.percentile(90), "p95": self.percentile(95),
            "p99": self.percentile(99), "mean": self.mean, "std": self.std,
            "min": self.min, "max": self.max, "count": self.count,
        }

    def benchmark_stats(self) -> dict[str, float | int | str]:
        """pytest-benchmark's (5.x) "stats" object, in seconds, defined as its stats.Stats does.

        So that its `compare` command and dashboards that read its JSON read these figures; the
        stdlib `statistics` calls are the ones it uses, so the numbers agree to the last digit.
        """
        data = (self.samples_ms / 1e3).tolist()   # sorted; every figure below is order-free
        n = len(data)
        mean = statistics.mean(data)
        stddev = statistics.stdev(data) if n > 1 else 0
        q1, q3 = _quartiles(data)
        iqr = q3 - q1
        low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
        ld15iqr = data[bisect_left(data, low_fence)]
        hd15iqr = data[bisect_right(data, high_fence) - 1]
        iqr_outliers = sum(1 for v in data if v < low_fence or v > high_fence)
        stddev_outliers = sum(1 for v in data if v < mean - stddev or v > mean + stddev)
        total = sum(data)
        return {
            "min": data[0], "max": data[-1], "mean": mean, "stddev": stddev, "rounds": n,
            "median": statistics.median(data), "iqr": iqr, "q1": q1, "q3": q3,
            "iqr_outliers": iqr_outliers, "stddev_outliers": stddev_outliers,
            "outliers": f"{stddev_outliers};{iqr_outliers}", "ld15iqr": ld15iqr, "hd15iqr": hd15iqr,
            "ops": n / total if total else 0, "total": total, "iterations": 1,
        }


def _quartiles(data: list[float]) -> tuple[float, float]:
    """Q1 and Q3 of sorted data as pytest-benchmark computes them.

    Wikipedia's method 3 for an odd count, method 2 (medians of the halves) for an even one.
    """
    n = len(data)
    if n == 1:
        return data[0], data[0]
    if n % 2:
        m, r = n // 4, n % 4
        if r == 1:
            return (0.25 * data[m - 1] + 0.75 * data[m],
                    0.75 * data[3 * m] + 0.25 * data[3 * m + 1])
        return (0.75 * data[m] + 0.25 * data[m + 1],
                0.25 * data[3 * m + 1] + 0.75 * data[3 * m + 2])
    return statistics.median(data[: n // 2]), statistics.median(data[n // 2:])
