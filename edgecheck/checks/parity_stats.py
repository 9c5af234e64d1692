"""The sums and maxima behind the parity statistics, in two blockwise passes over an output pair.

Outputs of a detector on 100 inputs are a hundred megabytes; converting each whole output to
float64 and making a full-size temporary per statistic took seconds per check and gigabytes. Here
the outputs are read in blocks of BLOCK elements: pass one, in the outputs' own dtypes, counts and
places NaN/Inf and finds the largest magnitudes; pass two converts each block to float64 once and
accumulates every sum in float64. The statistics are those of the float64 formulas (differences
are in the order of summation only); memory stays a few blocks whatever the output's size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# elements per block: five float64 blocks stay in a core's L2 cache, and a dot product of one stays under
# OpenBLAS's 10,000 elements, past which it starts threads (on a busy machine 30x slower than one thread)
BLOCK = 1 << 13


def blocks(array: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """The flattened array in blocks of BLOCK elements (views where it is contiguous), with their offsets."""
    flat = array.reshape(-1)
    for start in range(0, flat.size, BLOCK):
        yield start, flat[start:start + BLOCK]


def abs_max(block: np.ndarray) -> float:
    """Largest magnitude of a block as float64: a float's own abs is exact; anything else is converted first
    (the most negative int64 does not wrap; a complex output counts by its real part, as astype takes it)."""
    if not block.size:
        return 0.0
    if block.dtype.kind == "f":
        return float(np.max(np.abs(block)))
    with np.errstate(all="ignore"):
        return float(np.max(np.abs(np.asarray(block.real if block.dtype.kind == "c" else block, np.float64))))


@dataclass
class FiniteScan:
    """Pass one: NaN/Inf counted and placed (flat indices), and the largest magnitudes."""

    reference_bad: int = 0  # NaN/Inf in the reference
    candidate_bad: int = 0  # NaN/Inf in the candidate where the reference is finite
    first_reference_bad: int | None = None
    first_candidate_bad: int | None = None
    reference_max: float = 0.0  # largest finite |reference|
    candidate_max: float = 0.0  # largest |candidate| where both are finite everywhere (pass two's scale)

    @classmethod
    def of(cls, reference: np.ndarray, candidate: np.ndarray) -> FiniteScan:
        found = cls()
        ref_float, out_float = reference.dtype.kind in "fc", candidate.dtype.kind in "fc"
        for (start, ref), (_, out) in zip(blocks(reference), blocks(candidate)):
            ref_ok = np.isfinite(ref) if ref_float else None
            ref_bad = ref.size - int(np.count_nonzero(ref_ok)) if ref_ok is not None else 0
            if ref_bad:
                found.reference_bad += ref_bad
                if found.first_reference_bad is None:
                    found.first_reference_bad = start + int(np.argmin(ref_ok))
                ref = ref[ref_ok]
            if out_float:
                out_ok = np.isfinite(out)
                if not out_ok.all():
                    wrong = ~out_ok if ref_ok is None else ref_ok & ~out_ok
                    out_bad = int(np.count_nonzero(wrong))
                    if out_bad:
                        found.candidate_bad += out_bad
                        if found.first_candidate_bad is None:
                            found.first_candidate_bad = start + int(np.argmax(wrong))
            found.reference_max = max(found.reference_max, abs_max(ref))
            if not found.reference_bad and not found.candidate_bad:
                found.candidate_max = max(found.candidate_max, abs_max(out))
        return found

    @property
    def problems(self) -> bool:
        return bool(self.reference_bad or self.candidate_bad)


def _exponent(largest: float) -> int:
    """The power of two that brings `largest` into [0.5, 1), kept at least -1000 so that 2**-exponent stays a
    finite float64 (subnormals are then scaled up less, and still far from overflowing)."""
    return max(math.frexp(largest)[1], -1000)


def _wide(array: np.ndarray) -> bool:
    """Whether a square of the output's values can overflow or underflow a float64 (float32 and narrower,
    and integers up to 64 bits, cannot)."""
    kind = array.dtype.kind
    return kind not in "biuf" or (kind == "f" and array.dtype.itemsize > 4)


@dataclass
class Sums:
    """Pass two, blockwise in float64: what every statistic is made of. Values of an output wider than
    float32 are scaled by a power of two first (exact), so no square overflows or underflows; the
    norms are then sqrt(sum) * 2**exponent."""

    max_abs: float = 0.0
    sum_abs: float = 0.0
    max_rel: float = 0.0
    ref_squares: float = 0.0
    out_squares: float = 0.0
    diff_squares: float = 0.0
    products: float = 0.0  # sum of reference times candidate
    ref_exponent: int = 0
    out_exponent: int = 0
    diff_exponent: int = 0

    @classmethod
    def of(cls, reference: np.ndarray, candidate: np.ndarray, scan: FiniteScan, rel_floor: float) -> Sums:
        """Both outputs finite everywhere (pass one said so); `rel_floor` is the relative error's smallest
        divisor, as a share of the reference's largest magnitude."""
        sums = cls()
        wide = _wide(reference) or _wide(candidate)
        if wide:  # the largest magnitude lands in [0.5, 1); the difference's scale follows its largest so far
            sums.ref_exponent = _exponent(scan.reference_max)
            sums.out_exponent = _exponent(scan.candidate_max)
        ref_scale, out_scale = float(np.ldexp(1.0, -sums.ref_exponent)), float(np.ldexp(1.0, -sums.out_exponent))
        floor = max(rel_floor * scan.reference_max, np.finfo(np.float64).tiny)
        size = min(BLOCK, reference.size)
        buffers = [np.empty(size) for _ in range(5)]
        for (_, ref_block), (_, out_block) in zip(blocks(reference), blocks(candidate)):
            n = ref_block.size
            ref, out, diff, magnitude, work = (buffer[:n] for buffer in buffers)
            ref[...] = ref_block.real if ref_block.dtype.kind == "c" else ref_block  # float64, as astype makes it
            out[...] = out_block.real if out_block.dtype.kind == "c" else out_block
            np.subtract(out, ref, out=diff)
            np.abs(diff, out=magnitude)
            largest = float(magnitude.max())
            sums.max_abs = max(sums.max_abs, largest)
            np.abs(ref, out=work)
            np.maximum(work, floor, out=work)
            np.divide(magnitude, work, out=work)
            sums.max_rel = max(sums.max_rel, float(work.max()))
            if wide:
                sums._follow_difference(largest)
                diff_scale = float(np.ldexp(1.0, -sums.diff_exponent))
                magnitude *= diff_scale
                diff *= diff_scale
                ref *= ref_scale
                out *= out_scale
            sums.sum_abs += float(magnitude.sum())
            sums.ref_squares += float(np.dot(ref, ref))
            sums.out_squares += float(np.dot(out, out))
            sums.diff_squares += float(np.dot(diff, diff))
            sums.products += float(np.dot(ref, out))
        return sums

    def _follow_difference(self, largest: float) -> None:
        """Rescale the difference's sums (exactly, by a power of two) to a block whose largest magnitude is
        above any before: its values then land in [0.5, 1) too, however far apart the blocks' sizes are."""
        if not largest or not math.isfinite(largest):
            return  # nothing to scale; an overflowed difference stays inf whatever the scale
        if math.isinf(self.diff_squares) or math.isinf(self.sum_abs):
            return  # an earlier block's difference overflowed: it stays inf (inf times a tiny factor is not nan)
        exponent = _exponent(largest)
        if not (self.diff_squares or self.sum_abs):
            self.diff_exponent = exponent
        elif exponent > self.diff_exponent:
            factor = float(np.ldexp(1.0, self.diff_exponent - exponent))
            self.sum_abs *= factor
            self.diff_squares = self.diff_squares * factor * factor  # factor**2 alone may underflow to 0
            self.diff_exponent = exponent

    def mean_abs(self, elements: int) -> float:
        """The mean absolute difference (0 for no elements)."""
        return float(np.ldexp(self.sum_abs / elements, self.diff_exponent)) if elements else 0.0

    def cosine(self) -> float:
        """Cosine similarity: 1 for two zero outputs, 0 for one."""
        ref, out = math.sqrt(self.ref_squares), math.sqrt(self.out_squares)
        if ref == 0 and out == 0:
            return 1.0
        if ref == 0 or out == 0:
            return 0.0
        return min(1.0, max(-1.0, self.products / ref / out))  # rounding may leave 1 by an ulp: identical outputs give 1

    def rel_l2(self) -> float:
        """norm(difference) / norm(reference), from the scaled sums so that neither norm overflows on the way;
        inf where only the reference is zero, 0 where both are."""
        diff, ref = math.sqrt(self.diff_squares), math.sqrt(self.ref_squares)
        if ref == 0:
            return 0.0 if diff == 0 else math.inf
        with np.errstate(all="ignore"):
            return float(np.ldexp(diff / ref, self.diff_exponent - self.ref_exponent))

    def snr_db(self) -> float:
        """20 log10(norm(reference) / norm(difference)), taken in the log domain so that neither a ratio past
        float64's range nor one below it is lost: inf where the difference is zero, -inf where the reference is."""
        if self.diff_squares == 0:
            return math.inf
        if self.ref_squares == 0:
            return -math.inf
        if math.isinf(self.diff_squares):  # a difference past float64's range (as float64 computes it)
            return -math.inf
        log_ratio = 0.5 * (math.log10(self.ref_squares) - math.log10(self.diff_squares))
        return 20 * (log_ratio + (self.ref_exponent - self.diff_exponent) * math.log10(2))


def constant_along_samples(reference: np.ndarray) -> bool:
    """Whether every slice along axis 0 equals the first (no input changed the output); stops at the first
    slice that differs, comparing BLOCK elements' worth of slices at a time."""
    if reference.ndim < 1 or reference.shape[0] < 2:
        return False
    first = reference[:1]
    step = max(1, BLOCK // max(1, first.size))
    for start in range(1, reference.shape[0], step):
        if not np.array_equal(reference[start:start + step], np.broadcast_to(first, reference[start:start + step].shape)):
            return False
    return True
