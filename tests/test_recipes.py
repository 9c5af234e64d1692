"""Compress entries from spec text to artifact: what this file proves.

* every form of a `compress:` entry loads to the same `CompressEntry(name, steps)`, and every malformed
  entry, unknown recipe or bad parameter is a SpecError at the entry's line and field, also as a
  failing item of a real pytest session in which other specs still run;
* per-recipe budget overrides merge bound by bound (`Budgets.merged`) and reach the items and the JUnit
  properties; `size_ratio` is judged against the original model;
* a `candidate` model is checked against the original as its reference, and `[candidate, recipe]`
  compresses the candidate;
* a recipe that cannot run fails (or, when it has nothing to do, skips) only its own items;
* the shipped recipes, called directly, build deterministic, valid artifacts that run in ONNX Runtime,
  report what they did in their notes and never modify the model they were given.

Every model is a real ONNX model built with onnx.helper and run with ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import itertools
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import junit_properties, make_classifier
from onnx import TensorProto, helper, numpy_helper

from edgecheck.compress import Artifact, RecipeContext, get_recipe
from edgecheck.errors import SpecError
from edgecheck.plan import validate_recipes
from edgecheck.spec import Budgets, CompressEntry, LoadedSpec, RecipeStep, load_spec_text
from edgecheck.spec.schema import AccuracyDrop, ParityBudget

_folders = itertools.count()

# ---------------------------------------------------------------- helpers


def _mlp(path: Path, *, features: int = 16, hidden: int | None = 32, classes: int = 3, opset: int = 13,
         batch: int | str = "N", input_name: str = "x", output_name: str = "scores", seed: int = 0,
         big_weight: float | None = None) -> Path:
    """x[batch, features] -> Gemm fc1 -> Relu -> Gemm fc2 -> scores (hidden=None: one Gemm, fc1)."""
    rng = np.random.default_rng(seed)
    widths = [features, hidden, classes] if hidden else [features, classes]
    weights, nodes, current = [], [], input_name
    for index, (rows, cols) in enumerate(zip(widths, widths[1:]), start=1):
        w = (rng.normal(size=(rows, cols)) / np.sqrt(rows)).astype(np.float32)
        if big_weight is not None and index == 1:
            w[0, 0] = big_weight
        weights += [numpy_helper.from_array(w, f"W{index}"),
                    numpy_helper.from_array(rng.normal(size=cols).astype(np.float32) * 0.1, f"B{index}")]
        last = index == len(widths) - 1
        out = output_name if last else f"h{index}"
        nodes.append(helper.make_node("Gemm", [current, f"W{index}", f"B{index}"], [out], name=f"fc{index}"))
        current = out
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"r{index}"], name=f"relu{index}"))
            current = f"r{index}"
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, features])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, classes])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _scan8(path: Path) -> Path:
    """An opset-8 model (a Scan with sequence_lens, then a MatMul) that ONNX Runtime runs but onnx's
    version converter cannot upgrade: 'adapt_scan_8_9: ... Unsupported conversion to opset 9'."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "x_t"], ["s_out"]), helper.make_node("Identity", ["s_out"], ["y_t"])], "body",
        [helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [8]),
         helper.make_tensor_value_info("x_t", TensorProto.FLOAT, [8])],
        [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [8]),
         helper.make_tensor_value_info("y_t", TensorProto.FLOAT, [8])])
    graph = helper.make_graph(
        [helper.make_node("Scan", ["lens", "s0", "x"], ["s_final", "ys"], body=body, num_scan_inputs=1, name="cumsum"),
         helper.make_node("MatMul", ["s_final", "W"], ["scores"], name="fc")], "scan8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(np.array([4], np.int64), "lens"),
         numpy_helper.from_array(np.zeros((1, 8), np.float32), "s0"),
         numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 4
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _calibration(path: Path, samples: int, features: int = 16, name: str = "x", seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, **{name: rng.uniform(-1, 1, size=(samples, features)).astype(np.float32)})
    return path


def _labelled(path: Path, model: Path, samples: int = 64, features: int = 16) -> None:
    """Evaluation data labelled with the model's own argmax (the model scores 100 %)."""
    x = np.random.default_rng(9).uniform(-1, 1, size=(samples, features)).astype(np.float32)
    labels = np.argmax(_run(model, {"x": x})[0], axis=1)
    np.savez(path, x=x, labels=labels)


def _run(model: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feed)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _apply(recipe: str, model: Path, tmp: Path, calibration: Path | None = None, **params) -> Artifact:
    """Apply a recipe into a fresh folder, and prove the model it was given is left as it was."""
    before = _sha(model)
    out = tmp / f"out{next(_folders)}"
    out.mkdir()
    found = get_recipe(recipe)
    artifact = found.apply(model, found.parse_params(params), RecipeContext(calibration=calibration, out_dir=out))
    assert _sha(model) == before, "the recipe modified its input model"
    assert artifact.path.parent == out and artifact.path.is_file()
    assert not list(out.glob("*.tmp.onnx")), "scratch files left behind"
    return artifact


def _elem_types(model: Path) -> tuple[list[int], list[int]]:
    graph = onnx.load(str(model)).graph
    return ([i.type.tensor_type.elem_type for i in graph.input], [o.type.tensor_type.elem_type for o in graph.output])


def _opset(model: Path) -> int:
    return next(o.version for o in onnx.load(str(model)).opset_import if o.domain in ("", "ai.onnx"))


# ---------------------------------------------------------------- specs loaded in-process

BASE = """\
edgecheck: 1
model: {{path: ../models/clf.onnx}}
{candidate}data:
  calibration: ../models/eval.npz
{evaluation}compress:
{compress}
targets:
  host:
    budgets:
      parity: {{rel_l2: 0.1}}
{recipes}"""


def _indent(text: str, spaces: int) -> str:
    return textwrap.indent(text, " " * spaces)


def _spec_text(compress: str, recipes: str = "", evaluation: bool = True, candidate: bool = False) -> str:
    return BASE.format(
        compress=textwrap.indent(textwrap.dedent(compress).strip("\n"), "  "),
        recipes=_indent("recipes:\n" + _indent(textwrap.dedent(recipes).strip("\n"), 2), 4) + "\n" if recipes else "",
        evaluation="  evaluation: {path: ../models/eval.npz}\n" if evaluation else "",
        candidate="candidate: {path: ../models/student.onnx}\n" if candidate else "",
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import make_classifier, make_eval_data

    root = tmp_path_factory.mktemp("recipes-project")
    (root / "models").mkdir()
    (root / "specs").mkdir()
    make_eval_data(root / "models" / "eval.npz", make_classifier(root / "models" / "clf.onnx"), samples=8)
    make_classifier(root / "models" / "student.onnx", seed=3)
    return root


def _load(project: Path, text: str) -> LoadedSpec:
    return load_spec_text(text, project / "specs" / "model.yaml", project)


def _line_of(text: str, fragment: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), start=1) if fragment in line)


