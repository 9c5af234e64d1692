"""The spec's JSON Schema for editors and validators (`edgecheck schema`): besides the models' own schema,
the names an editor completes and a validator checks, given by the layers that know them (the recipe
registry, the device profiles, the backends: this layer sits below them, so they are passed in).

Each recipe's parameters are a union discriminated by the recipe's name: `{prune: {sparsity: 0.5}}`
validates `sparsity` against the `prune` recipe's own parameter model, which forbids unknown names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from edgecheck.spec.recipes import NAME_PATTERN
from edgecheck.spec.schema import CANDIDATE, spec_models

# Stable: editors and `# yaml-language-server: $schema=` lines name it. The "v1" is the spec format's
# version (`edgecheck: 1`), not edgecheck's; it changes only when the format does.
SCHEMA_ID = "https://edgecheck.dev/schema/spec-v1.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
_PARAMS_REF = "#/$defs/recipe-params.{model}"
_EXAMPLE_COMPRESS = ["int8-dynamic", {"int8-static": {"per_channel": True}},
                     [{"prune": {"sparsity": 0.5}}, "int8-static"], {"name": "int8-pc", "steps": ["int8-static"]}]


def json_schema(recipes: Mapping[str, tuple[type[BaseModel], str]] | None = None,
                devices: Sequence[str] | None = None, backends: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON Schema of spec files. `recipes` (name → (parameter model, summary)), `devices` and
    `backends` turn those names from patterns into enums an editor completes; left out, any name of the
    right form passes (the run checks it)."""
    schema = spec_models().Spec.model_json_schema()
    schema = {"$schema": DRAFT, "$id": SCHEMA_ID, "title": "edgecheck spec",
              "description": "An edgecheck spec: a model, its data, the compression recipes to try and the "
              "budgets each target device must meet. `edgecheck schema` prints this for the edgecheck and "
              "plug-ins installed.", **{k: v for k, v in schema.items() if k != "title"}}
    schema["examples"] = [{"edgecheck": 1, "model": {"path": "model.onnx"}, "compress": ["int8-dynamic"],
                           "targets": {"host": {"budgets": {"size_mb": 0.5, "latency_ms": {"p95": 2}}}}}]
    properties = schema["properties"]
    properties["compress"]["examples"] = [_EXAMPLE_COMPRESS]
    if recipes is not None:
        properties["compress"]["items"] = _entry_schema(schema["$defs"], recipes)
    if devices is not None:
        targets = properties["targets"]
        targets.pop("patternProperties", None)
        targets["propertyNames"] = {"enum": sorted(devices)}
        targets["properties"] = {name: {"$ref": "#/$defs/TargetSpec"} for name in sorted(devices)}
        targets["additionalProperties"] = {"$ref": "#/$defs/TargetSpec"}
    if backends is not None:
        field = schema["$defs"]["TargetSpec"]["properties"]["backends"]
        field["anyOf"][0]["items"] = {"enum": sorted(backends)}
    return schema


def _entry_schema(definitions: dict[str, Any], recipes: Mapping[str, tuple[type[BaseModel], str]]) -> dict[str, Any]:
    """One `compress:` entry: a recipe, {recipe: {params}}, a chain, or {name, steps}, with the recipes'
    names as an enum and each one's parameters as its own model's schema."""
    names = sorted(recipes)
    keys, found = models_json_schema([(recipes[name][0], "validation") for name in names], ref_template=_PARAMS_REF)
    for model, schema in found.get("$defs", {}).items():
        definitions[f"recipe-params.{model}"] = schema
    params = {name: keys[(recipes[name][0], "validation")] for name in names}
    definitions["RecipeName"] = {"type": "string",
        "enum": [*names, CANDIDATE], "description": "A recipe with its default parameters ('candidate': the "
        "candidate model, only as a chain's first step). `edgecheck recipes` lists them.",
        "enumDescriptions": [recipes[name][1] for name in names] + ["the candidate model"]}
    definitions["RecipeWithParams"] = {
        "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
        "description": "{recipe: {parameter: value}}: one recipe, its parameters checked against its own.",
        "properties": {name: {"if": {"type": "null"}, "else": params[name], "description": recipes[name][1]}
                       for name in names},  # null (`prune:` alone) takes the defaults
        "examples": [{"int8-static": {"per_channel": True}}]}
    # if/then/else by the value's type rather than anyOf: a validator then reports the branch the user meant
    # ("'speed' was unexpected"), not that a mapping is not a string
    definitions["RecipeStep"] = {"if": {"type": "string"}, "then": {"$ref": "#/$defs/RecipeName"},
                                 "else": {"$ref": "#/$defs/RecipeWithParams"}}
    step = {"$ref": "#/$defs/RecipeStep"}
    chain = {"type": "array", "items": step, "minItems": 1, "description": "A chain, applied in order."}
    named = {"type": "object", "required": ["steps"], "additionalProperties": False,
             "properties": {"name": {"type": "string", "pattern": NAME_PATTERN,
                                     "description": "A name of your own (needed when a recipe appears twice)."},
                            "steps": {"if": {"type": "array"}, "then": chain, "else": step}},
             "description": "A named recipe or chain.", "examples": [{"name": "int8-pc", "steps": ["int8-static"]}]}
    return {
        "description": "A recipe, {recipe: {params}}, a chain [step, step] or {name, steps}.",
        "if": {"type": ["string", "array"]},
        "then": {"if": {"type": "string"}, "then": {"$ref": "#/$defs/RecipeName"}, "else": chain},
        "else": {"if": {"type": "object", "required": ["steps"]}, "then": named,
                 "else": {"$ref": "#/$defs/RecipeWithParams"}},
        "examples": _EXAMPLE_COMPRESS,
    }
