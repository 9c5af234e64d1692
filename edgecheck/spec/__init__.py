"""Spec files: schema, loading with file:line errors, JSON Schema export."""

from edgecheck.spec.loader import LoadedSpec, format_loc, load_spec, load_spec_text
from edgecheck.spec.recipes import CompressEntry, RecipeStep
from edgecheck.spec.schema import Budgets, ParityBudget, Spec, TargetSpec

__all__ = ["Budgets", "CompressEntry", "LoadedSpec", "RecipeStep", "ParityBudget", "Spec", "TargetSpec", "format_loc", "load_spec", "load_spec_text"]


def json_schema() -> dict:
    """The JSON Schema of spec files, for editors (`edgecheck schema`)."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "edgecheck spec"
    return schema
