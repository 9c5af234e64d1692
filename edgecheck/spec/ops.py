"""The spec's `ops` budget: how many nodes may break the target's operator table, by class."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from edgecheck.spec.words import NodeCount, Says
from edgecheck.strict import StrictModel


class OpsBudget(StrictModel):
    """Max nodes per class, against the operator table of the target device and backend."""

    unsupported: NodeCount | None = Field(0, ge=0, description="Max nodes the backend cannot run at all (default 0).")
    fallback: NodeCount | None = Field(None, ge=0, description="Max nodes that fall back (to the CPU, off the "
                                 "accelerator or the fast path). Default: not bounded, but reported.")
    constraint: NodeCount | None = Field(None, ge=0, description="Max nodes of a supported type that break a constraint "
                                   "the table's source states (data type, kernel size, rank, ...). Default: not bounded.")
    table: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9._-]*$", description="The operator table to judge "
                              "against (edgecheck ops --tables lists them); default: the device profile's for the "
                              "backend.")

    says: ClassVar[Says] = Says("a mapping of max nodes per class", "{unsupported: 0, fallback: 2}")
    partial: ClassVar[bool] = False  # an override: any subset (see spec.performance.LatencyBudget.partial)

    @model_validator(mode="after")
    def _some_bound(self) -> OpsBudget:
        if not self.partial and not self.bounds():  # every bound set to null: the check would judge nothing
            raise ValueError("ops names no bound: give unsupported, fallback or constraint (max nodes)")
        return self

    def bounds(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in ("unsupported", "fallback", "constraint")
                if getattr(self, name) is not None}


class OpsOverride(OpsBudget):
    """A compress entry's changes to the target's ops budget (any subset; null drops a bound)."""

    partial = True
