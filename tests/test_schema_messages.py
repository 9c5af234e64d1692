"""Mistakes in a budget's value are answered in the spec's words, at the file, line and field: what the
field takes, in which unit, an example, and (for a number written with a unit) the figure to write."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edgecheck.errors import SpecError
from edgecheck.spec import load_spec_text

SPEC = """\
edgecheck: 1
model: {path: model.onnx}
data:
  evaluation: {path: eval.npz}
compress: [fp16]
targets:
  host:
    budgets:
      %s
"""
BUDGET_LINE = 9


def _reason(tmp_path: Path, budget: str, spec: str = SPEC) -> SpecError:
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "eval.npz").write_bytes(b"")
    with pytest.raises(SpecError) as info:
        load_spec_text(spec % budget, tmp_path / "spec.yaml", tmp_path)
    return info.value


MISTAKES = {
    # a number where a mapping is expected
    "latency as a number": ("latency_ms: 2", "latency_ms",
                            "a mapping of percentiles in ms, e.g. {p95: 2}; got 2"),
    "memory as a number": ("memory_mb: 256", "memory_mb", "a mapping of bounds in MiB, e.g. {peak: 64}; got 256"),
    "parity as a number": ("parity: 0.99", "parity",
                           "a mapping of agreement bounds, e.g. {cosine: 0.999, rel_l2: 0.01}; got 0.99"),
    "top-k as a number": ("parity: {topk_agreement: 5}", "parity.topk_agreement",
                          "a mapping {k, min}, e.g. {k: 5, min: 0.9}; got 5"),
    # a mapping where a number is expected
    "size as a mapping": ("size_mb: {max: 10}", "size_mb", "a number of MiB (2**20 bytes), e.g. 0.5; got a mapping {max}"),
    "cosine as a mapping": ("parity: {cosine: {min: 0.9}}", "parity.cosine",
                            "a cosine similarity from -1 to 1, e.g. 0.999; got a mapping {min}"),
    # a number written with a unit: the figure in the field's unit
    # (kB, MB and GB are decimal: 10 MB is 9.54 MiB; a decimal unit's message says its bytes)
    "size in KB": ("size_mb: 10KB", "size_mb",
                   "a number of MiB (2**20 bytes), e.g. 0.00954 for 10 kB (10,000 bytes); got '10KB'"),
    "size in KiB": ("size_mb: 10KiB", "size_mb", "a number of MiB (2**20 bytes), e.g. 0.00977 for 10 KiB; got '10KiB'"),
    "size in GB": ("size_mb: 1.5 GiB", "size_mb", "a number of MiB (2**20 bytes), e.g. 1536 for 1.5 GiB; got '1.5 GiB'"),
    "memory in MB": ("memory_mb: {peak: 256MB}", "memory_mb.peak",
                     "a number of MiB (2**20 bytes), e.g. 244.141 for 256 MB (256,000,000 bytes); got '256MB'"),
    "negative latency": ("latency_ms: {p95: -2ms}", "latency_ms.p95", "a number of milliseconds, e.g. 2; got '-2ms'"),
    "latency in ms": ("latency_ms: {p95: 2ms}", "latency_ms.p95", "a number of milliseconds, e.g. 2 for 2 ms; got '2ms'"),
    "latency in s": ("latency_ms: {p95: 0.5s}", "latency_ms.p95",
                     "a number of milliseconds, e.g. 500 for 0.5 s; got '0.5s'"),
    "latency in us": ("latency_ms: {p50: 800us}", "latency_ms.p50",
                      "a number of milliseconds, e.g. 0.8 for 800 us; got '800us'"),
    "warm-up in ms": ("latency_ms: {p95: 2, warmup_s: 100ms}", "latency_ms.warmup_s",
                      "a number of seconds, e.g. 0.1 for 100 ms; got '100ms'"),
    "snr in dB": ("parity: {snr_db: 30dB}", "parity.snr_db", "a number of decibels, e.g. 30 for 30 dB; got '30dB'"),
    # negative, or past a bound
    "negative size": ("size_mb: -1", "size_mb", "a number of MiB (2**20 bytes), greater than 0, e.g. 0.5; got -1"),
    "negative drop": ("accuracy_drop: -1", "accuracy_drop",
                      "points of the metric (a number) or percent of the original's metric (text ending in %), "
                      "at least 0, e.g. 1.0 or '1%'; got -1"),
    "negative tolerance": ("parity: {atol: -0.1}", "parity.atol",
                           "a number in the output's own units, at least 0, e.g. 0.001; got -0.1"),
    "negative latency": ("latency_ms: {p95: -2}", "latency_ms.p95",
                         "a number of milliseconds, greater than 0, e.g. 2; got -2"),
    "cosine over 1": ("parity: {cosine: 1.5}", "parity.cosine",
                      "a cosine similarity from -1 to 1, at most 1, e.g. 0.999; got 1.5"),
    # percent given where a fraction is expected
    "cosine as a percent": ("parity: {cosine: 99.9%}", "parity.cosine",
                            "a cosine similarity from -1 to 1, e.g. 0.999 for 99.9%; got '99.9%'"),
    "agreement as a percent": ("parity: {top1_agreement: 95%}", "parity.top1_agreement",
                               "a fraction from 0 to 1, e.g. 0.95 for 95%; got '95%'"),
    "agreement in percent": ("parity: {top1_agreement: 95}", "parity.top1_agreement",
                             "a fraction from 0 to 1, at most 1, e.g. 0.98 (0.95 for 95 %); got 95"),
    "top-k min in percent": ("parity: {topk_agreement: {k: 5, min: 90}}", "parity.topk_agreement.min",
                             "a fraction from 0 to 1, at most 1, e.g. 0.98 (0.9 for 90 %); got 90"),
    "relative error as a percent": ("parity: {rel_l2: 1%}", "parity.rel_l2",
                                    "a ratio (0.01 is 1 %), e.g. 0.01 for 1%; got '1%'"),
    "accuracy floor as a percent": ("accuracy_min: 95%", "accuracy_min",
                                    "a number in the metric's unit (top1 and top-k are percent, 0-100), e.g. 95 for "
                                    "95%; got '95%'"),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_a_mistake_is_answered_in_the_spec_words(tmp_path, case):
    budget, field, reason = MISTAKES[case]
    error = _reason(tmp_path, budget)
    assert (error.line, error.field, error.reason) == (BUDGET_LINE, f"targets.host.budgets.{field}", reason)
    assert str(error) == f"{tmp_path / 'spec.yaml'}:{BUDGET_LINE}: targets.host.budgets.{field}: {reason}"
    assert "Input should" not in str(error) and "instance of" not in str(error)


def test_the_valid_forms_still_load(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "eval.npz").write_bytes(b"")
    budgets = "{size_mb: 0.5, accuracy_drop: '5%', latency_ms: {p95: 2}, parity: {cosine: 0.999}}"
    loaded = load_spec_text(SPEC.replace("budgets:\n      %s", f"budgets: {budgets}"), tmp_path / "spec.yaml",
                            tmp_path)
    assert loaded.spec.targets["host"].budgets.accuracy_drop.relative is True


def test_a_recipe_override_gets_the_same_words(tmp_path):
    spec = SPEC.replace("      %s\n", "      size_mb: 1\n    recipes:\n      fp16: {%s}\n")
    error = _reason(tmp_path, "latency_ms: 3", spec)
    assert (error.line, error.field) == (11, "targets.host.recipes.fp16.latency_ms")
    assert error.reason == "a mapping of percentiles in ms, e.g. {p95: 2}; got 3"


def test_edgecheck_own_messages_are_kept(tmp_path):
    """A validator's message is already in the spec's words: it is not replaced."""
    error = _reason(tmp_path, "accuracy_drop: 5 percent")
    assert error.reason == "'5 percent' is not a drop: use a number of points (1.0) or a percentage ('1%')"


def test_a_session_shows_the_words_at_the_spec_line(pytester, spec_project):
    spec_project(textwrap.dedent("""\
        edgecheck: 1
        model: {path: ../models/clf.onnx}
        targets:
          host:
            budgets:
              size_mb: 10KB
        """))
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*invalid spec: *specs/model.yaml:6: targets.host.budgets.size_mb: a number of MiB "
                                 "(2**20 bytes), e.g. 0.00954 for 10 kB (10,000 bytes); got '10KB'*"])