def test_each_compress_entry_form_normalises_to_a_name_and_steps(project):
    loaded = _load(project, _spec_text("""
        - int8-dynamic
        - int8-static: {per_channel: true}
        - fp16:
        - [prune: {sparsity: 0.5}, int8-static]
        - name: int8-pc
          steps: [int8-static: {per_channel: true, method: entropy}]
        - steps: [lowrank, int8-dynamic]
        - {name: half, steps: fp16}
    """))
    assert loaded.spec.compress == [
        CompressEntry(name="int8-dynamic", steps=(RecipeStep(recipe="int8-dynamic"),)),
        CompressEntry(name="int8-static", steps=(RecipeStep(recipe="int8-static", params={"per_channel": True}),)),
        CompressEntry(name="fp16", steps=(RecipeStep(recipe="fp16"),)),
        CompressEntry(name="prune+int8-static", steps=(RecipeStep(recipe="prune", params={"sparsity": 0.5}),
                                                       RecipeStep(recipe="int8-static"))),
        CompressEntry(name="int8-pc", steps=(RecipeStep(recipe="int8-static",
                                                        params={"per_channel": True, "method": "entropy"}),)),
        CompressEntry(name="lowrank+int8-dynamic",
                      steps=(RecipeStep(recipe="lowrank"), RecipeStep(recipe="int8-dynamic"))),
        CompressEntry(name="half", steps=(RecipeStep(recipe="fp16"),)),
    ]
    assert str(loaded.spec.compress[3]) == "prune(sparsity=0.5) -> int8-static"
    # planned: the original first, then every entry by name with its description
    assert validate_recipes(loaded)[:2] == [("none", "none"), ("int8-dynamic", "int8-dynamic")]
    assert ("int8-pc", "int8-static(per_channel=True, method=entropy)") in validate_recipes(loaded)


