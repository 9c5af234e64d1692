"""Baselines: stored figures of a run, saved atomically and never clobbered, read back validated."""

from __future__ import annotations

import json
import multiprocessing
import pickle
from pathlib import Path

import pytest
from result_records import record, variant, with_measurements, without

from edgecheck.baseline import (
    BASELINE_FORMAT,
    Baseline,
    BaselineError,
    BaselineExists,
    baseline_path,
    check_name,
    figures_from_record,
    item_key,
    list_baselines,
    load_baseline,
    save_baseline,
)
from edgecheck.checks.result import Measurement as M
from edgecheck.errors import EdgecheckError

RECORDS = {
    "specs/digits.yaml::host-onnxruntime-int8-static-accuracy": {"accuracy": 98.1481481, "accuracy_drop": 0.37037037},
    "specs/digits.yaml::host-onnxruntime-none-latency": {"latency.p50": 0.0123, "latency.samples": 1000.0},
}
ENVIRONMENT = {"edge.env.machine": "x86_64 AMD EPYC avx2,fma sha256:1a2b", "edgecheck": "0.1.0"}

# As a real run records them (pytest specs --edge-target=host), plus the new checks' figures.
PARITY_ITEM = record("parity", "int8-static", [
    M("parity.logits.max_abs", 2.56921005, "", 5, "max", "5 (atol)"), M("parity.logits.max_rel", 21.7997487),
    M("parity.logits.rel_l2", 0.0434060285, "", 0.08, "max", "0.08 (rel_l2)"),
    M("parity.logits.cosine", 0.999259978), M("parity.logits.snr_db", 27.248999, "dB", 20, "min", "20 dB (snr_db)"),
    M("parity.logits.top1_agreement", 1), M("parity.logits.mean_abs", 0.300597273),
], {"inputs": "test.npz (128 of 540 samples)", "measured_on": "host", "host": "x86_64 AMD EPYC",
    "runtime": "onnxruntime 1.32.0 CPUExecutionProvider, 2 threads", "artifact": "digits.int8-static.onnx",
    "artifact.size_bytes": "15068", "artifact.parameters": "9828", "artifact.size_ratio": "2.663",
    "recipe.steps": "int8-static", "recipe.quantized_nodes": "5 of 8", "cache": "1 of 1 steps from the cache"})
NONE_PARITY_ITEM = variant(with_measurements(
    without(PARITY_ITEM, "parity."),
    M("parity.logits.max_abs", 0), M("parity.logits.rel_l2", 0), M("parity.logits.cosine", 1),
    M("parity.logits.snr_db", float("inf"), "dB"), M("parity.logits.top1_agreement", 1),
), recipe="none", artifact="digits.onnx")
LATENCY_ITEM = record("latency", "fp16", [
    M("latency.p50", 0.0412, "ms", 1, "max", interval=(0.0409, 0.0415)), M("latency.p99", 0.09),
    M("latency.mean", 0.044), M("latency.std", float("nan")), M("latency.max", float("-inf")),
    M("latency.samples", 1000),
], {"env.machine": "x86_64 AMD EPYC 7B13 | avx2 avx512f | 3f2a9c", "latency.stats": '{"p50": 0.0412, "samples": 1000}'})


def test_round_trip(tmp_path: Path) -> None:
    path = save_baseline(tmp_path / "baselines", "main", RECORDS, ENVIRONMENT)
    assert path == tmp_path / "baselines" / "main.json"
    loaded = load_baseline(tmp_path / "baselines", "main")
    assert isinstance(loaded, Baseline)
    assert (loaded.name, loaded.path, loaded.environment, loaded.records) == ("main", path, ENVIRONMENT, RECORDS)
    assert loaded.created.endswith("+00:00")  # ISO 8601, UTC
    assert loaded.figures("specs/digits.yaml::host-onnxruntime-none-latency") == {"latency.p50": 0.0123,
                                                                                  "latency.samples": 1000.0}
    assert loaded.figures("specs/other.yaml::host-onnxruntime-none-size") is None
    document = json.loads(path.read_text())
    assert document["edgecheck_baseline"] == BASELINE_FORMAT
    assert list(document) == sorted(document)  # sorted keys: a stable diff when committed
    assert list_baselines(tmp_path / "baselines") == ["main"]


