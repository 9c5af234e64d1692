"""--edge-suggest: budgets from a run's figures, looser than what was measured, never tighter than noise."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from result_records import record, variant, with_measurements, without

from edgecheck.checks.result import Measurement as M
from edgecheck.errors import EdgecheckError
from edgecheck.report.suggest import (
    DEFAULT_MARGIN,
    SuggestError,
    format_suggestions,
    round_down,
    round_up,
    suggest_budgets,
)
from edgecheck.spec import load_spec_text
from edgecheck.spec.schema import Budgets, TargetSpec

ROOT = Path(__file__).resolve().parents[1]
SPEC = "specs/digits.yaml"

# The figures of `pytest specs --edge-target=host --junitxml=...` on the shipped example (some facts left out).
_COMMON = {"measured_on": "host", "host": "x86_64 AMD EPYC",
           "runtime": "onnxruntime 1.32.0 CPUExecutionProvider, 2 threads"}
INT8_ACCURACY = record("accuracy", "int8-static", [
    M("accuracy_drop", 0.37037037, "pts", 0.5, "max"), M("accuracy_drop_relative", 0.37593985, "%"),
    M("accuracy", 98.1481481, "%", 95, "min"), M("accuracy.original", 98.5185185, "%"),
], {**_COMMON, "metric": "top1", "inputs": "test.npz (540 of 540 samples)", "inputs.samples": "540", "artifact": "digits.int8-static.onnx",
    "artifact.size_bytes": "15068", "recipe.steps": "int8-static"})
INT8_PARITY = record("parity", "int8-static", [
    M("parity.logits.max_abs", 2.56921005, "", 5, "max", "5 (atol)"), M("parity.logits.max_rel", 21.7997487),
    M("parity.logits.rel_l2", 0.0434060285, "", 0.08, "max", "0.08 (rel_l2)"),
    M("parity.logits.cosine", 0.999259978), M("parity.logits.snr_db", 27.248999, "dB", 20, "min", "20 dB (snr_db)"),
    M("parity.logits.top1_agreement", 1), M("parity.logits.mean_abs", 0.300597273),
], {**_COMMON, "inputs": "test.npz (128 of 540 samples)", "inputs.samples": "128", "artifact": "digits.int8-static.onnx",
    "artifact.size_ratio": "2.663", "recipe.quantized_nodes": "5 of 8"})
INT8_SIZE = record("size", "int8-static", [
    M("size_mb", 0.0143699646, "MiB", 0.05, "max"), M("size_ratio", 2.66272896, "x"), M("size_bytes", 15068, "B"),
    M("parameters", 9828), M("parameters.original", 9802),
], {**_COMMON, "artifact": "digits.int8-static.onnx", "artifact.size_bytes": "15068", "artifact.size_ratio": "2.663"})
NONE_PARITY = record("parity", "none", [
    M("parity.logits.max_abs", 0, "", 5, "max", "5 (atol)"), M("parity.logits.max_rel", 0),
    M("parity.logits.rel_l2", 0), M("parity.logits.cosine", 1), M("parity.logits.snr_db", math.inf, "dB"),
    M("parity.logits.top1_agreement", 1), M("parity.logits.mean_abs", 0),
], {**_COMMON, "inputs": "test.npz (128 of 540 samples)", "inputs.samples": "128", "artifact": "digits.onnx", "artifact.size_bytes": "40122"})
FP16_PARITY = record("parity", "fp16", [
    M("parity.logits.max_abs", 0.00769090652), M("parity.logits.max_rel", 0.214369682),
    M("parity.logits.rel_l2", 0.000249507329), M("parity.logits.cosine", 0.999999971),
    M("parity.logits.snr_db", 72.0583339, "dB"), M("parity.logits.top1_agreement", 1),
    M("parity.logits.mean_abs", 0.00176982334),
], {**_COMMON, "inputs": "test.npz (128 of 540 samples)", "inputs.samples": "128", "artifact": "digits.fp16.onnx"})
# The latency and memory checks' figures, on a device target measured on this host.
_MACHINE = {"env.machine": "x86_64 AMD EPYC 7B13 | avx2 avx512f | 3f2a9c"}
LATENCY = record("latency", "int8-static", [
    M("latency.p50", 0.0412, "ms", interval=(0.0409, 0.0415)), M("latency.p90", 0.05),
    M("latency.p95", 0.0531, interval=(0.052, math.nan)), M("latency.p99", 0.0901, interval=(0.08, 0.1011)),
    M("latency.mean", 0.044), M("latency.std", 0.004), M("latency.min", 0.039), M("latency.max", 0.2),
    M("latency.samples", 1000),
], {**_COMMON, **_MACHINE, "latency.stats": '{"p50": 0.0412}'}, target="rk3588")
MEMORY = record("memory", "int8-static", [
    M("memory.peak", 3.25, "MiB"), M("memory.process", 61.5), M("memory.baseline", 58.25),
    M("memory.model_file", 0.0143699646),
], {**_COMMON, **_MACHINE}, target="rk3588")


def entry(suggestions: dict, recipe: str, target: str = "host", spec: str = SPEC) -> dict:
    return suggestions[spec]["targets"][target]["recipes"][recipe]


def test_budgets_of_a_real_run() -> None:
    suggestions = suggest_budgets([INT8_ACCURACY, INT8_PARITY, INT8_SIZE, NONE_PARITY])
    assert entry(suggestions, "int8-static") == {
        # 0.37037 + 2 * 100 * sqrt(0.98148 * 0.01852 / 540) = 1.5308, rounded up to 0.01
        "accuracy_drop": 1.54,
        "parity": {
            "atol": 2.9,                # 2.5692 * 1.1 = 2.826 -> 2 significant digits, up
            "rel_l2": 0.048,            # 0.043406 * 1.1 = 0.047747
            "cosine": 0.99918,          # 1 - 0.00074002 * 1.1 = 1 - 0.000814 -> gap rounded up to 0.00082
            "snr_db": 26.8,             # 27.249 - 10 log10(1.1) = 26.835, down to 0.1 dB
            "top1_agreement": 0.9921,   # 1 - 1/128 = 0.99219: gap 0.0078125 rounded up to 0.0079
        },
        "size_mb": 0.016,               # 0.01437 * 1.1 = 0.015807
        "size_ratio": 2.3,              # 2.6627 * 0.9 = 2.3965, down
    }
    assert list(entry(suggestions, "int8-static")) == ["accuracy_drop", "parity", "size_mb", "size_ratio"]
    assert list(suggestions[SPEC]["targets"]["host"]["recipes"]) == ["none", "int8-static"]


def test_a_bit_exact_original_gets_epsilons_not_zeros() -> None:
    parity = entry(suggest_budgets([NONE_PARITY]), "none")["parity"]
    assert parity == {"atol": 1e-6, "rel_l2": 1e-6, "cosine": 0.999999, "top1_agreement": 0.9921}  # no snr: inf
    text = format_suggestions(suggest_budgets([NONE_PARITY]), DEFAULT_MARGIN)
    assert "1e-06: the run was bit-exact" in text


def test_the_noise_floor_raises_a_tolerance() -> None:
    """A backend that is itself far from the reference (threads, kernels) sets the floor for every artifact."""
    noisy_none = variant(NONE_PARITY, parity__logits__max_abs="0.02", parity__logits__rel_l2="0.001",
                         parity__logits__cosine="0.9999", parity__logits__snr_db="60",
                         parity__logits__top1_agreement="0.9921875")
    alone = entry(suggest_budgets([FP16_PARITY]), "fp16")["parity"]
    assert alone == {"atol": 0.0085, "rel_l2": 0.00028, "cosine": 0.999999, "snr_db": 71.6, "top1_agreement": 0.9921}
    floored = entry(suggest_budgets([FP16_PARITY, noisy_none]), "fp16")["parity"]
    assert floored == {
        "atol": 0.022,              # max(0.0077, 0.02) * 1.1
        "rel_l2": 0.0011,           # max(0.00025, 0.001) * 1.1
        "cosine": 0.99989,          # 1 - (1 - 0.9999) * 1.1
        "snr_db": 59.5,             # 60 - 0.41
        "top1_agreement": 0.984,    # 0.9921875 - 1/128 = 0.984375: gap 0.015625 up to 0.016
    }
    # the floor is per target and backend: another backend's original does not raise this one
    elsewhere = variant(noisy_none, backend="tflite")
    assert entry(suggest_budgets([FP16_PARITY, elsewhere]), "fp16")["parity"] == alone


def test_a_floor_never_tightens() -> None:
    loose_int8 = entry(suggest_budgets([INT8_PARITY]), "int8-static")["parity"]
    assert entry(suggest_budgets([INT8_PARITY, NONE_PARITY]), "int8-static")["parity"] == loose_int8


def test_rounding_directions() -> None:
    assert round_up(0.0421) == 0.043 and round_down(0.0421) == 0.042
    assert round_up(2.3965) == 2.4 and round_down(2.3965) == 2.3
    assert round_up(0.05) == 0.05 and round_down(0.05) == 0.05   # already 2 digits: unchanged
    assert round_up(1.9) == 1.9 and round_up(19000) == 19000 and round_up(19001) == 20000
    assert round_up(0.00011) == 0.00011 and round_up(1.0000001e-7) == 1.1e-7
    assert round_down(-3.45) == -3.5 and round_up(-3.45) == -3.4  # towards looser, whatever the sign
    assert round_up(0.0) == 0.0


@pytest.mark.parametrize("margin", [0.0, 0.05, 0.1, 0.25, 0.5])
def test_suggestions_always_pass_the_run_they_came_from(margin: float) -> None:
    budgets = entry(suggest_budgets([INT8_ACCURACY, INT8_PARITY, INT8_SIZE, NONE_PARITY], margin), "int8-static")
    assert budgets["accuracy_drop"] >= 0.37037037
    assert budgets["parity"]["atol"] >= 2.56921005 * (1 + margin)
    assert budgets["parity"]["rel_l2"] >= 0.0434060285 * (1 + margin)
    assert budgets["parity"]["cosine"] <= 1 - (1 - 0.999259978) * (1 + margin)
    assert budgets["parity"]["snr_db"] <= 27.248999 - 10 * math.log10(1 + margin)
    assert budgets["parity"]["top1_agreement"] <= 1 - 1 / 128
    assert budgets["size_mb"] >= 0.0143699646 * (1 + margin)
    assert budgets["size_ratio"] <= 2.66272896 * (1 - margin)


def test_loosest_over_backends() -> None:
    other = {"backend": "tflite", "runtime": "tflite 2.16 XNNPACK, 4 threads"}
    items = [
        INT8_PARITY, INT8_SIZE, INT8_ACCURACY,
        variant(INT8_PARITY, **other, parity__logits__max_abs="1.5", parity__logits__rel_l2="0.09",
                parity__logits__cosine="0.9999", parity__logits__snr_db="22", parity__logits__top1_agreement="0.96875"),
        variant(INT8_SIZE, **other, size_mb="0.02", size_ratio="1.9"),
        variant(INT8_ACCURACY, **other, accuracy_drop="-0.2", accuracy="98.7037037"),
    ]
    suggestions = suggest_budgets(items)
    assert list(suggestions[SPEC]["targets"]["host"]["recipes"]) == ["int8-static"]  # one entry, not one per backend
    assert entry(suggestions, "int8-static") == {
        "accuracy_drop": 1.54,   # onnxruntime's; tflite's negative drop counts as 0: 0 + 2 SE(98.70 %) = 0.97
        "parity": {"atol": 2.9, "rel_l2": 0.099, "cosine": 0.99918, "snr_db": 21.5, "top1_agreement": 0.96},
        "size_mb": 0.022,
        "size_ratio": 1.7,
    }


def test_output_names_with_dots_and_the_loosest_output() -> None:
    item = with_measurements(without(INT8_PARITY, "parity."), M("parity.head.v1.probs.rel_l2", 0.2, "", 0.3, "max"),
                             M("parity.head.v1.probs.cosine", 0.98), M("parity.logits.rel_l2", 0.01),
                             M("parity.logits.cosine", 0.9995), M("parity.logits.snr_db", math.nan))
    floor = with_measurements(without(NONE_PARITY, "parity."),
                              M("parity.logits.rel_l2", 0.05))  # raises logits only: head.v1.probs has no floor
    assert entry(suggest_budgets([item, floor]), "int8-static")["parity"] == {"rel_l2": 0.22, "cosine": 0.978}


def test_accuracy_only_for_percent_metrics_and_without_a_sample_count() -> None:
    mse = variant(INT8_ACCURACY, metric="mse", accuracy="0.0123", accuracy_drop="0.001")
    next(m for m in mse["result"]["measurements"] if m["name"] == "accuracy")["unit"] = ""
    assert suggest_budgets([mse]) == {}
    unknown_n = variant(INT8_ACCURACY, inputs="custom loader", inputs__samples=None)
    assert entry(suggest_budgets([unknown_n]), "int8-static") == {"accuracy_drop": 0.51}  # 0.37037 * 1.1 + 0.1
    perfect = variant(INT8_ACCURACY, accuracy="100", accuracy_drop="0", inputs="test.npz (200 of 540 samples)", inputs__samples="200")
    assert entry(suggest_budgets([perfect]), "int8-static") == {"accuracy_drop": 0.5}  # one sample: 100/200


def test_top1_slack_from_synthetic_inputs_or_a_default() -> None:
    synthetic = variant(FP16_PARITY, inputs="synthetic (32 inputs, seed 0)", inputs__samples="32")
    assert entry(suggest_budgets([synthetic]), "fp16")["parity"]["top1_agreement"] == 0.968  # 1 - 1/32 = 0.96875
    unknown = variant(FP16_PARITY, inputs="a stream", inputs__samples=None)
    assert entry(suggest_budgets([unknown]), "fp16")["parity"]["top1_agreement"] == 0.99


def test_latency_and_memory() -> None:
    suggestions = suggest_budgets([LATENCY, MEMORY])
    budgets = entry(suggestions, "int8-static", target="rk3588")
    assert budgets == {
        "latency_ms": {
            "p50": 0.046,       # ci_high 0.0415 * 1.1 = 0.04565
            "p95": 0.059,       # ci_high is nan: the percentile, 0.0531 * 1.1 = 0.05841
            "p99": 0.12,        # 0.1011 * 1.1 = 0.11121
            "source": "host",   # a device target's budget from this host's figures says so
        },
        "memory_mb": {"peak": 3.6, "source": "host"},   # 3.25 * 1.1 = 3.575
    }
    few = variant(LATENCY, latency__samples="661", target="host")
    assert entry(suggest_budgets([few]), "int8-static") == {"latency_ms": {"p50": 0.046, "p95": 0.059}}
    nothing = variant(MEMORY, memory__peak="-0.5")  # the footprint was within the baseline's noise
    assert suggest_budgets([nothing]) == {}


def test_no_budget_kind_without_a_figure() -> None:
    size_only = suggest_budgets([INT8_SIZE])
    assert entry(size_only, "int8-static") == {"size_mb": 0.016, "size_ratio": 2.3}
    broken = with_measurements(without(INT8_PARITY, "parity."), M("parity.logits.max_abs", math.nan),
                               M("parity.logits.rel_l2", math.inf), M("parity.logits.snr_db", -math.inf))
    broken["result"]["problems"] = ["output shape (1, 10) != (1, 9)"]
    assert suggest_budgets([broken]) == {}
    assert suggest_budgets([{"spec": SPEC, "result": {"check": "size", "measurements": [M("size_mb", 1).to_dict()]}},
                            {"name": "test_other"}]) == {}
    assert suggest_budgets([]) == {}


@pytest.mark.parametrize("margin", [-0.1, 1.0, float("nan"), float("inf"), True, "0.1"])
def test_bad_margins(margin: object) -> None:
    with pytest.raises(SuggestError, match="margin") as caught:
        suggest_budgets([INT8_SIZE], margin)  # type: ignore[arg-type]
    assert isinstance(caught.value, EdgecheckError)


def _budget_fields(budgets: dict) -> dict:
    """The keys the schema knows today (latency_ms and memory_mb are being added to it)."""
    return {k: v for k, v in budgets.items() if k in Budgets.model_fields}


ALL = [INT8_ACCURACY, INT8_PARITY, INT8_SIZE, NONE_PARITY, FP16_PARITY, LATENCY, MEMORY,
       variant(INT8_SIZE, spec="specs/other.yaml")]


def test_the_yaml_parses_back_and_validates() -> None:
    suggestions = suggest_budgets(ALL)
    text = format_suggestions(suggestions, DEFAULT_MARGIN)
    blocks = text.split("\n\n")
    assert len(blocks) == 2 and blocks[0].startswith(f"# {SPEC}:") and blocks[1].startswith("# specs/other.yaml:")
    for block, spec in zip(blocks, [SPEC, "specs/other.yaml"]):
        targets = yaml.safe_load(block)
        assert targets == suggestions[spec]["targets"]
        for target, section in targets.items():
            for recipe, budgets in section["recipes"].items():
                known = _budget_fields(budgets)
                assert Budgets.model_validate(known).model_dump(exclude_unset=True, exclude_none=True), recipe
            TargetSpec.model_validate({"recipes": {r: _budget_fields(b) for r, b in section["recipes"].items()}})


def test_pasted_under_targets_the_spec_loads() -> None:
    """The promise of the comments: paste under the spec's targets: and it is a valid spec."""
    items = [INT8_ACCURACY, INT8_PARITY, INT8_SIZE, NONE_PARITY, FP16_PARITY]
    if "latency_ms" in Budgets.model_fields:
        items += [variant(LATENCY, target="host"), variant(MEMORY, target="host")]
    text = format_suggestions(suggest_budgets(items), DEFAULT_MARGIN)
    spec_text = (ROOT / SPEC).read_text().split("\ntargets:")[0]
    pasted = spec_text + "\ntargets:\n" + "".join("  " + line + "\n" for line in text.splitlines())
    loaded = load_spec_text(pasted, ROOT / SPEC, ROOT)
    host = loaded.spec.targets["host"]
    assert host.budgets_for("int8-static").parity.rel_l2 == 0.048
    assert host.budgets_for("none").parity.atol == 1e-6


def test_the_comments_say_how_each_budget_was_derived() -> None:
    text = format_suggestions(suggest_budgets(ALL, margin=0.2), 0.2)
    head = text.split("\nhost:")[0].splitlines()
    assert all(line.startswith("# ") for line in head)
    assert "margin 20%" in head[0] and SPEC in head[0]
    for kind in ("accuracy_drop", "parity", "size_mb", "size_ratio"):
        assert sum(line.startswith(f"# {kind}:") for line in head) == 1, kind
    assert any("noise floor" in line for line in head)
    assert head[-1] == "# paste under the spec's targets: and review; edgecheck never edits a spec"
    assert "# latency_ms:" in text and "# memory_mb:" in text  # rk3588's block has them
    other = text.split("# specs/other.yaml:")[1]
    assert "# size_mb:" in other and "# parity:" not in other  # only the kinds in that block
    assert format_suggestions({}, DEFAULT_MARGIN).startswith("# ")
