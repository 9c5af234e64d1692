"""`edgecheck schema` as editors and validators use it: check-jsonschema (the command CI runs) and the
jsonschema library accept the shipped specs and refuse an unknown recipe, recipe parameter and device,
as the loader does; every example in the schema is valid where it stands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgecheck.cli import main
from edgecheck.compress import known_recipes
from edgecheck.devices import load_profiles
from edgecheck.plan import spec_json_schema
from edgecheck.spec import SCHEMA_ID

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "specs").glob("*.yaml"))
MINIMAL = {"edgecheck": 1, "model": {"path": "model.onnx"}, "compress": ["int8-dynamic"],
           "targets": {"host": {"budgets": {"size_mb": 1}}}}
MISTAKES = {  # what a validator must refuse, and the words its message holds
    "unknown recipe": ({"compress": ["int9-magic"]}, "'int9-magic' is not one of"),
    "unknown recipe parameter": ({"compress": [{"prune": {"sparsity": 0.5, "speed": 2}}]}, "'speed' was unexpected"),
    "unknown parameter in a chain": ({"compress": [["fp16", {"int8-static": {"methd": "entropy"}}]]},
                                     "'methd' was unexpected"),
    "unknown parameter in a named entry": ({"compress": [{"name": "x", "steps": [{"lowrank": {"rnk": 0.5}}]}]},
                                           "'rnk' was unexpected"),
    "bad parameter value": ({"compress": [{"int8-static": {"method": "fast"}}]}, "'fast' is not one of"),
    "unknown device": ({"targets": {"rk9999": {"budgets": {"size_mb": 1}}}}, "'rk9999' is not one of"),
    "unknown backend": ({"targets": {"host": {"backends": ["onnxruntim"], "budgets": {"size_mb": 1}}}},
                        "'onnxruntim'"),
    "unknown metric": ({"data": {"evaluation": {"path": "e.npz", "metric": "top-1"}}}, "top-1"),
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return spec_json_schema()


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `edgecheck schema` prints, as a file: the command's own output, not the function's."""
    printed = subprocess.run([sys.executable, "-m", "edgecheck", "schema"], capture_output=True, text=True,
                             check=True, cwd=ROOT).stdout
    path = tmp_path_factory.mktemp("schema") / "spec-schema.json"
    path.write_text(printed)
    return path


def _check_jsonschema(schema_file: Path, *specs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema_file),
                           *map(str, specs)], capture_output=True, text=True)


def _errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [error.message for error in validator.iter_errors(document)]


def test_the_schema_names_itself_and_its_draft(schema, schema_file):
    assert schema["$id"] == SCHEMA_ID == "https://edgecheck.dev/schema/spec-v1.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "edgecheck spec" and schema["description"]
    assert json.loads(schema_file.read_text())["$id"] == SCHEMA_ID
    jsonschema.Draft202012Validator.check_schema(schema)


def test_check_jsonschema_accepts_the_shipped_specs(schema_file):
    assert SHIPPED, "no spec in specs/"
    result = _check_jsonschema(schema_file, *SHIPPED)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", ["unknown recipe", "unknown recipe parameter", "unknown device"])
def test_check_jsonschema_refuses_a_spec_with(case, schema_file, tmp_path):
    change, words = MISTAKES[case]
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(MINIMAL))
    bad.write_text(yaml.safe_dump({**MINIMAL, **change}))
    assert _check_jsonschema(schema_file, good).returncode == 0
    result = _check_jsonschema(schema_file, bad)
    assert result.returncode == 1, result.stdout
    assert words in result.stdout


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_jsonschema_refuses_in_process(schema, case):
    assert _errors(schema, MINIMAL) == []
    change, words = MISTAKES[case]
    document = json.loads(json.dumps({**MINIMAL, **change}))
    if "data" in change:
        document["compress"] = []
    errors = _errors(schema, document)
    assert any(words in message for message in errors), errors


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda p: p.name)
def test_jsonschema_accepts_the_shipped_specs(schema, spec):
    assert _errors(schema, yaml.safe_load(spec.read_text())) == []


