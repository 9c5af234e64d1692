"""The artifact and outputs cache (edgecheck.cache), proved on real small models and real sessions.

What this file shows: a key is a hash of everything that decides an entry and of nothing else; an
entry is built once, in tmp/, and appears whole or not at all; a corrupt entry (artifact bytes,
entry.json, an outputs .npz) is detected, warned about with `CacheWarning` naming it, and rebuilt; a
warm rerun takes every artifact and every deterministic output from the cache and reports the same
figures; an edited model, recipe parameter or calibration file invalidates exactly the steps it
feeds; --edge-no-cache, --edge-cache-dir, ini edge_cache_dir and $EDGECHECK_CACHE_DIR put the cache
where they say (or nowhere); two sessions or two xdist workers sharing a cold cache build each step
once and leave a sound cache; and `edgecheck cache info|clear` report and remove it, refusing a
folder that is not a cache.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_GUARD_S, INT8_SPEC, junit_properties, make_classifier, make_eval_data

from edgecheck.artifacts import step_key
from edgecheck.cache import ENV_CACHE_DIR, ArtifactCache, CacheWarning, cache_summary, content_key
from edgecheck.cli import main
from edgecheck.compress import Artifact
from edgecheck.errors import RecipeError
from edgecheck.spec import RecipeStep

KEY = "ab" + "0" * 62
OTHER_KEY = "cd" + "1" * 62
FROM_CACHE = "from the cache"
COMPUTED = "computed in this session"
CACHE_FACTS = ("edge.cache", "edge.outputs")

# A spec whose budgets every recipe here meets on the tiny classifier; compress entries are added.
SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  calibration: ../models/calib.npz
  evaluation: {path: ../models/eval.npz}
targets:
  host:
    backends: [onnxruntime]
    budgets:
      accuracy_drop: 50
      parity: {cosine: 0.9}
      size_mb: 1
"""


# helpers


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def writer(content: bytes = b"not really onnx", calls: list | None = None):
    """A build that writes one artifact file into its folder (and counts its calls)."""
    def build(folder: Path) -> Artifact:
        if calls is not None:
            calls.append(folder)
        path = folder / "model.test.onnx"
        path.write_bytes(content)
        return Artifact(path, "test", {"did": "wrote bytes"})

    return build


def must_not_build(folder: Path) -> Artifact:
    raise AssertionError("the cache called build for an entry it holds")


def entry_folder(root: Path, key: str) -> Path:
    return root / "artifacts" / key[:2] / key


def output_file(root: Path, key: str) -> Path:
    return root / "outputs" / key[:2] / key / "output_0.npy"


def artifact_entries(root: Path) -> list[Path]:
    return sorted(p for p in (root / "artifacts").glob("*/*") if p.is_dir())


def output_entries(root: Path) -> list[Path]:
    return sorted((root / "outputs").glob("*/*/output_0.npy"))


def leftovers(root: Path) -> list[str]:
    tmp = root / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


def assert_sound(root: Path) -> None:
    """Every entry is whole: named by its key, every file matching its recorded SHA-256; tmp/ empty."""
    outputs = [p.parent for p in output_entries(root)]
    for folder in artifact_entries(root) + outputs:
        entry = json.loads((folder / "entry.json").read_text())
        assert entry["key"] == folder.name and folder.parent.name == folder.name[:2]
        if folder in outputs:
            assert set(entry["files"]) == {f"output_{i}.npy" for i in range(len(entry["names"]))}
        else:
            assert (folder / entry["artifact"]).is_file()
        present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"entry.json"}
        assert set(entry["files"]) == present, folder
        for name, digest in entry["files"].items():
            assert sha256(folder / name) == digest, f"{folder / name} does not match entry.json"
    for path in output_entries(root):
        names = json.loads((path.parent / "entry.json").read_text())["names"]
        for index in range(len(names)):
            assert np.load(path.parent / f"output_{index}.npy", allow_pickle=False).size
    assert leftovers(root) == []


def tree_digest(root: Path) -> dict[str, str]:
    """Every cached file and its hash (lock files aside): equal digests, nothing rewritten or added."""
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*"))
            if p.is_file() and "locks" not in p.relative_to(root).parts}


def spec_text(*compress: str) -> str:
    """SPEC with these compress entries (YAML list items, block style)."""
    if not compress:
        return SPEC
    return SPEC + "compress:\n" + "".join(f"  - {entry}\n" for entry in compress)


def write_calibration(path: Path, seed: int) -> None:
    np.savez(path, x=np.random.default_rng(seed).uniform(0, 1, size=(32, 4)).astype(np.float32))


def run(pytester: pytest.Pytester, xml: str, *args: str) -> tuple[pytest.RunResult, dict[str, dict[str, str]]]:
    """One in-process session on specs/; it must pass. Returns the result and JUnit properties by case."""
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", f"--junitxml={xml}", *args)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    return result, junit_properties(pytester.path / xml)


