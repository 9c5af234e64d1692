"""What a static verdict's cache key holds besides the file: the installed onnx and onnxruntime (their shape
inference and tables judge the graph) and a third-party judge's or format's own version; and a verdict
judged without a part that failed for a reason that may pass (a shape inference that timed out on a busy
machine) is shown but never kept."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import edgecheck.static_checks as static_checks
import edgecheck.vendors.rknn.judge as rknn_judge
from edgecheck.cache_records import RecordCache
from edgecheck.checks.result import CheckResult
from edgecheck.errors import EdgecheckError
from edgecheck.static_checks import StaticChecks, StaticJudge, judged_content, plugin_version


def _planned(check: str = "latency") -> SimpleNamespace:
    dumped = SimpleNamespace(model_dump=lambda mode: {"name": "d"})
    return SimpleNamespace(check=check, backend="onnxruntime", target=dumped, budgets=dumped)


def test_the_installed_onnx_and_onnxruntime_are_in_a_graphs_verdict_key(monkeypatch):
    before = judged_content(None, _planned(), lambda: {"x": (1, 3)}, lambda: None)  # type: ignore[arg-type]
    assert set(before["libraries"]) == {"onnx", "onnxruntime"}  # type: ignore[arg-type]
    monkeypatch.setattr(static_checks, "tool_versions", lambda tools: {name: "99.0" for name in tools})
    after = judged_content(None, _planned(), lambda: {"x": (1, 3)}, lambda: None)  # type: ignore[arg-type]
    assert after["libraries"] == {"onnx": "99.0", "onnxruntime": "99.0"} != before["libraries"]


def test_a_third_party_judges_version_is_its_module_and_edgecheck_own_is_in_the_code_key(tmp_path, monkeypatch):
    assert plugin_version(StaticJudge) == "" and plugin_version(rknn_judge.RknnJudge) == ""
    monkeypatch.syspath_prepend(str(tmp_path))
    versions = []
    for body in ("limit = 1\n", "limit = 2\n"):  # the plug-in upgraded in place: another key
        (tmp_path / "acme_judge.py").write_text("from edgecheck.static_checks import StaticJudge\n"
                                                f"class AcmeJudge(StaticJudge):\n    {body}")
        sys.modules.pop("acme_judge", None)
        importlib.invalidate_caches()
        versions.append(plugin_version(importlib.import_module("acme_judge").AcmeJudge))
    sys.modules.pop("acme_judge", None)
    assert versions[0].startswith("acme_judge ") and versions[0] != versions[1]


class CountingJudge(StaticJudge):
    """Judges latency, once with its optional part failed (not to keep), then whole."""

    def __init__(self, keep: list[bool]):
        self.keep = keep
        self.judged = 0

    def content(self, analysis, planned, path, shapes, authority, sha256):
        return {"fixed": 1}

    def estimate(self, analysis, planned, path, shapes):
        self.judged += 1
        result = CheckResult("latency", notes=[f"judged {self.judged}"])
        result.keep = self.keep[self.judged - 1]
        return result


def test_a_verdict_its_judge_marks_not_to_keep_is_shown_but_judged_again_next_time(tmp_path):
    records = RecordCache(tmp_path / "records")
    checks = StaticChecks(None, records, lambda path: "sha")  # type: ignore[arg-type]
    judge = CountingJudge([False, True, True])
    checks._judges["onnx"] = judge
    path = tmp_path / "m.onnx"
    assert checks.estimate(_planned(), path, dict).notes == ["judged 1"]  # type: ignore[arg-type]
    assert not list((tmp_path / "records").rglob("*.json"))  # nothing stored
    assert checks.estimate(_planned(), path, dict).notes == ["judged 2"]  # type: ignore[arg-type]
    assert checks.estimate(_planned(), path, dict).notes == ["judged 2"]  # type: ignore[arg-type]  # kept now
    assert judge.judged == 2


@pytest.mark.parametrize("failure", [EdgecheckError("shape inference timed out after 60 s"),
                                     OSError(12, "Cannot allocate memory"), None])
def test_a_rknn_latency_without_its_cost_model_estimate_is_not_kept(monkeypatch, failure):
    def analysis(source, shapes):
        if failure is not None:
            raise failure
        return SimpleNamespace(facts="facts")

    monkeypatch.setattr(rknn_judge, "read_build_report", lambda path: SimpleNamespace(source="s", quantized=True))
    monkeypatch.setattr(rknn_judge, "estimate_latency", lambda *args: SimpleNamespace(ms=1.0))
    monkeypatch.setattr(rknn_judge, "judge_rknn_latency", lambda *args, cost_model_estimate: CheckResult(
        "latency", notes=[str(cost_model_estimate)]))
    planned = SimpleNamespace(check="latency", target=None, backend="rknn", budgets=SimpleNamespace(latency_ms=None))
    result = rknn_judge.RknnJudge().estimate(SimpleNamespace(analysis=analysis), planned, Path("m.rknn"), dict)
    assert result.keep is (failure is None)
    assert result.notes == [str(failure) if failure is not None else str(SimpleNamespace(ms=1.0))]
