"""The spec's `compress:` list: which artifacts to make, each a recipe or a chain of recipes.

Four ways to write an entry, all normalised to `CompressEntry(name, steps)`:

    compress:
      - int8-dynamic                              # a recipe with its default parameters
      - int8-static: {per_channel: true}          # a recipe with parameters
      - [prune: {sparsity: 0.5}, int8-static]     # a chain, applied in order: named "prune+int8-static"
      - name: int8-pc                             # a name of your own (needed when a recipe appears twice)
        steps: [int8-static: {per_channel: true, method: entropy}]

The entry's name labels its test items and keys per-recipe budget overrides. Whether a recipe and
its parameters exist is checked against the recipe registry when the spec is planned.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

NAME_PATTERN = r"^[a-z0-9][a-z0-9._+-]*$"
STEP_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"


class RecipeStep(BaseModel):
    """One recipe with its (not yet validated) parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipe: Annotated[str, Field(pattern=STEP_PATTERN)]
    params: dict[str, Any] = Field(default_factory=dict)

    def __str__(self) -> str:
        if not self.params:
            return self.recipe
        return f"{self.recipe}({', '.join(f'{k}={v}' for k, v in self.params.items())})"


def _step(raw: Any) -> Any:
    if isinstance(raw, str):
        return {"recipe": raw}
    if isinstance(raw, dict) and len(raw) == 1:
        (name, params), = raw.items()
        if not isinstance(name, str):
            raise ValueError(f"a recipe name must be text, got {name!r}")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ValueError(f"parameters of {name!r} must be a mapping like {{sparsity: 0.5}}, got {params!r}")
        return {"recipe": name, "params": params}
    if isinstance(raw, dict):
        raise ValueError(f"a recipe step is a name or a one-key mapping {{recipe: {{params}}}}, got keys {list(raw)}")
    raise ValueError(f"a recipe step is a name or a one-key mapping, got {raw!r}")


def _entry(raw: Any) -> Any:
    """Normalise the short forms; the long form passes through as it is."""
    if isinstance(raw, dict) and "steps" in raw:
        steps = raw["steps"]
        steps = steps if isinstance(steps, list) else [steps]
        parsed = [_step(s) for s in steps]
        if not parsed:
            raise ValueError("steps is empty: name at least one recipe")
        name = raw["name"] if raw.get("name") is not None else "+".join(s["recipe"] for s in parsed)
        return {**raw, "name": name, "steps": parsed}
    if isinstance(raw, list):
        if not raw:
            raise ValueError("an empty chain: name at least one recipe")
        parsed = [_step(s) for s in raw]
        return {"name": "+".join(s["recipe"] for s in parsed), "steps": parsed}
    step = _step(raw)
    return {"name": step["recipe"], "steps": [step]}


class CompressEntry(BaseModel):
    """One artifact to make: the steps applied to the model, in order, under a name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    steps: tuple[RecipeStep, ...] = Field(min_length=1)

    def __str__(self) -> str:
        return " -> ".join(str(s) for s in self.steps)


_STEP_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": STEP_PATTERN, "description": "A recipe with default parameters."},
        {"type": "object", "minProperties": 1, "maxProperties": 1,
         "additionalProperties": {"type": ["object", "null"]}, "description": "{recipe: {parameter: value}}"},
    ]
}
CompressEntryField = Annotated[
    CompressEntry,
    BeforeValidator(_entry),
    WithJsonSchema({
        "anyOf": [
            *_STEP_SCHEMA["anyOf"],
            {"type": "array", "items": _STEP_SCHEMA, "minItems": 1, "description": "A chain, applied in order."},
            {"type": "object", "required": ["steps"], "additionalProperties": False,
             "properties": {"name": {"type": "string", "pattern": NAME_PATTERN},
                            "steps": {"anyOf": [_STEP_SCHEMA, {"type": "array", "items": _STEP_SCHEMA}]}},
             "description": "A named recipe or chain."},
        ]
    }),
]