MALFORMED = {
    "params_not_a_mapping": (
        "- fp16\n- int8-static: 3\n", "", "- int8-static: 3", "compress[1]",
        "parameters of 'int8-static' must be a mapping like {sparsity: 0.5}, got 3"),
    "name_not_text": (
        "- fp16\n- 3: {}\n", "", "- 3: {}", "compress[1]", "a recipe name must be text, got 3"),
    "empty_chain": ("- fp16\n- []\n", "", "- []", "compress[1]", "an empty chain: name at least one recipe"),
    "empty_steps": ("- fp16\n- {name: nothing, steps: []}\n", "", "nothing", "compress[1]",
                    "steps is empty: name at least one recipe"),
    "two_recipes_in_one_step": (
        "- fp16\n- {fp16: {}, prune: {}}\n", "", "prune: {}", "compress[1]",
        "a recipe step is a name or a one-key mapping {recipe: {params}}, got keys ['fp16', 'prune']"),
    "unknown_key_in_long_form": (
        "- fp16\n- {name: x, steps: [fp16], note: hi}\n", "", "note: hi", "compress[1].note",
        "unknown key 'note' (known: name, steps)"),
    "duplicate_names": (
        "- int8-static\n- int8-static: {per_channel: true}\n", "", "per_channel", "compress[1]",
        "a second entry named 'int8-static' (the first is compress[0]): give one its own name, e.g. "
        "{name: int8-static-2, steps: [...]}"),
    "override_names_no_entry": (
        "- fp16\n- int8-dynamic\n", "fp17: {size_mb: 1}\n", "fp17:", "targets.host.recipes.fp17",
        "no compress entry named 'fp17' (entries: fp16, int8-dynamic, none)"),
    "override_accuracy_without_evaluation": (
        "- fp16\n", "fp16: {accuracy_drop: 1.0}\n", "fp16: {accuracy_drop", "targets.host.recipes.fp16.accuracy_drop",
        "needs data.evaluation (a labelled .npz) to measure accuracy"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_compress_entries_are_spec_errors_at_their_line_and_field(project, case):
    compress, recipes, at, field, message = MALFORMED[case]
    text = _spec_text(compress, recipes, evaluation=case != "override_accuracy_without_evaluation")
    with pytest.raises(SpecError) as info:
        _load(project, text)
    error = info.value
    assert (error.field, error.reason, error.line) == (field, message, _line_of(text, at))
    assert str(error) == f"{project / 'specs' / 'model.yaml'}:{error.line}: {field}: {message}"


def test_an_entry_named_none_with_other_steps_is_refused_when_planned(project):
    text = _spec_text("- fp16\n- {name: none, steps: [fp16]}\n")
    with pytest.raises(SpecError) as info:
        validate_recipes(_load(project, text))
    assert (info.value.line, info.value.field) == (_line_of(text, "name: none"), "compress[1]")
    assert info.value.reason == "the name 'none' means the model itself; name this entry otherwise"
    # the model itself, listed explicitly, is fine: it is not planned twice
    assert validate_recipes(_load(project, _spec_text("- none\n- fp16\n"))) == [("none", "none"), ("fp16", "fp16")]


BAD_PARAMETERS = {
    "unknown_recipe_in_a_chain": (
        "- [prune, int3-magic]", "compress[0][1]",
        "unknown recipe 'int3-magic' (known: fp16, int8-dynamic, int8-static, lowrank, none, prune, rknn-fp16, rknn-int8, tensorrt-fp16, tensorrt-fp32, "
        "tensorrt-int8, tflite-fp16, tflite-fp32, tflite-int8-dynamic, tflite-int8-static)"),
    "unknown_parameter": (
        "- int8-dynamic: {per_chanel: true}", "compress[0]",
        "recipe 'int8-dynamic': per_chanel: unknown parameter (known: per_channel, weights, exclude_nodes, "
        "exclude_op_types)"),
    "sparsity_out_of_range": ("- prune: {sparsity: 1.5}", "compress[0]", "recipe 'prune': sparsity: Input should be"),
    "unknown_method": (
        "- int8-static: {method: kl}", "compress[0]",
        "recipe 'int8-static': method: Input should be 'minmax', 'entropy' or 'percentile'"),
    "percentile_without_its_method": (
        "- int8-static: {percentile: 99}", "compress[0]",
        "recipe 'int8-static': parameters: percentile applies only with method: percentile"),
    "percentile_out_of_range": (
        "- int8-static: {method: percentile, percentile: 40}", "compress[0]",
        "recipe 'int8-static': percentile: Input should be greater than 50"),
    "parameters_for_none": ("- none: {level: 3}", "compress[0]",
                            "recipe 'none': level: unknown parameter (known: none)"),
}


@pytest.mark.parametrize("case", sorted(BAD_PARAMETERS))
def test_unknown_recipes_and_bad_parameters_are_refused_at_the_entry_line(project, case):
    entry, field, message = BAD_PARAMETERS[case]
    text = _spec_text("- fp16\n" + entry + "\n")
    field = field.replace("compress[0]", "compress[1]")
    loaded = _load(project, text)  # the schema does not know the recipes: planning checks them
    with pytest.raises(SpecError) as info:
        validate_recipes(loaded)
    assert info.value.field == field
    assert info.value.line == _line_of(text, entry.lstrip("- ")[:12])
    assert info.value.reason.startswith(message), info.value.reason


@pytest.mark.parametrize("entry", ["- lowrank: {rank: yes}", "- int8-static: {samples: true}"])
def test_a_boolean_for_a_numeric_recipe_parameter_is_refused(project, entry):
    with pytest.raises(SpecError, match="number"):
        validate_recipes(_load(project, _spec_text(entry + "\n")))


CANDIDATE_RULES = {
    "candidate_not_first": (True, "- [int8-static, candidate]", "compress[0][1]",
                            "'candidate' takes no parameters and can only be a chain's first step"),
    "candidate_with_parameters": (True, "- [candidate: {x: 1}, int8-static]", "compress[0][0]",
                                  "'candidate' takes no parameters and can only be a chain's first step"),
    "no_candidate_model": (False, "- [candidate, int8-static]", "compress[0][0]",
                           "step 'candidate' needs a candidate model: set candidate: {path: ...}"),
    "candidate_alone": (True, "- {name: student, steps: [candidate]}", "compress[0]",
                        "the candidate is always checked (as 'candidate'); list it only to start a chain, "
                        "e.g. [candidate, int8-static]"),
    "entry_named_candidate": (True, "- {name: candidate, steps: [fp16]}", "compress[0]",
                              "'candidate' names the candidate model's own items; name this entry otherwise"),
}


@pytest.mark.parametrize("case", sorted(CANDIDATE_RULES))
def test_misplaced_candidate_steps_are_spec_errors(project, case):
    with_candidate, entry, field, message = CANDIDATE_RULES[case]
    text = _spec_text(entry + "\n", candidate=with_candidate)
    with pytest.raises(SpecError) as info:
        _load(project, text)
    assert (info.value.field, info.value.reason, info.value.line) == (field, message, _line_of(text, entry))


def test_candidate_listed_alone_is_told_it_is_always_checked(project):
    with pytest.raises(SpecError, match="the candidate is always checked"):
        _load(project, _spec_text("- candidate\n", candidate=True))


def test_candidate_overrides_are_known_only_with_a_candidate_model(project):
    text = _spec_text("- fp16\n", "candidate: {size_mb: 1}\n")
    with pytest.raises(SpecError, match=r"no compress entry named 'candidate' \(entries: fp16, none\)"):
        _load(project, text)
    loaded = _load(project, _spec_text("- [candidate, int8-dynamic]\n", "candidate: {size_mb: 1}\n"
                                       "candidate+int8-dynamic: {size_ratio: 2}\n", candidate=True))
    assert validate_recipes(loaded) == [("none", "none"), ("candidate", "candidate (student.onnx)"),
                                        ("candidate+int8-dynamic", "candidate -> int8-dynamic")]


# ---------------------------------------------------------------- Budgets.merged


def _budgets(**fields) -> Budgets:
    return Budgets.model_validate(fields)


def test_merged_parity_bounds_replace_one_by_one():
    base = _budgets(parity={"cosine": 0.99, "rel_l2": 0.1, "topk_agreement": {"k": 2, "min": 0.9}}, size_mb=1)
    merged = base.merged(_budgets(parity={"rel_l2": 0.01, "atol": 0.5}))
    assert merged.parity == ParityBudget(cosine=0.99, rel_l2=0.01, atol=0.5, topk_agreement={"k": 2, "min": 0.9})
    assert merged.size_mb == 1
    assert base.parity.rel_l2 == 0.1  # the target's own budgets are untouched
    assert Budgets.model_validate(merged.model_dump()) == merged  # the result is a valid Budgets


def test_null_in_an_override_removes_a_bound_or_a_whole_budget():
    base = _budgets(parity={"cosine": 0.99, "rel_l2": 0.1}, size_mb=1, size_ratio=2)
    merged = base.merged(_budgets(parity={"cosine": None, "top1_agreement": 0.9}, size_mb=None))
    assert merged.parity == ParityBudget(rel_l2=0.1, top1_agreement=0.9)
    assert (merged.size_mb, merged.size_ratio) == (None, 2)
    assert base.merged(_budgets(parity=None)).parity is None
    # an override setting nothing changes nothing
    assert base.merged(Budgets()) == base


def test_relative_accuracy_drop_survives_a_merge():
    base = _budgets(accuracy_drop="1%", parity={"rel_l2": 0.1})
    merged = base.merged(_budgets(parity={"rel_l2": 0.2}))
    assert merged.accuracy_drop == AccuracyDrop(value=1.0, relative=True)
    assert str(merged.accuracy_drop) == "1%"
    replaced = base.merged(_budgets(accuracy_drop="2.5%")).merged(_budgets(size_ratio=3))
    assert (replaced.accuracy_drop, replaced.size_ratio) == (AccuracyDrop(value=2.5, relative=True), 3)
    assert base.merged(_budgets(accuracy_drop=1.5)).accuracy_drop == AccuracyDrop(value=1.5, relative=False)


def test_budgets_for_applies_only_the_named_entry_s_override(project):
    text = _spec_text("- fp16\n- int8-dynamic\n", "fp16: {parity: {rel_l2: 0.001}, size_ratio: 1.5}\n")
    section = _load(project, text).spec.targets["host"]
    assert section.budgets_for("fp16") == _budgets(parity={"rel_l2": 0.001}, size_ratio=1.5)
    assert section.budgets_for("int8-dynamic") == section.budgets == _budgets(parity={"rel_l2": 0.1})


def test_an_override_that_only_drops_a_parity_bound_is_accepted(project):
    text = _spec_text("- fp16", "fp16: {parity: {cosine: null}}", evaluation=False).replace(
        "{rel_l2: 0.1}", "{rel_l2: 0.1, cosine: 0.99}")
    assert _load(project, text).spec.targets["host"].budgets_for("fp16").parity == ParityBudget(rel_l2=0.1)


# ---------------------------------------------------------------- real sessions

SESSION = """\
edgecheck: 1
model: {{path: ../models/{model}}}
{extra}data:
{data}compress: {compress}
targets:
  host:
    backends: [onnxruntime]
    budgets:
{budgets}
{recipes}"""


def _session_spec(compress: str = "[]", *, model: str = "clf.onnx", extra: str = "",
                  data: str = "  evaluation: {path: ../models/eval.npz}\n",
                  budgets: str = "accuracy_drop: 50\nparity: {rel_l2: 0.5}\nsize_mb: 1", recipes: str = "") -> str:
    return SESSION.format(model=model, extra=extra, data=data or "  parity_samples: 8\n", compress=compress,
                          budgets=textwrap.indent(budgets, "      "),
                          recipes=textwrap.indent("recipes:\n" + recipes, "    ") if recipes else "")


def test_broken_compress_entries_fail_their_spec_only_in_a_session(pytester, spec_project):
    spec_project(_session_spec(), name="good")
    spec_project(_session_spec("\n  - fp16\n  - int8-static: 3"), name="shape")
    spec_project(_session_spec("\n  - int8-dynamic\n  - int8-dynamic"), name="twice")
    spec_project(_session_spec("\n  - fp16\n  - int8-dynamic: {per_chanel: true}"), name="param")
    result = pytester.runpytest("specs")
    result.assert_outcomes(passed=2, failed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*invalid spec: *specs/param.yaml:7: compress[[]1[]]: recipe 'int8-dynamic': per_chanel: unknown parameter "
        "(known: per_channel, weights, exclude_nodes, exclude_op_types); did you mean per_channel?",
    ])
    result.stdout.fnmatch_lines([
        "*invalid spec: *specs/shape.yaml:7: compress[[]1[]]: parameters of 'int8-static' must be a mapping*got 3",
    ])
    result.stdout.fnmatch_lines([
        "*invalid spec: *specs/twice.yaml:7: compress[[]1[]]: a second entry named 'int8-dynamic' (the first is "
        "compress[[]0[]]): give one its own name*",
    ])


def test_tightened_fp16_parity_fails_only_the_fp16_parity_item(pytester, spec_project):
    spec_project(_session_spec("[fp16, int8-dynamic]", recipes="  fp16: {parity: {rel_l2: 1.0e-9}}\n"))
    result = pytester.runpytest("specs", "--junitxml=r.xml")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["*parity budget breached: model.yaml target host, backend onnxruntime, recipe fp16*",
                                 "*parity.scores.rel_l2*≤ 1e-9*over by*BREACH*"])
    cases = junit_properties(pytester.path / "r.xml")
    assert cases["host-onnxruntime-fp16-parity"]["edge.parity.scores.rel_l2.budget"] == "<= 1.000e-09 (rel_l2)"
    assert cases["host-onnxruntime-fp16-parity"]["edge.verdict"] == "fail"
    assert cases["host-onnxruntime-int8-dynamic-parity"]["edge.parity.scores.rel_l2.budget"] == "<= 0.5 (rel_l2)"
    assert cases["host-onnxruntime-int8-dynamic-parity"]["edge.verdict"] == "pass"
    assert "host-onnxruntime-none-parity" not in cases  # the reference against itself: not planned
    assert cases["host-onnxruntime-fp16-size"]["edge.recipe.steps"] == "fp16"
    assert cases["host-onnxruntime-int8-dynamic-size"]["edge.recipe.quantized_nodes"] == "1 of 2"


