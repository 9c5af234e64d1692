"""The base of every model users write values for (spec files, recipe parameters): unknown names are
refused, values are immutable, NaN and infinity are refused, and YAML's `yes`/`true` is refused
where a number is expected (pydantic would otherwise take it as 1)."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _numeric(annotation: Any) -> bool:
    return annotation in (int, float) or any(a in (int, float) for a in get_args(annotation))


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        annotation = cls.model_fields[info.field_name].annotation if info.field_name else None
        if isinstance(value, bool) and _numeric(annotation):
            raise ValueError(f"expected a number, not {str(value).lower()}")
        return value