def test_saving_refuses_to_overwrite(tmp_path: Path) -> None:
    save_baseline(tmp_path, "main", RECORDS, ENVIRONMENT)
    before = (tmp_path / "main.json").read_bytes()
    with pytest.raises(BaselineExists, match="--edge-overwrite-baseline") as caught:
        save_baseline(tmp_path, "main", {}, {})
    assert str(tmp_path / "main.json") in str(caught.value)
    assert isinstance(caught.value, BaselineError) and isinstance(caught.value, EdgecheckError)
    assert (tmp_path / "main.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.json"]  # no temp file left behind


def test_overwrite_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_baseline(tmp_path, "main", RECORDS, ENVIRONMENT)
    import edgecheck.baseline as module

    calls = []
    real_replace = module.os.replace

    def spy(src: str, dst: Path) -> None:
        calls.append((Path(src).parent, Path(dst)))
        assert json.loads(Path(src).read_text())["records"] == {"a::b": {"x": 1.0}}  # complete before the rename
        real_replace(src, dst)

    monkeypatch.setattr(module.os, "replace", spy)
    save_baseline(tmp_path, "main", {"a::b": {"x": 1}}, {}, overwrite=True)
    assert calls == [(tmp_path, tmp_path / "main.json")]  # a rename within the folder: atomic
    assert load_baseline(tmp_path, "main").records == {"a::b": {"x": 1.0}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.json"]


def test_a_failed_save_leaves_no_temp_file_and_no_baseline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecheck.baseline as module

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module.os, "fsync", no_space)
    with pytest.raises(BaselineError, match="No space left") as caught:
        save_baseline(tmp_path, "main", RECORDS, ENVIRONMENT)
    assert "main.json" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_only_finite_figures_are_saved(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="finite"):
        save_baseline(tmp_path, "main", {"a::b": {"x": float("inf")}}, {})
    assert list(tmp_path.iterdir()) == []


def _save_in_turn(directory: str, names: list[str], tag: str, barrier, results, guard_s: float) -> None:
    """One of two racing processes: save each name at the same moment as the other process."""
    for name in names:
        barrier.wait(timeout=guard_s)
        try:
            save_baseline(Path(directory), name, {"k::" + tag: {"x": 1.0}}, {"who": tag})
            results.put((name, tag, "saved"))
        except BaselineExists:
            results.put((name, tag, "exists"))
        except Exception as exc:  # reported to the test, which fails on it
            results.put((name, tag, f"error {exc!r}"))


def test_concurrent_saves_of_one_name_exactly_one_wins(tmp_path: Path) -> None:
    from conftest import HANG_GUARD_S  # here, not at the top: the spawned processes import this module

    context = multiprocessing.get_context("spawn")
    names = [f"race-{i}" for i in range(10)]
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_save_in_turn, args=(str(tmp_path), names, tag, barrier, results, HANG_GUARD_S))
               for tag in ("a", "b")]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=HANG_GUARD_S) for _ in range(2 * len(names))]
    for worker in workers:
        worker.join(timeout=HANG_GUARD_S)
        assert worker.exitcode == 0
    for name in names:
        mine = sorted((tag, outcome) for n, tag, outcome in outcomes if n == name)
        assert sorted(outcome for _, outcome in mine) == ["exists", "saved"], mine
        winner = next(tag for tag, outcome in mine if outcome == "saved")
        loaded = load_baseline(tmp_path, name)  # whole and valid: the winner's
        assert loaded.environment == {"who": winner} and loaded.records == {"k::" + winner: {"x": 1.0}}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.json" for n in names)