def test_size_ratio_is_met_by_int8_and_breached_by_the_original(pytester, spec_project):
    _mlp(pytester.path / "models" / "wide.onnx", features=256, hidden=None, classes=256)
    spec_project(_session_spec("[int8-dynamic]", model="wide.onnx", data="", budgets="size_ratio: 2"))
    result = pytester.runpytest("specs", "--junitxml=r.xml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*size budget breached: model.yaml target host, backend onnxruntime, recipe none*",
                                 "*size_ratio*1×*≥ 2×*short by 1×*BREACH*"])
    result.stdout.fnmatch_lines(["  FAIL*size*onnxruntime*none*ratio 1×*≥ 2×*short by 1×"])
    int8 = junit_properties(pytester.path / "r.xml")["host-onnxruntime-int8-dynamic-size"]
    assert float(int8["edge.size_ratio"]) > 3 and int8["edge.size_ratio.budget"] == ">= 2 x"
    assert int8["edge.artifact"] == "wide.int8-dynamic.onnx"


def test_candidate_is_measured_against_the_original_and_chains_compress_it(pytester, spec_project):
    models = pytester.path / "models"
    _mlp(models / "teacher.onnx", hidden=64)
    _mlp(models / "student.onnx", hidden=None, seed=1)
    _labelled(models / "digits.npz", models / "teacher.onnx")
    spec_project(_session_spec(
        "[[candidate, int8-dynamic]]", model="teacher.onnx", extra="candidate: {path: ../models/student.onnx}\n",
        data="  evaluation: {path: ../models/digits.npz}\n",
        budgets="accuracy_drop: 100\nparity: {top1_agreement: 0.0}\nsize_mb: 1"))
    result = pytester.runpytest("specs", "--junitxml=r.xml")
    result.assert_outcomes(passed=8)
    cases = junit_properties(pytester.path / "r.xml")
    assert {c["edge.recipe"] for c in cases.values()} == {"none", "candidate", "candidate+int8-dynamic"}
    for check in ("accuracy", "parity", "size"):
        student = cases[f"host-onnxruntime-candidate-{check}"]
        assert student["edge.artifact"] == "student.onnx"
        assert student["edge.recipe.steps"] == "candidate (student.onnx)"
        assert float(student["edge.artifact.size_ratio"]) > 1  # against the teacher
        chained = cases[f"host-onnxruntime-candidate+int8-dynamic-{check}"]
        assert chained["edge.artifact"] == "student.int8-dynamic.onnx"  # the student, quantized
        assert chained["edge.recipe.steps"] == "candidate -> int8-dynamic"
    for check in ("accuracy", "parity"):
        assert cases[f"host-onnxruntime-candidate-{check}"]["edge.reference"].startswith(
            "teacher.onnx (the original model)")
    size = cases["host-onnxruntime-candidate-size"]
    assert float(size["edge.size_ratio"]) > 1
    assert int(size["edge.parameters"]) < int(size["edge.parameters.original"])
    assert float(cases["host-onnxruntime-candidate-accuracy"]["edge.accuracy.original"]) == 100.0