def facts_of(cases: dict[str, dict[str, str]], recipe: str, fact: str = "edge.cache") -> set[str]:
    """The values a fact takes over every check of one compress entry."""
    return {props.get(fact, "<absent>") for props in cases.values() if props["edge.recipe"] == recipe}


def figures(cases: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Everything a run reported except where its artifacts and outputs came from."""
    return {name: {k: v for k, v in props.items() if k not in CACHE_FACTS} for name, props in cases.items()}


def output_origins(cases: dict[str, dict[str, str]]) -> set[str]:
    return {props["edge.outputs"].split(":")[0] for props in cases.values() if "edge.outputs" in props}


@pytest.fixture
def project(pytester: pytest.Pytester, spec_project):
    """spec_project plus a calibration file: `project(*compress_entries)` writes specs/model.yaml."""
    write_calibration(pytester.path / "models" / "calib.npz", seed=2)

    def write(*compress: str) -> Path:
        return spec_project(spec_text(*compress))

    return write


# keys


def test_content_key_ignores_part_order_and_changes_with_every_part():
    parts = {"model": "abc", "recipe": "int8-static", "params": {"per_channel": False, "method": "minmax"},
             "calibration": None, "tools": {"onnx": "1.17"}}
    key = content_key(**parts)
    assert content_key(**dict(reversed(list(parts.items())))) == key
    assert content_key(**{**parts, "params": {"method": "minmax", "per_channel": False}}) == key
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    changed = [
        {**parts, "model": "abd"},
        {**parts, "recipe": "int8-dynamic"},
        {**parts, "params": {"per_channel": True, "method": "minmax"}},
        {**parts, "calibration": "f00d"},
        {**parts, "tools": {"onnx": "1.18"}},
        {**parts, "extra": 1},
    ]
    keys = {content_key(**other) for other in changed}
    assert key not in keys and len(keys) == len(changed)


def test_step_key_follows_parsed_parameters_calibration_and_external_data(tmp_path):
    import onnx

    model = tmp_path / "clf.onnx"
    make_classifier(model)
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    write_calibration(first, seed=1)
    write_calibration(second, seed=2)
    static, dynamic = RecipeStep(recipe="int8-static"), RecipeStep(recipe="int8-dynamic")
    # a parameter spelled out at its default is the same artifact
    assert step_key(model, static, first) == step_key(model, RecipeStep(recipe="int8-static",
                                                                        params={"per_channel": False}), first)
    assert step_key(model, static, first) != step_key(model, RecipeStep(recipe="int8-static",
                                                                        params={"per_channel": True}), first)
    # calibration data is part of int8-static's key only
    assert step_key(model, static, first) != step_key(model, static, second)
    assert step_key(model, dynamic, first) == step_key(model, dynamic, second) == step_key(model, dynamic, None)
    # weights in an external data file: the .onnx bytes stay, the key still changes with the weights
    external = tmp_path / "ext" / "clf.onnx"
    external.parent.mkdir()
    onnx.save_model(onnx.load(str(model)), str(external), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="clf.onnx.data", size_threshold=0)
    before, onnx_bytes = step_key(external, dynamic, None), external.read_bytes()
    data = external.parent / "clf.onnx.data"
    weights = np.frombuffer(data.read_bytes(), dtype=np.float32).copy()
    weights[0] += 0.5
    data.write_bytes(weights.tobytes())
    assert external.read_bytes() == onnx_bytes
    assert step_key(external, dynamic, None) != before


# entries: built once, appearing whole


def test_artifact_is_built_once_then_served_from_the_cache(tmp_path):
    root = tmp_path / "cache"
    calls: list[Path] = []
    first, cached = ArtifactCache(root).artifact(KEY, writer(calls=calls))
    assert not cached and len(calls) == 1
    assert first.path == entry_folder(root, KEY) / "model.test.onnx" and first.path.read_bytes() == b"not really onnx"
    entry = json.loads((entry_folder(root, KEY) / "entry.json").read_text())
    assert entry["key"] == KEY and entry["artifact"] == "model.test.onnx" and entry["recipe"] == "test"
    assert entry["files"] == {"model.test.onnx": sha256(first.path)}
    # a fresh cache object (a later session) gets the same entry without building
    again, cached = ArtifactCache(root).artifact(KEY, must_not_build)
    assert cached and again == first
    assert again.notes == {"did": "wrote bytes"}
    other, cached = ArtifactCache(root).artifact(OTHER_KEY, writer(b"other", calls))
    assert not cached and len(calls) == 2 and other.path != first.path
    assert_sound(root)


def test_entry_is_built_in_tmp_and_renamed_into_place_whole(tmp_path):
    root = tmp_path / "cache"
    seen = {}

    def build(folder: Path) -> Artifact:
        seen["folder"], seen["final_existed"] = folder, entry_folder(root, KEY).exists()
        seen["empty"] = not any(folder.iterdir())
        (folder / "weights.bin").write_bytes(b"\0" * 100)  # a second file (external data)
        return writer()(folder)

    artifact, _ = ArtifactCache(root).artifact(KEY, build)
    assert seen["folder"].parent == root / "tmp" and seen["empty"] and not seen["final_existed"]
    assert not seen["folder"].exists() and leftovers(root) == []
    entry = json.loads((entry_folder(root, KEY) / "entry.json").read_text())
    assert set(entry["files"]) == {"model.test.onnx", "weights.bin"}
    assert_sound(root)


def test_failing_build_leaves_no_entry_and_an_empty_tmp(tmp_path):
    root = tmp_path / "cache"

    def broken(folder: Path) -> Artifact:
        (folder / "half.onnx").write_bytes(b"half")
        raise RecipeError("the recipe failed half way")

    with pytest.raises(RecipeError, match="half way"):
        ArtifactCache(root).artifact(KEY, broken)
    assert leftovers(root) == [] and not entry_folder(root, KEY).exists()
    # the key's lock was released: the next build of it goes through
    _, cached = ArtifactCache(root).artifact(KEY, writer())
    assert not cached
    assert_sound(root)


@pytest.mark.parametrize("enabled", [True, False], ids=["cache", "no-cache"])
def test_build_that_writes_outside_its_folder_is_a_recipe_error(tmp_path, enabled):
    root = tmp_path / "cache"
    outside = tmp_path / "outside.onnx"

    def stray(folder: Path) -> Artifact:
        outside.write_bytes(b"stray")
        return Artifact(outside, "stray", {})

    cache = ArtifactCache(root if enabled else None)
    with pytest.raises(RecipeError, match=r"recipe 'stray' did not write its artifact into its folder"):
        cache.artifact(KEY, stray)
    cache.close()
    assert not entry_folder(root, KEY).exists() and leftovers(root) == []


def test_disabled_cache_builds_into_a_scratch_folder_that_close_removes(tmp_path):
    cache = ArtifactCache(None)
    assert not cache.enabled
    calls: list[Path] = []
    first, cached = cache.artifact(KEY, writer(calls=calls))
    second, cached_again = cache.artifact(OTHER_KEY, writer(b"two", calls))
    assert not cached and not cached_again and len(calls) == 2
    scratch = first.path.parent.parent
    assert scratch.name.startswith("edgecheck-") and second.path.parent.parent == scratch
    assert first.path.is_file() and second.path.is_file()
    computed = []
    for _ in range(2):  # outputs are never stored either
        outputs, cached = cache.outputs(KEY, lambda _: computed.append(1) or {"y": np.ones(3, np.float32)})
        assert not cached
    assert len(computed) == 2
    cache.close()
    assert not scratch.exists()
    cache.close()  # twice is harmless


def test_outputs_are_computed_once_and_round_trip_exactly(tmp_path):
    root = tmp_path / "cache"
    produced = {"scores": np.arange(12, dtype=np.float32).reshape(4, 3) / 7, "ids": np.arange(4, dtype=np.int64)}
    outputs, cached = ArtifactCache(root).outputs(KEY, lambda _: produced)
    assert not cached and outputs is produced
    again, cached = ArtifactCache(root).outputs(KEY, lambda _: pytest.fail("recomputed a cached output"))
    assert cached and list(again) == ["scores", "ids"]
    for name, array in produced.items():
        assert again[name].dtype == array.dtype and np.array_equal(again[name], array)
    assert output_entries(root) == [output_file(root, KEY)] and leftovers(root) == []


# corruption: warned about, naming the entry, and rebuilt


def _truncate(folder: Path) -> None:
    path = folder / "model.test.onnx"
    path.write_bytes(path.read_bytes()[:5])


def _flip_byte(folder: Path) -> None:
    path = folder / "model.test.onnx"
    data = bytearray(path.read_bytes())
    data[3] ^= 0xFF
    path.write_bytes(bytes(data))


ARTIFACT_DAMAGE = {
    "truncated-artifact": (_truncate, "model.test.onnx does not match its recorded SHA-256"),
    "altered-artifact": (_flip_byte, "model.test.onnx does not match its recorded SHA-256"),
    "deleted-artifact": (lambda f: (f / "model.test.onnx").unlink(), "model.test.onnx is missing"),
    "deleted-entry-json": (lambda f: (f / "entry.json").unlink(), "entry.json unreadable"),
    "garbage-entry-json": (lambda f: (f / "entry.json").write_text("{not json"), "entry.json unreadable"),
    "entry-json-without-files": (lambda f: (f / "entry.json").write_text("{}"), "entry.json unreadable"),
}


@pytest.mark.parametrize("damage", sorted(ARTIFACT_DAMAGE))
def test_corrupt_artifact_entry_is_rebuilt_with_a_warning_naming_it(tmp_path, damage):
    root = tmp_path / "cache"
    ArtifactCache(root).artifact(KEY, writer())
    folder = entry_folder(root, KEY)
    corrupt, problem = ARTIFACT_DAMAGE[damage]
    corrupt(folder)
    calls: list[Path] = []
    with pytest.warns(CacheWarning, match=re.escape(f"edgecheck cache entry {folder} is corrupt")) as record:
        rebuilt, cached = ArtifactCache(root).artifact(KEY, writer(calls=calls))
    assert any(problem in str(w.message) for w in record), [str(w.message) for w in record]
    assert not cached and len(calls) == 1
    assert rebuilt.path.read_bytes() == b"not really onnx"
    assert_sound(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        again, cached = ArtifactCache(root).artifact(KEY, must_not_build)
    assert cached and again.path == rebuilt.path


WRONG_SHAPE = {
    # valid JSON, but "files" is no mapping
    "files-not-a-mapping": '{"files": ["model.test.onnx"], "artifact": "model.test.onnx", "recipe": "test", '
                           '"notes": {}}',
    # the artifact is not among the hashed files: it could be served unchecked
    "artifact-not-listed": '{"files": {}, "artifact": "gone.onnx", "recipe": "test", "notes": {}}',
}


@pytest.mark.parametrize("text", sorted(WRONG_SHAPE))
def test_entry_json_of_the_wrong_shape_is_rebuilt_with_a_warning(tmp_path, text):
    root = tmp_path / "cache"
    ArtifactCache(root).artifact(KEY, writer())
    (entry_folder(root, KEY) / "entry.json").write_text(WRONG_SHAPE[text])
    with pytest.warns(CacheWarning, match="is corrupt"):
        rebuilt, cached = ArtifactCache(root).artifact(KEY, writer())
    assert not cached and rebuilt.path.is_file()
    assert_sound(root)


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a zip archive")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _flip_array_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the stored array: only its recorded digest can tell
    path.write_bytes(bytes(data))


def test_outputs_a_computation_wrote_into_the_entry_are_kept_not_written_again(tmp_path, monkeypatch):
    """A worker writes its outputs into the entry in the making: the entry keeps those very files (100 MB
    written once), and a computation that wrote nothing there is stored by the cache itself."""
    from edgecheck import cache as cache_module
    from edgecheck.outputfiles import load_outputs, save_outputs, write_output

    root = tmp_path / "cache"
    produced = {"scores": np.linspace(0, 1, 2**22, dtype=np.float32).reshape(8, -1), "n": np.array(3)}  # 16 MiB: mapped
    written = {}

    def compute(folder: Path | None) -> dict[str, np.ndarray]:
        names = save_outputs(folder, produced)
        written.update({p.name: p.stat().st_ino for p in folder.iterdir()})
        return load_outputs(folder, names)

    stores = []
    monkeypatch.setattr(cache_module, "write_output", lambda path, array: stores.append(path.name) or
                        write_output(path, array))
    outputs, cached = ArtifactCache(root).outputs(KEY, compute)
    assert not cached and np.array_equal(outputs["scores"], produced["scores"]) and outputs["n"] == 3
    entry = output_file(root, KEY).parent
    kept = {p.name: p.stat().st_ino for p in entry.iterdir() if p.name != "entry.json"}
    assert kept["output_0.npy"] == written["output_0.npy"]  # the mapped one: the worker's file, renamed into place
    assert stores == ["output_1.npy"]  # only the small one, read into memory, is written by the cache
    assert_sound(root)
    again, cached = ArtifactCache(root).outputs(KEY, lambda _: pytest.fail("recomputed a cached output"))
    assert cached and np.array_equal(again["scores"], produced["scores"]) and again["n"] == 3

    stores.clear()
    plain, cached = ArtifactCache(tmp_path / "other").outputs(KEY, lambda _: produced)  # wrote nothing itself
    assert not cached and plain is produced and sorted(stores) == ["output_0.npy", "output_1.npy"]


@pytest.mark.parametrize("corrupt", [_garbage, _truncate, _flip_array_byte],
                         ids=["garbage", "truncated", "flipped-byte"])
def test_corrupt_outputs_are_recomputed_with_a_warning_naming_them(tmp_path, corrupt):
    root = tmp_path / "cache"
    expected = {"y": np.linspace(-1, 1, 1000, dtype=np.float32)}
    ArtifactCache(root).outputs(KEY, lambda _: expected)
    path = output_file(root, KEY)
    corrupt(path)
    computed = []
    with pytest.warns(CacheWarning, match=re.escape(f"edgecheck cache entry {path.parent} is corrupt "
                                                     "(output_0.npy does not match its recorded SHA-256)")):
        outputs, cached = ArtifactCache(root).outputs(KEY, lambda _: computed.append(1) or expected)
    assert not cached and computed == [1] and np.array_equal(outputs["y"], expected["y"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        again, cached = ArtifactCache(root).outputs(KEY, lambda _: pytest.fail("recomputed"))
    assert cached and np.array_equal(again["y"], expected["y"])
    assert_sound(root)


def test_session_rebuilds_a_corrupted_entry_and_says_so(pytester, project):
    project("int8-dynamic")
    root = pytester.path / ".edgecheck" / "cache"
    _, first = run(pytester, "first.xml")
    (entry,) = artifact_entries(root)
    artifact = entry / json.loads((entry / "entry.json").read_text())["artifact"]
    artifact.write_bytes(artifact.read_bytes()[:-10])  # truncated
    for path in output_entries(root):
        path.write_bytes(b"garbage")
    result, second = run(pytester, "second.xml")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines([f"*edgecheck cache entry *{entry.name} is corrupt "
                                 f"({artifact.name} does not match its recorded SHA-256); rebuilding it*"])
    result.stdout.fnmatch_lines(["*edgecheck cache entry *outputs* is corrupt (output_0.npy does not match its "
                                 "recorded SHA-256); recomputing it*"])
    assert facts_of(second, "int8-dynamic") == {"0 of 1 steps from the cache"}
    assert output_origins(second) == {COMPUTED}
    assert figures(second) == figures(first)
    assert_sound(root)
    result, third = run(pytester, "third.xml")
    assert "CacheWarning" not in result.stdout.str()
    assert facts_of(third, "int8-dynamic") == {"1 of 1 steps from the cache"}
    assert output_origins(third) == {FROM_CACHE}


# warm reruns


def test_warm_rerun_takes_everything_from_the_cache_and_reports_the_same_figures(pytester, project):
    project("int8-dynamic", "int8-static", "[prune: {sparsity: 0.5}, int8-dynamic]")
    root = pytester.path / ".edgecheck" / "cache"
    _, cold = run(pytester, "cold.xml")
    assert len(cold) == 11
    assert facts_of(cold, "int8-dynamic") == facts_of(cold, "int8-static") == {"0 of 1 steps from the cache"}
    assert facts_of(cold, "prune+int8-dynamic") == {"0 of 2 steps from the cache"}
    assert facts_of(cold, "none") == {"<absent>"}  # the original is no artifact of the cache
    assert output_origins(cold) == {COMPUTED}
    before = tree_digest(root)
    assert len(artifact_entries(root)) == 4  # int8-dynamic, int8-static, prune, int8-dynamic of the pruned

    _, warm = run(pytester, "warm.xml")
    assert facts_of(warm, "int8-dynamic") == facts_of(warm, "int8-static") == {"1 of 1 steps from the cache"}
    assert facts_of(warm, "prune+int8-dynamic") == {"2 of 2 steps from the cache"}
    checked = [p for p in warm.values() if p["edge.check"] in ("parity", "accuracy")]
    assert len(checked) == 7 and all(p["edge.outputs"].startswith(FROM_CACHE) for p in checked)
    assert figures(warm) == figures(cold)
    for case in ("host-onnxruntime-int8-static-accuracy", "host-onnxruntime-int8-static-parity"):
        measured = {k for k in warm[case] if k in ("edge.accuracy", "edge.parity.scores.rel_l2")}
        assert measured and all(warm[case][k] == cold[case][k] for k in measured)
    assert tree_digest(root) == before  # nothing rebuilt, rewritten or added
    assert_sound(root)


# invalidation


def test_edited_model_gets_new_entries_and_its_own_figures(pytester, project):
    project("int8-dynamic")
    root = pytester.path / ".edgecheck" / "cache"
    _, original = run(pytester, "original.xml")
    entries, outputs = artifact_entries(root), output_entries(root)
    make_classifier(pytester.path / "models" / "clf.onnx", seed=7)  # other weights, same file name
    _, edited = run(pytester, "edited.xml")
    assert facts_of(edited, "int8-dynamic") == {"0 of 1 steps from the cache"}
    assert output_origins(edited) == {COMPUTED}
    grown = artifact_entries(root)
    assert len(grown) == len(entries) + 1 and set(entries) < set(grown)  # the old entry is kept
    assert len(output_entries(root)) == 2 * len(outputs)
    parity = "host-onnxruntime-int8-dynamic-parity"
    assert edited[parity]["edge.parity.scores.rel_l2"] != original[parity]["edge.parity.scores.rel_l2"]
    _, fresh = run(pytester, "fresh.xml", "--edge-no-cache")
    assert figures(edited) == figures(fresh)  # what a cold computation of the edited model reports
    assert_sound(root)


def test_changed_recipe_parameter_builds_a_new_entry_and_the_default_is_kept(pytester, project):
    project("int8-static")
    root = pytester.path / ".edgecheck" / "cache"
    _, default = run(pytester, "default.xml", "-k", "size")
    assert len(artifact_entries(root)) == 1
    project("'int8-static': {per_channel: true}")
    _, per_channel = run(pytester, "pc.xml", "-k", "size")
    assert facts_of(per_channel, "int8-static") == {"0 of 1 steps from the cache"}
    assert facts_of(per_channel, "int8-static", "edge.recipe.steps") == {"int8-static(per_channel=True)"}
    assert len(artifact_entries(root)) == 2
    project("'int8-static': {per_channel: false}")  # spelled out, but the default: the first entry
    _, explicit = run(pytester, "explicit.xml", "-k", "size")
    assert facts_of(explicit, "int8-static") == {"1 of 1 steps from the cache"}
    assert len(artifact_entries(root)) == 2
    size = "host-onnxruntime-int8-static-size"
    assert explicit[size]["edge.size_bytes"] == default[size]["edge.size_bytes"]


def test_changed_calibration_rebuilds_int8_static_steps_only(pytester, project):
    project("int8-dynamic", "int8-static", "[prune: {sparsity: 0.5}, int8-static]")
    root = pytester.path / ".edgecheck" / "cache"
    run(pytester, "first.xml", "-k", "size")
    assert len(artifact_entries(root)) == 4
    write_calibration(pytester.path / "models" / "calib.npz", seed=9)
    _, second = run(pytester, "second.xml", "-k", "size")
    assert facts_of(second, "int8-dynamic") == {"1 of 1 steps from the cache"}
    assert facts_of(second, "int8-static") == {"0 of 1 steps from the cache"}
    assert facts_of(second, "prune+int8-static") == {"1 of 2 steps from the cache"}  # prune reused
    assert len(artifact_entries(root)) == 6


def test_chain_with_a_changed_last_step_reuses_its_first_step(pytester, project):
    project("[prune: {sparsity: 0.5}, int8-dynamic]")
    root = pytester.path / ".edgecheck" / "cache"
    _, first = run(pytester, "first.xml", "-k", "size")
    assert facts_of(first, "prune+int8-dynamic") == {"0 of 2 steps from the cache"}
    project("[prune: {sparsity: 0.5}, int8-dynamic: {per_channel: true}]")
    _, second = run(pytester, "second.xml", "-k", "size")
    assert facts_of(second, "prune+int8-dynamic") == {"1 of 2 steps from the cache"}
    assert facts_of(second, "prune+int8-dynamic", "edge.recipe.steps") == {
        "prune(sparsity=0.5) -> int8-dynamic(per_channel=True)"}
    assert len(artifact_entries(root)) == 3
    project("[prune: {sparsity: 0.25}, int8-dynamic: {per_channel: true}]")  # a new first step: both rebuilt
    _, third = run(pytester, "third.xml", "-k", "size")
    assert facts_of(third, "prune+int8-dynamic") == {"0 of 2 steps from the cache"}
    assert len(artifact_entries(root)) == 5


def test_new_labels_reuse_cached_outputs_and_new_inputs_recompute_them(pytester, project):
    project("int8-dynamic")
    params = make_classifier(pytester.path / "models" / "spare.onnx")  # the weights of clf.onnx (seed 0)
    _, first = run(pytester, "first.xml", "-k", "accuracy")
    assert {p["edge.accuracy"] for p in first.values()} == {"100"}
    make_eval_data(pytester.path / "models" / "eval.npz", params, wrong=8)  # same inputs, 8 of 64 labels off
    _, relabelled = run(pytester, "relabelled.xml", "-k", "accuracy")
    assert output_origins(relabelled) == {FROM_CACHE}  # outputs do not depend on labels...
    assert {p["edge.accuracy"] for p in relabelled.values()} == {"87.5"}  # ...the metric is computed anew
    make_eval_data(pytester.path / "models" / "eval.npz", params, seed=5)  # other inputs
    _, new_inputs = run(pytester, "inputs.xml", "-k", "accuracy")
    assert output_origins(new_inputs) == {COMPUTED}
    assert facts_of(new_inputs, "int8-dynamic") == {"1 of 1 steps from the cache"}  # the artifact stays


# where the cache lives


def test_no_cache_option_writes_nothing_and_removes_its_scratch_folder(pytester, project, monkeypatch, tmp_path):
    project("int8-dynamic", "[prune: {sparsity: 0.5}, int8-static]")
    scratch_parent = tmp_path / "system-tmp"
    scratch_parent.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_parent))
    # runs after the spec items, in the same session: the scratch artifacts exist while it runs
    pytester.makepyfile(test_probe=f"""
        from pathlib import Path

        def test_scratch_folder_exists_during_the_session():
            assert list(Path({str(scratch_parent)!r}).glob("edgecheck-*"))
    """)
    result = pytester.runpytest("specs", "test_probe.py", "-p", "no:cacheprovider", "--edge-no-cache",
                                "--junitxml=r.xml")
    result.assert_outcomes(passed=9)
    assert not (pytester.path / ".edgecheck").exists()
    # the per-machine timing lock (edgecheck-locks-<uid>) is meant to outlive the session; nothing else is
    assert [p.name for p in scratch_parent.glob("edgecheck-*") if not p.name.startswith("edgecheck-locks-")] == []
    cases = {k: v for k, v in junit_properties(pytester.path / "r.xml").items() if "edge.recipe" in v}
    assert facts_of(cases, "int8-dynamic") == {"<absent>"}  # no cache, no cache fact
    assert output_origins(cases) == {COMPUTED}


def test_cache_dir_option_puts_entries_there_and_not_under_the_rootdir(pytester, project, tmp_path_factory):
    project("int8-dynamic")
    shared = tmp_path_factory.mktemp("shared") / "edge-cache"
    run(pytester, "r.xml", f"--edge-cache-dir={shared}")
    assert len(artifact_entries(shared)) == 1 and output_entries(shared)
    assert not (pytester.path / ".edgecheck").exists()
    _, again = run(pytester, "again.xml", f"--edge-cache-dir={shared}")
    assert facts_of(again, "int8-dynamic") == {"1 of 1 steps from the cache"}
    assert_sound(shared)


def test_ini_option_and_environment_choose_the_cache_in_that_order(pytester, project, monkeypatch, tmp_path):
    project("int8-dynamic")
    from_env, from_option = tmp_path / "env-cache", tmp_path / "option-cache"
    from_ini = pytester.path / "build" / "edge-cache"
    monkeypatch.setenv(ENV_CACHE_DIR, str(from_env))
    _, env_run = run(pytester, "env.xml", "-k", "size")
    assert len(artifact_entries(from_env)) == 1
    pytester.makeini("[pytest]\nedge_cache_dir = build/edge-cache\n")  # relative to the ini file
    _, ini_run = run(pytester, "ini.xml", "-k", "size")
    assert len(artifact_entries(from_ini)) == 1
    _, option_run = run(pytester, "option.xml", "-k", "size", f"--edge-cache-dir={from_option}")
    assert len(artifact_entries(from_option)) == 1
    for cases in (env_run, ini_run, option_run):  # each run found its own cache cold
        assert facts_of(cases, "int8-dynamic") == {"0 of 1 steps from the cache"}
    assert not (pytester.path / ".edgecheck").exists()
    assert len(artifact_entries(from_env)) == 1 and len(artifact_entries(from_ini)) == 1


def test_run_without_spec_files_creates_no_cache(pytester, monkeypatch, tmp_path):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / ".edgecheck").exists()
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "env-cache"))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert not (tmp_path / "env-cache").exists()


# concurrency


CONTENDED = ("int8-dynamic", "int8-static", "fp16", "[prune: {sparsity: 0.5}, int8-static]")


def test_two_sessions_on_one_cold_cache_build_each_step_once(pytester, project, tmp_path):
    project(*CONTENDED)
    shared = tmp_path / "shared-cache"
    logs = {name: (pytester.path / f"{name}.log").open("wb") for name in ("a", "b")}
    sessions = {name: pytester.popen([sys.executable, "-m", "pytest", "specs", "-q", "-p", "no:cacheprovider",
                                      f"--edge-cache-dir={shared}", f"--junitxml={name}.xml"],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                for name, log in logs.items()}  # both started before either is waited for
    for name, session in sessions.items():
        session.wait(timeout=HANG_GUARD_S)
        logs[name].close()
        output = (pytester.path / f"{name}.log").read_text()
        assert session.returncode == 0, output
        assert "CacheWarning" not in output
    reports = [junit_properties(pytester.path / f"{name}.xml") for name in ("a", "b")]
    # 5 steps: int8-dynamic, int8-static, fp16, prune, int8-static of the pruned; one entry each
    assert len(artifact_entries(shared)) == 5
    assert_sound(shared)
    # each step was built by exactly one of the sessions, the other took it from the cache
    for recipe, steps in (("int8-dynamic", 1), ("int8-static", 1), ("fp16", 1), ("prune+int8-static", 2)):
        built = 0
        for cases in reports:
            (fact,) = facts_of(cases, recipe)
            cached, of = re.fullmatch(r"(\d) of (\d) steps from the cache", fact).groups()
            assert int(of) == steps
            built += steps - int(cached)
        assert built == steps, recipe
    assert figures(reports[0]) == figures(reports[1])


def test_xdist_workers_share_a_cold_cache(pytester, project, tmp_path):
    pytest.importorskip("xdist")
    project(*CONTENDED)
    shared = tmp_path / "shared-cache"
    result = pytester.runpytest_subprocess("specs", "-n", "2", "-p", "no:cacheprovider",
                                           f"--edge-cache-dir={shared}", "--junitxml=x.xml")
    result.assert_outcomes(passed=14)
    assert "CacheWarning" not in result.stdout.str()
    assert len(artifact_entries(shared)) == 5
    assert_sound(shared)


# the command line


def _filled_cache(root: Path) -> None:
    cache = ArtifactCache(root)
    cache.artifact(KEY, writer())
    cache.outputs(OTHER_KEY, lambda _: {"y": np.ones(4, np.float32)})


def test_cache_info_prints_the_counts_and_size(tmp_path, capsys):
    root = tmp_path / "cache"
    _filled_cache(root)
    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    size = cache_summary(root)["bytes"]
    assert size > 0
    assert capsys.readouterr().out.strip() == f"{root}: 1 artifacts, 1 output sets, {size:,} bytes"
    missing = tmp_path / "nowhere"
    assert main(["cache", "--cache-dir", str(missing)]) == 0  # info is the default action
    assert capsys.readouterr().out.strip() == f"{missing}: 0 artifacts, 0 output sets, 0 bytes (does not exist yet)"
    assert not missing.exists()


def test_cache_commands_default_to_the_environment_cache(tmp_path, capsys, monkeypatch):
    root = tmp_path / "env-cache"
    _filled_cache(root)
    monkeypatch.setenv(ENV_CACHE_DIR, str(root))
    assert main(["cache", "info"]) == 0
    assert capsys.readouterr().out.startswith(f"{root}: 1 artifacts, 1 output sets, ")
    assert main(["cache", "clear"]) == 0
    assert not root.exists()


def test_cache_clear_removes_the_cache(tmp_path, capsys):
    root = tmp_path / "cache"
    _filled_cache(root)
    size = cache_summary(root)["bytes"]
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0
    assert capsys.readouterr().out.strip() == f"cleared {root} ({size:,} bytes)"
    assert not root.exists() and tmp_path.exists()
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0  # nothing to clear is fine
    assert capsys.readouterr().out.strip() == f"cleared {root} (0 bytes)"


def test_cache_clear_refuses_a_folder_that_is_not_a_cache(tmp_path, capsys):
    root = tmp_path / "project"
    _filled_cache(root)
    (root / "thesis.tex").write_text("months of work")
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 2
    captured = capsys.readouterr()
    assert "does not look like an edgecheck cache (it holds thesis.tex); not removing it" in captured.err
    assert captured.out == ""
    assert (root / "thesis.tex").read_text() == "months of work"
    assert len(artifact_entries(root)) == 1 and len(output_entries(root)) == 1


def test_check_command_forwards_cache_dir_and_no_cache(pytester, project, monkeypatch, tmp_path, capsys):
    project("int8-dynamic")
    monkeypatch.chdir(pytester.path)
    elsewhere = tmp_path / "cli-cache"
    assert main(["check", "--cache-dir", str(elsewhere), "--", "-p", "no:cacheprovider", "-k", "size"]) == 0
    assert len(artifact_entries(elsewhere)) == 1
    assert main(["check", "--no-cache", "--", "-p", "no:cacheprovider"]) == 0
    assert "5 passed" in capsys.readouterr().out
    assert not (pytester.path / ".edgecheck").exists()


def test_cache_clear_refuses_a_file_with_exit_code_2(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    assert main(["cache", "clear", "--cache-dir", str(path)]) == 2
    assert "not removing it" in capsys.readouterr().err
    assert path.read_text() == "keep me"


def test_two_specs_with_the_same_name_and_model_file_name_never_share_artifacts(pytester, spec_project):
    (pytester.path / "other").mkdir()
    make_eval_data(pytester.path / "other" / "eval.npz", make_classifier(pytester.path / "other" / "clf.onnx",
                                                                         features=64, classes=10))
    spec_project("name: same\n" + INT8_SPEC, name="a")
    spec_project("name: same\n" + INT8_SPEC.replace("../models/", "../other/"), name="b")
    pytester.runpytest("specs", "--junitxml=r.xml").assert_outcomes(passed=10)
    properties = junit_properties(pytester.path / "r.xml", qualified=True)
    sizes = {case: float(props["edge.size_bytes"]) for case, props in properties.items()
             if case.endswith("int8-dynamic-size")}
    assert len(set(sizes.values())) == 2, sizes  # each spec measured its own artifact


def test_scratch_artifacts_are_removed_at_the_end_of_the_session(pytester, spec_project, monkeypatch):
    scratch = pytester.path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the in-process session makes its folder
    spec_project(INT8_SPEC)
    pytester.runpytest("specs").assert_outcomes(passed=5)
    # only the per-machine timing lock folder is meant to outlive the session
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("edgecheck-locks-")] == []