def test_errors_survive_pickling(tmp_path: Path) -> None:
    error = BaselineExists(tmp_path / "main.json", "exists")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is BaselineExists and str(copy) == str(error) and copy.path == error.path


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "", "x" * 200, ".hidden", "a..b", "..", "-x", "a b",
                                 "main.json/", "ü"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(BaselineError, match="not valid"):
        check_name(name)
    with pytest.raises(BaselineError):
        save_baseline(tmp_path / "b", name, RECORDS, ENVIRONMENT)
    with pytest.raises(BaselineError):
        load_baseline(tmp_path / "b", name)
    assert not (tmp_path / "b").exists() and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("name", ["main", "v1.2.3", "release_2024-06", "A", "x" * 100])
def test_good_names(tmp_path: Path, name: str) -> None:
    assert check_name(name) == name
    assert baseline_path(tmp_path, name) == tmp_path / f"{name}.json"


def test_missing_baseline_names_the_file_and_the_ones_there(tmp_path: Path) -> None:
    save_baseline(tmp_path, "main", RECORDS, ENVIRONMENT)
    with pytest.raises(BaselineError, match="no baseline named 'release'") as caught:
        load_baseline(tmp_path, "release")
    assert str(tmp_path / "release.json") in str(caught.value) and "main" in str(caught.value)


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "main.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


GOOD = {"edgecheck_baseline": 1, "name": "main", "created": "2025-01-02T03:04:05+00:00",
        "environment": {"machine": "x"}, "records": {"a::b": {"x": 1.5, "n": 3}}}


@pytest.mark.parametrize("document, cause", [
    ('{"edgecheck_baseline": 1, "name": ', "not valid JSON"),
    ("", "not valid JSON"),
    ('{"edgecheck_baseline": 1, "records": {"a::b": {"x": NaN}}}', "not valid JSON"),
    ([1, 2], "JSON object"),
    ({**GOOD, "edgecheck_baseline": 2}, "format 2 is not 1"),
    ({k: v for k, v in GOOD.items() if k != "edgecheck_baseline"}, "format None"),
    ({**GOOD, "edgecheck_baseline": True}, "format True"),
    ({**GOOD, "name": 5}, "'name' must be a string"),
    ({**GOOD, "created": "yesterday"}, "ISO 8601"),
    ({**GOOD, "environment": {"machine": 1}}, "'environment'"),
    ({**GOOD, "environment": None}, "'environment'"),
    ({**GOOD, "records": []}, "'records'"),
    ({**GOOD, "records": {"a::b": [1.0]}}, r"records\['a::b'\]"),
    ({**GOOD, "records": {"a::b": {"x": "1.5"}}}, "not a finite number"),
    ({**GOOD, "records": {"a::b": {"x": True}}}, "not a finite number"),
    ({**GOOD, "records": {"a::b": {"x": 1e999}}}, "not valid JSON|not a finite number"),
])
def test_bad_files_are_errors_naming_the_file(tmp_path: Path, document: object, cause: str) -> None:
    path = _write(tmp_path, document)
    with pytest.raises(BaselineError, match=cause) as caught:
        load_baseline(tmp_path, "main")
    assert str(caught.value).startswith(f"{path}: ")


def test_a_good_file_written_by_hand_loads(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    assert load_baseline(tmp_path, "main").records == {"a::b": {"x": 1.5, "n": 3.0}}


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "main.json").mkdir()  # a folder where the file should be
    with pytest.raises(BaselineError, match="cannot read") as caught:
        load_baseline(tmp_path, "main")
    assert str(tmp_path / "main.json") in str(caught.value)


def test_list_baselines_ignores_other_files(tmp_path: Path) -> None:
    assert list_baselines(tmp_path / "nowhere") == []
    for name in ("b", "a"):
        save_baseline(tmp_path, name, RECORDS, ENVIRONMENT)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".a.x1y2.tmp").write_text("{}")
    (tmp_path / "dir.json").mkdir()
    assert list_baselines(tmp_path) == ["a", "b"]