def test_a_candidate_that_does_not_fit_the_model_is_a_collection_error(pytester, spec_project):
    models = pytester.path / "models"
    _mlp(models / "renamed.onnx", features=4, input_name="features")
    _mlp(models / "logits.onnx", features=4, output_name="logits")
    spec_project(_session_spec(extra="candidate: {path: ../models/renamed.onnx}\n"), name="renamed")
    spec_project(_session_spec(extra="candidate: {path: ../models/logits.onnx}\n"), name="logits")
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*invalid spec: *specs/logits.yaml:3: candidate.path: the candidate has no output 'scores', which the metric "
        "reads (candidate outputs: logits)",
    ])
    result.stdout.fnmatch_lines([
        "*invalid spec: *specs/renamed.yaml:3: candidate.path: the candidate has no input 'x' like the model's "
        "(candidate inputs: features); both must take the same inputs",
    ])


def test_recipes_that_cannot_run_fail_only_their_own_items(pytester, spec_project):
    models = pytester.path / "models"
    _scan8(models / "scan8.onnx")
    _calibration(models / "cal.npz", 16, features=4)
    spec_project(_session_spec("[int8-static, int8-dynamic]"), name="uncalibrated")
    spec_project(_session_spec("[int8-static: {exclude_nodes: [no_such_node]}]",
                               data="  calibration: ../models/cal.npz\n  evaluation: {path: ../models/eval.npz}\n"),
                 name="excluded")
    spec_project(_session_spec("[int8-dynamic, {name: int8-pc, steps: [int8-dynamic: {per_channel: true}]}]",
                               model="scan8.onnx", data="", budgets="parity: {rel_l2: 0.5}\nsize_mb: 1"), name="scan")
    result = pytester.runpytest("specs", "--junitxml=r.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2 + 1, failed=1 + 3 + 4)  # no calibration: one spec error, at collection
    result.stdout.fnmatch_lines(["invalid spec: *uncalibrated.yaml:*: compress[[]0[]]: recipe 'int8-static' calibrates "
                                 "on data: set data.calibration in the spec*"])
    result.stdout.fnmatch_lines(["*host-onnxruntime-int8-static-size: int8-static: exclude_nodes: no node named "
                                 "'no_such_node' (nodes: matmul, add)"])
    result.stdout.fnmatch_lines(["*host-onnxruntime-int8-dynamic-size: int8-dynamic: "
                                 "onnxruntime.quantization.quantize_dynamic failed: RuntimeError: *scan_8_9*"
                                 "Unsupported conversion to opset 9"])
    result.stdout.fnmatch_lines(["*host-onnxruntime-int8-pc-parity: int8-dynamic: per_channel needs opset >= 13 "
                                 "(DequantizeLinear's axis); the model is opset 8 and onnx's version converter could "
                                 "not upgrade it: RuntimeError: *Unsupported conversion to opset 9. Export the model "
                                 "at opset 13 or later, or set per_channel: false."])
    verdicts = {name: props.get("edge.verdict") for name, props in
                junit_properties(pytester.path / "r.xml", qualified=True).items()}
    passed = sorted(name for name, verdict in verdicts.items() if verdict == "pass")
    assert passed == sorted(
        [f"specs.excluded.yaml::host-onnxruntime-none-{c}" for c in ("accuracy", "size")]
        + ["specs.scan.yaml::host-onnxruntime-none-size"])


def test_lowrank_with_nothing_to_factorize_skips_and_fails_under_strict(pytester, spec_project):
    spec_project(_session_spec("[lowrank]", budgets="size_mb: 1"))
    result = pytester.runpytest("specs", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*lowrank: nothing to factorize: *"])
    strict = pytester.runpytest("specs", "--edge-strict")
    strict.assert_outcomes(passed=1, failed=1)
    strict.stdout.fnmatch_lines(["*lowrank: nothing to factorize: *(--edge-strict turns this skip into a failure)*"])


def test_a_chain_with_the_step_none_is_refused_or_runs(pytester, spec_project):
    spec_project(_session_spec("[[none, int8-dynamic]]", budgets="size_mb: 1"))
    result = pytester.runpytest("specs")
    output = result.stdout.str()
    assert "did not write its artifact" not in output
    assert result.ret == pytest.ExitCode.OK or "invalid spec:" in output and "compress[0]" in output


# ---------------------------------------------------------------- recipes called directly


@pytest.mark.parametrize("params", [{}, {"method": "entropy"}, {"method": "percentile", "percentile": 99.9},
                                    {"per_channel": True}],
                         ids=["minmax", "entropy", "percentile", "per_channel"])
def test_int8_static_builds_are_byte_identical(tmp_path, params):
    model = _mlp(tmp_path / "mlp.onnx")
    calibration = _calibration(tmp_path / "cal.npz", 32)
    first = _apply("int8-static", model, tmp_path, calibration, **params)
    second = _apply("int8-static", model, tmp_path, calibration, **params)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.notes == second.notes
    assert first.notes["calibration"] == "cal.npz (32 of 32 samples)"


@pytest.mark.parametrize("recipe", ["int8-static", "int8-dynamic"])
def test_per_channel_upgrades_an_opset_12_model_to_13(tmp_path, recipe):
    model = _mlp(tmp_path / "old.onnx", opset=12)
    calibration = _calibration(tmp_path / "cal.npz", 16) if recipe == "int8-static" else None
    artifact = _apply(recipe, model, tmp_path, calibration, per_channel=True)
    assert artifact.notes["opset"] == "12 -> 13 (per-channel DequantizeLinear needs axis)"
    assert _opset(artifact.path) >= 13
    onnx.checker.check_model(str(artifact.path), full_check=True)
    x = np.random.default_rng(2).uniform(-1, 1, size=(8, 16)).astype(np.float32)
    expected, = _run(model, {"x": x})
    actual, = _run(artifact.path, {"x": x})
    assert np.linalg.norm(actual - expected) / np.linalg.norm(expected) < 0.3  # int8 on a tiny model
    assert artifact.path.name == f"old.{recipe}.onnx"
    assert sorted(p.name for p in artifact.path.parent.iterdir()) == [artifact.path.name]


def test_per_channel_int8_static_puts_an_axis_on_weight_dequantizers(tmp_path):
    artifact = _apply("int8-static", _mlp(tmp_path / "m.onnx"), tmp_path, _calibration(tmp_path / "c.npz", 16),
                      per_channel=True)
    axes = [n for n in onnx.load(str(artifact.path)).graph.node
            if n.op_type == "DequantizeLinear" and any(a.name == "axis" for a in n.attribute)]
    assert axes, "no per-channel DequantizeLinear"
    assert "opset" not in artifact.notes  # already opset 13: no upgrade


def test_a_fixed_batch_model_calibrates_on_whole_batches(tmp_path):
    model = _mlp(tmp_path / "fixed.onnx", batch=4)
    artifact = _apply("int8-static", model, tmp_path, _calibration(tmp_path / "cal.npz", 10))
    assert artifact.notes["calibration"] == "cal.npz (8 of 10 samples)"
    x = np.random.default_rng(3).uniform(-1, 1, size=(4, 16)).astype(np.float32)
    assert _run(artifact.path, {"x": x})[0].shape == (4, 3)


def test_samples_limits_the_calibration_set(tmp_path):
    model = _mlp(tmp_path / "m.onnx")
    calibration = _calibration(tmp_path / "cal.npz", 40)
    limited = _apply("int8-static", model, tmp_path, calibration, samples=16)
    assert limited.notes["calibration"] == "cal.npz (16 of 40 samples)"
    whole = _apply("int8-static", model, tmp_path, calibration)
    assert whole.notes["calibration"] == "cal.npz (40 of 40 samples)"


@pytest.mark.parametrize("recipe", ["int8-static", "int8-dynamic"])
def test_an_excluded_node_stays_float(tmp_path, recipe):
    from conftest import make_classifier

    make_classifier(tmp_path / "clf.onnx", features=16)  # x -> MatMul "matmul" (W) -> Add "add" (B)
    model, calibration = tmp_path / "clf.onnx", _calibration(tmp_path / "cal.npz", 16)
    default = _apply(recipe, model, tmp_path, calibration)
    excluded = _apply(recipe, model, tmp_path, calibration, exclude_nodes=["matmul"])
    assert "matmul" not in default.notes.get("float_nodes", "").split(", ")
    assert "matmul" in excluded.notes["float_nodes"].split(", ")
    assert int(excluded.notes["quantized_nodes"].split()[0]) < int(default.notes["quantized_nodes"].split()[0])
    matmul = next(n for n in onnx.load(str(excluded.path)).graph.node if n.name == "matmul")
    assert (matmul.op_type, list(matmul.input)) == ("MatMul", ["x", "W"])  # float input, float weight


def _reads_float_w2(artifact: Path) -> bool:
    return any("W2" in n.input for n in onnx.load(str(artifact)).graph.node)


def test_int8_static_notes_name_an_excluded_last_gemm_as_float(tmp_path):
    artifact = _apply("int8-static", _mlp(tmp_path / "m.onnx"), tmp_path, _calibration(tmp_path / "cal.npz", 16),
                      exclude_nodes=["fc2"])
    assert _reads_float_w2(artifact.path)  # the exclusion itself works
    assert "fc2" in artifact.notes.get("float_nodes", "").split(", ")


def test_int8_dynamic_leaves_an_excluded_gemm_float(tmp_path):
    artifact = _apply("int8-dynamic", _mlp(tmp_path / "m.onnx"), tmp_path, exclude_nodes=["fc2"])
    assert _reads_float_w2(artifact.path)


def test_exclude_nodes_naming_no_node_lists_the_model_s_nodes(tmp_path):
    from edgecheck.errors import RecipeError

    with pytest.raises(RecipeError) as info:
        _apply("int8-dynamic", _mlp(tmp_path / "m.onnx"), tmp_path, exclude_nodes=["fc3"])
    assert str(info.value) == "int8-dynamic: exclude_nodes: no node named 'fc3' (nodes: fc1, relu1, fc2)"


@pytest.mark.parametrize("keep_io_types, elem_type", [(True, TensorProto.FLOAT), (False, TensorProto.FLOAT16)])
def test_fp16_input_and_output_types(tmp_path, keep_io_types, elem_type):
    artifact = _apply("fp16", _mlp(tmp_path / "m.onnx"), tmp_path, keep_io_types=keep_io_types)
    assert _elem_types(artifact.path) == ([elem_type], [elem_type])
    assert artifact.notes["io"] == ("float32 (Casts at the edges)" if keep_io_types else "float16")
    weights = {t.name: t.data_type for t in onnx.load(str(artifact.path)).graph.initializer}
    assert weights["W1"] == weights["W2"] == TensorProto.FLOAT16
    onnx.checker.check_model(str(artifact.path), full_check=True)


def test_fp16_outputs_stay_close_to_the_original(tmp_path):
    model = _mlp(tmp_path / "m.onnx")
    artifact = _apply("fp16", model, tmp_path)
    x = np.random.default_rng(4).uniform(-1, 1, size=(32, 16)).astype(np.float32)
    expected, = _run(model, {"x": x})
    actual, = _run(artifact.path, {"x": x})
    assert actual.dtype == np.float32
    assert np.linalg.norm(actual - expected) / np.linalg.norm(expected) < 1e-2
    assert "clamped_weights" not in artifact.notes and "float32_nodes" not in artifact.notes


def test_fp16_keep_nodes_leaves_that_node_in_float32(tmp_path):
    artifact = _apply("fp16", _mlp(tmp_path / "m.onnx"), tmp_path, keep_nodes=["fc2"])
    assert artifact.notes["float32_nodes"] == "fc2"
    weights = {t.name: t.data_type for t in onnx.load(str(artifact.path)).graph.initializer}
    assert (weights["W1"], weights["W2"]) == (TensorProto.FLOAT16, TensorProto.FLOAT)
    x = np.random.default_rng(4).uniform(-1, 1, size=(4, 16)).astype(np.float32)
    assert _run(artifact.path, {"x": x})[0].shape == (4, 3)


def test_fp16_reports_weights_beyond_its_range(tmp_path):
    artifact = _apply("fp16", _mlp(tmp_path / "m.onnx", big_weight=1.0e5), tmp_path)
    assert artifact.notes["clamped_weights"] == "1 above 65504, 0 below 1e-07 in magnitude"
    w1 = numpy_helper.to_array(next(t for t in onnx.load(str(artifact.path)).graph.initializer if t.name == "W1"))
    assert w1.dtype == np.float16 and np.isfinite(w1).all()


def test_fp16_never_clamps_a_weight_without_saying_so(tmp_path):
    artifact = _apply("fp16", _mlp(tmp_path / "m.onnx", big_weight=2.0e4), tmp_path)
    w1 = numpy_helper.to_array(next(t for t in onnx.load(str(artifact.path)).graph.initializer if t.name == "W1"))
    assert float(w1[0, 0]) == 2.0e4 or "clamped_weights" in artifact.notes


# What review found: a reserved name, candidate shapes, a third-party recipe's crash, the cache key.


def test_an_entry_named_candidate_is_refused_even_without_a_candidate_model(pytester, spec_project):
    spec_project(_session_spec("\n  - {name: candidate, steps: [int8-dynamic]}"))
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*invalid spec: *compress[[]0[]]: 'candidate' names the candidate model's own items*"])


def test_a_candidate_with_another_fixed_input_shape_is_a_collection_error(pytester, spec_project):
    make_classifier(pytester.path / "models" / "wide.onnx", features=5)
    spec_project(_session_spec(extra="candidate: {path: ../models/wide.onnx}\n"))
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*invalid spec: *candidate.path: candidate input 'x' has shape [[]?, 5[]], "
                                 "the model's [[]?, 4[]]: both get the same feeds*"])


