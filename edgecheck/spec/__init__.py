"""Spec files: schema, loading with file:line errors, JSON Schema export."""

from edgecheck.spec.editor import SCHEMA_ID, json_schema
from edgecheck.spec.loader import LoadedSpec, format_loc, load_spec, load_spec_text
from edgecheck.spec.recipes import CompressEntry, RecipeStep
from edgecheck.spec.schema import ParityBudget, spec_models

__all__ = ["SCHEMA_ID", "json_schema", "Budgets", "CompressEntry", "LoadedSpec", "RecipeStep", "ParityBudget", "Spec", "TargetSpec", "format_loc", "load_spec", "load_spec_text"]


def __getattr__(name: str):
    """`Budgets`, `Spec`, `TargetSpec`: assembled from the registered check kinds on first use."""
    if name in ("Budgets", "BudgetsOverride", "Spec", "TargetSpec"):
        return getattr(spec_models(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