def test_item_key() -> None:
    key = item_key("specs/digits.yaml", "host-onnxruntime-none-size")
    assert key == "specs/digits.yaml::host-onnxruntime-none-size"


def test_figures_of_a_parity_item() -> None:
    key, figures = figures_from_record(PARITY_ITEM)
    assert key == "specs/digits.yaml::host-onnxruntime-int8-static-parity"
    assert figures == {
        "parity.logits.max_abs": 2.56921005, "parity.logits.max_rel": 21.7997487,
        "parity.logits.rel_l2": 0.0434060285, "parity.logits.cosine": 0.999259978,
        "parity.logits.snr_db": 27.248999, "parity.logits.top1_agreement": 1.0,
        "parity.logits.mean_abs": 0.300597273,
    }  # no units, budgets, identity, verdict, facts (artifact.size_bytes is one, though it is a number)


def test_infinite_and_nan_figures_are_skipped() -> None:
    _, figures = figures_from_record(NONE_PARITY_ITEM)
    assert "parity.logits.snr_db" not in figures
    assert figures["parity.logits.max_abs"] == 0.0 and figures["parity.logits.cosine"] == 1.0
    key, figures = figures_from_record(LATENCY_ITEM)
    assert key == "specs/digits.yaml::host-onnxruntime-fp16-latency"
    assert figures == {"latency.p50": 0.0412, "latency.p50.ci_low": 0.0409, "latency.p50.ci_high": 0.0415,
                       "latency.p99": 0.09, "latency.mean": 0.044, "latency.samples": 1000.0}


def test_memory_figures() -> None:
    props = record("memory", "fp16", [
        M("memory.peak", 3.25, "MiB"), M("memory.process", 61.5), M("memory.baseline", 58.25),
        M("memory.model_file", 0.0143699646), M("regression.memory.peak", 4.2, "%"),  # relative: not stored
    ], {"env.machine": "x86_64 AMD EPYC 7B13 | avx2 avx512f | 3f2a9c"})
    key, figures = figures_from_record(props)
    assert key.endswith("-fp16-memory")
    assert figures == {"memory.peak": 3.25, "memory.process": 61.5, "memory.baseline": 58.25,
                       "memory.model_file": 0.0143699646}


def test_other_items_are_not_edgecheck_items() -> None:
    assert figures_from_record({}) is None
    assert figures_from_record({"spec": "specs/a.yaml", "target": "host"}) is None
    assert figures_from_record({"foo": "1"}) is None
    assert figures_from_record({k: v for k, v in PARITY_ITEM.items() if k != "check"}) is None
    assert figures_from_record({**PARITY_ITEM, "outcome": "skipped", "result": None}) is None


def test_a_rival_that_saves_between_check_and_link_keeps_its_baseline(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The early existence check can be raced; the hard link is what decides, and it never clobbers."""
    import edgecheck.baseline as module

    real_link = module.os.link

    def rival_first(src: str, dst: Path) -> None:
        Path(dst).write_text(json.dumps({**GOOD, "environment": {"who": "rival"}}))
        real_link(src, dst)

    monkeypatch.setattr(module.os, "link", rival_first)
    with pytest.raises(BaselineExists, match="--edge-overwrite-baseline"):
        save_baseline(tmp_path, "main", RECORDS, ENVIRONMENT)
    assert load_baseline(tmp_path, "main").environment == {"who": "rival"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.json"]


def test_without_hard_links_saving_still_never_clobbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import edgecheck.baseline as module

    def no_links(src: str, dst: Path) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(module.os, "link", no_links)
    save_baseline(tmp_path, "main", RECORDS, ENVIRONMENT)
    assert load_baseline(tmp_path, "main").records == RECORDS
    with pytest.raises(BaselineExists):
        save_baseline(tmp_path, "main", {}, {})
    assert load_baseline(tmp_path, "main").records == RECORDS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.json"]
