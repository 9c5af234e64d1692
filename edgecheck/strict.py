"""The base of every model users write values for (spec files, recipe parameters, device profiles,
operator tables): unknown names are refused, values are immutable, NaN and infinity are refused, and
YAML's `yes`/`true` is refused wherever a number is expected, inside lists and mappings too
(`shape: [true, 4]`); pydantic would otherwise take it as 1."""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

_SEQUENCES = (list, tuple, set, frozenset)


def _alternatives(annotation: Any) -> list[Any]:
    """The members of a union (Optional included), with Annotated[...] stripped from each."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _alternatives(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [leaf for arg in get_args(annotation) for leaf in _alternatives(arg)]
    return [annotation]


def _takes_numbers_not_booleans(alternatives: list[Any]) -> bool:
    numbers = booleans = False
    for option in alternatives:
        if option is Any or option is bool:
            booleans = True
        elif option in (int, float):
            numbers = True
        elif get_origin(option) is Literal:
            values = get_args(option)
            booleans |= any(isinstance(v, bool) for v in values)
            numbers |= any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return numbers and not booleans


def _items(alternatives: list[Any], value: Any, key: Any) -> list[Any]:
    """The annotations an item of a list, tuple or dict `value` may have (`key`: its index or key)."""
    found: list[Any] = []
    for option in alternatives:
        origin, args = get_origin(option), get_args(option)
        if isinstance(value, dict) and origin is dict and len(args) == 2:
            found.append(args[1])
        elif isinstance(value, (list, tuple)) and origin in _SEQUENCES and args:
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                if isinstance(key, int) and key < len(args):
                    found.append(args[key])
            else:
                found.append(args[0])
    return found


def boolean_for_number(annotation: Any, value: Any, where: str = "") -> tuple[str, bool] | None:
    """Where in `value` a boolean stands for a number `annotation` expects ('' for the value itself,
    '[1]' for an item) and which boolean, or None. Nested models are left to their own validation."""
    alternatives = _alternatives(annotation)
    if isinstance(value, bool):
        return (where, value) if _takes_numbers_not_booleans(alternatives) else None
    if isinstance(value, (list, tuple, dict)):
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in pairs:
            inner = _items(alternatives, value, key)
            if not inner:
                continue
            position = f"{where}[{key!r}]" if isinstance(value, dict) else f"{where}[{key}]"
            found = boolean_for_number(Union[tuple(inner)] if len(inner) > 1 else inner[0], item, position)
            if found is not None:
                return found
    return None


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        annotation = cls.model_fields[info.field_name].annotation if info.field_name else None
        found = boolean_for_number(annotation, value)
        if found is not None:
            where, boolean = found
            raise ValueError(f"expected a number{' at ' + where if where else ''}, not {str(boolean).lower()}")
        return value