CRASHING_RECIPE = '''
from edgecheck.compress import register_recipe, unregister_recipe


@register_recipe("crashes")
def crashes(model, params, context):
    raise ZeroDivisionError("a bug in a third-party recipe")


def pytest_unconfigure(config):
    unregister_recipe("crashes")
'''


def test_a_recipe_that_raises_anything_fails_its_items_with_the_recipe_named(pytester, spec_project):
    pytester.makeconftest(CRASHING_RECIPE)
    spec_project(_session_spec("[crashes, int8-dynamic]"))
    result = pytester.runpytest("specs")
    result.assert_outcomes(passed=5, failed=3)
    result.stdout.fnmatch_lines(["*recipe 'crashes' failed on clf.onnx: ZeroDivisionError: a bug in a third-party "
                                 "recipe*"])


def test_the_artifact_key_holds_the_recipe_source_and_the_outputs_key_the_machine(tmp_path):
    from edgecheck.artifacts import _code_digest, step_key
    from edgecheck.compress import get_recipe
    from edgecheck.execute import machine_signature

    model = tmp_path / "clf.onnx"
    make_classifier(model)
    key = step_key(model, RecipeStep(recipe="int8-dynamic"), None)
    assert key != step_key(model, RecipeStep(recipe="fp16"), None)
    assert _code_digest(get_recipe("int8-dynamic").apply) != _code_digest(get_recipe("prune").apply)
    assert len(machine_signature().split()) >= 2  # the CPU and a digest of its instruction-set flags