@pytest.mark.parametrize("entry", [
    "fp16", {"fp16": None}, {"prune": {"sparsity": 0.3, "structured": True}}, ["candidate", "int8-static"],
    [{"prune": {"sparsity": 0.125}}, "int8-static"], {"name": "pc", "steps": [{"int8-static": {"per_channel": True}}]},
    {"name": "one", "steps": "fp16"}, {"steps": ["fp16"]}, {"rknn-int8": {"platform": "rk3566"}},
])
def test_every_form_of_a_compress_entry_is_accepted(schema, entry):
    assert _errors(schema, {**MINIMAL, "compress": [entry]}) == []


@pytest.mark.parametrize("entry", [5, [], {"prune": {}, "fp16": {}}, {"name": "x"}, {"prune": 0.5}])
def test_malformed_compress_entries_are_refused(schema, entry):
    assert _errors(schema, {**MINIMAL, "compress": [entry]})


def test_recipes_devices_backends_and_metrics_are_enums(schema):
    definitions = schema["$defs"]
    assert definitions["RecipeName"]["enum"] == [*known_recipes(), "candidate"]
    assert len(definitions["RecipeName"]["enumDescriptions"]) == len(definitions["RecipeName"]["enum"])
    with_params = definitions["RecipeWithParams"]["properties"]
    assert set(with_params) == set(known_recipes())
    prune = schema_at(schema, with_params["prune"]["else"]["$ref"])
    assert prune["additionalProperties"] is False and "sparsity" in prune["properties"]
    targets = schema["properties"]["targets"]
    assert targets["propertyNames"]["enum"] == sorted(load_profiles())
    assert set(targets["properties"]) == set(load_profiles())  # what an editor offers as keys
    backends = definitions["TargetSpec"]["properties"]["backends"]["anyOf"][0]["items"]["enum"]
    assert {"onnxruntime", "tflite", "rknn"} <= set(backends)
    metric = definitions["EvaluationData"]["properties"]["metric"]
    assert metric["anyOf"][0]["enum"] == ["top1", "mse"]


def test_main_fields_have_descriptions_and_examples(schema):
    budgets = schema["$defs"]["Budgets"]["properties"]
    for name in ("size_mb", "latency_ms", "memory_mb", "accuracy_drop", "parity", "ops"):
        assert budgets[name].get("description") and budgets[name].get("examples"), name
    for name in ("model", "compress", "targets"):
        assert schema["properties"][name].get("examples"), name


def test_every_example_is_valid_where_it_stands(schema):
    """An example an editor offers must pass the schema it is an example of: each `examples` list, checked
    against the subschema it sits in (with the root's $defs)."""
    checked = 0
    for subschema in _subschemas(schema):
        for example in subschema.get("examples", []):
            alone = {**{k: v for k, v in subschema.items() if k != "examples"}, "$defs": schema["$defs"]}
            errors = [e.message for e in jsonschema.Draft202012Validator(alone).iter_errors(example)]
            assert errors == [], (example, errors)
            checked += 1
    assert checked >= 20


def test_a_project_device_folder_adds_its_devices(tmp_path, capsys):
    folder = tmp_path / "devices"
    folder.mkdir()
    (folder / "lab-box.yaml").write_text("name: lab-box\nextends: host\n")
    assert main(["schema", "--devices-dir", str(folder)]) == 0
    names = json.loads(capsys.readouterr().out)["properties"]["targets"]["propertyNames"]["enum"]
    assert "lab-box" in names and "host" in names
    assert main(["schema", "--devices-dir", str(tmp_path / "none")]) == 2
    assert "not found" in capsys.readouterr().err


def test_the_loader_refuses_an_unknown_parameter_at_its_line_naming_the_allowed_ones(pytester, spec_project):
    """What the schema refuses, a run refuses too, in the spec's terms: the recipe, the parameter, the
    parameters it has, at the parameter's own line."""
    spec_project("""\
        edgecheck: 1
        model: {path: ../models/clf.onnx}
        compress:
          - prune:
              sparsity: 0.5
              sparsty: 0.5
        targets:
          host: {budgets: {size_mb: 1}}
        """)
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*invalid spec: *specs/model.yaml:6: compress[[]0[]]: recipe 'prune': sparsty: "
                                 "unknown parameter (known: sparsity, structured, op_types, exclude_nodes); did you "
                                 "mean sparsity?"])


def schema_at(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _subschemas(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if "examples" in node and isinstance(node["examples"], list):
            found.append(node)
        for key, value in node.items():
            if key not in ("examples", "enum", "default", "const"):
                found += _subschemas(value)
    elif isinstance(node, list):
        for value in node:
            found += _subschemas(value)
    return found
