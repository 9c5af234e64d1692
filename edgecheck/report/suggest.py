"""`--edge-suggest`: budgets derived from this run's figures, printed as YAML to paste into a spec.

Each check kind says how its figures become budgets (`Check.suggest`; the built-in rules are in
edgecheck/checks/suggest.py); this module merges them over backends and prints them.

Default tolerances are guesses; these are built from evidence: what was measured, widened by a
margin and by the measurement's own noise, and rounded towards looser so a rerun still passes.
edgecheck never edits a spec: a person reviews the suggestion and pastes it.

How each budget is derived (`margin` is 0.10 unless given):

- upper bounds `size_mb`, `latency_ms` {p50, p95, p99}, `memory_mb` {peak}: figure x (1 + margin),
  rounded up to 2 significant digits. Latency uses the upper end of the percentile's confidence
  interval (the `latency.<pNN>` measurement's) when it is there; p99 only with at least 662 timed runs
  (fewer cannot place a 99th percentile with confidence). Figures <= 0 give no budget.
- lower bound `size_ratio`: figure x (1 - margin), rounded down to 2 significant digits.
- `accuracy_drop` (top-k metrics, in points): max(drop, 0) + 2 standard errors of the accuracy,
  SE = 100 sqrt(p(1-p)/n) with n the evaluated samples, and at least one sample's worth (100/n:
  at 100 % accuracy the SE is 0, and a budget of 0 fails on the first flipped sample); if n is not
  known, drop x (1 + margin) + 0.1. Rounded up to 0.01.
- `parity`, per output, then the loosest over outputs. The noise floor is the same statistic of the
  original model (`recipe: none`) on the same target and backend: that is how far the backend alone
  is from the single-thread ONNX Runtime reference, so no artifact can be asked to do better. On the
  reference backend itself there is no such item (it would compare the reference with itself), and so
  no floor.
  atol (from max_abs) and rel_l2 = max(value, floor) x (1 + margin), rounded up to 2 significant
  digits, and 1e-6 rather than 0 where the run was bit-exact; cosine = 1 - (1 - min(value, floor))
  x (1 + margin), the distance from 1 rounded up to 2 significant digits (at least 1e-6);
  snr_db = min(value, floor) - 10 log10(1 + margin), rounded down to 0.1 dB (none if infinite);
  top1_agreement = min(value, floor) - 1/n with n the parity samples (- 0.01 if n is not known).
- latency and memory are this machine's figures: for a device target measured on the host the
  budget says `source: host` (a stand-in), since one without it waits for an on-device figure.
- with several backends for a target, each budget is the loosest over them.
- a budget kind with no finite figure in the run is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from edgecheck.checks.base import Check, check_kinds, get_check
from edgecheck.checks.suggest import EPSILON, SuggestContext, loosest, round_down, round_up  # noqa: F401  (re-exported)
from edgecheck.errors import EdgecheckError
from edgecheck.results import IDENTITY, ran

DEFAULT_MARGIN = 0.10


class SuggestError(EdgecheckError):
    """The suggestion cannot be made as asked (a margin outside [0, 1))."""


def _kind_of(name: str) -> Check | None:
    """The check kind of a record, if it is installed in this session."""
    try:
        return get_check(name)
    except EdgecheckError:
        return None


def _lower_bounds() -> frozenset[tuple[str, ...]]:
    return frozenset(path for kind in check_kinds() for path in kind.suggest_lower)


def _field_order() -> list[tuple[str, Any]]:
    """Every budget field in the spec's order (the kinds' order), with the model of its section if any."""
    fields = []
    for kind in check_kinds():
        for name, budget in kind.budgets.items():
            section = next((a for a in getattr(budget.annotation, "__args__", (budget.annotation,))
                            if isinstance(a, type) and hasattr(a, "model_fields")), None)
            fields.append((name, section))
    return fields


def _ordered(budgets: Mapping) -> dict:
    """Budget fields in the spec's order; a section's keys in its model's field order."""
    out: dict = {}
    for name, section in _field_order():
        if name not in budgets:
            continue
        value = budgets[name]
        if section is not None and isinstance(value, Mapping):
            value = {k: value[k] for k in section.model_fields if k in value}
        out[name] = value
    return out


def suggest_budgets(records: list[Mapping[str, Any]], margin: float = DEFAULT_MARGIN) -> dict[str, dict]:
    """{spec: {"targets": {target: {"recipes": {entry: budgets}}}}} from the records of items that ran."""
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 <= margin < 1:
        raise SuggestError(f"suggestion margin {margin!r} must be a number in [0, 1), e.g. 0.1 for 10 %")
    done = [r for r in ran(records) if all(isinstance(r.get(k), str) and r[k] for k in IDENTITY if k != "spec_name")]
    kinds = {name: _kind_of(name) for name in {r["check"] for r in done}}
    floors = {(r["spec"], r["target"], r["backend"], r["check"]): r["result"]
              for r in done if r["recipe"] == "none" and kinds[r["check"]] is not None
              and kinds[r["check"]].suggest_floor}  # type: ignore[union-attr]
    lower = _lower_bounds()
    merged: dict[tuple[str, str, str], dict] = {}
    for record in done:
        kind = kinds[record["check"]]
        if kind is None:
            continue
        spec, target, backend, recipe, check = (record[k] for k in ("spec", "target", "backend", "recipe", "check"))
        context = SuggestContext(margin, bool(record.get("target_is_host")), floors.get((spec, target, backend, check)))
        budgets = kind.suggest(record["result"], context)
        if budgets:
            key = (spec, target, recipe)
            merged[key] = loosest(merged.get(key, {}), budgets, (), lower)
    result: dict[str, dict] = {}
    for spec, target, recipe in sorted(merged, key=lambda k: (k[0], k[1], k[2] != "none", k[2])):
        targets = result.setdefault(spec, {"targets": {}})["targets"]
        targets.setdefault(target, {"recipes": {}})["recipes"][recipe] = _ordered(merged[(spec, target, recipe)])
    return result


def _kinds(targets: Mapping) -> set[str]:
    return {kind for section in targets.values() for budgets in section.get("recipes", {}).values() for kind in budgets}


def _epsilon_used(targets: Mapping) -> bool:
    return any(budgets.get("parity", {}).get(k) == EPSILON
               for section in targets.values() for budgets in section.get("recipes", {}).values()
               for k in ("atol", "rel_l2"))


def _comment(text: str) -> str:
    return "# " + " ".join(str(text).split())


def format_suggestions(suggestions: dict[str, dict], margin: float) -> str:
    """YAML blocks, one per spec, each headed by comments saying where every number came from."""
    if not suggestions:
        return _comment("edgecheck --edge-suggest: no figures in this run to derive budgets from") + "\n"
    blocks = []
    for spec, block in suggestions.items():
        targets = block.get("targets", {})
        kinds = _kinds(targets)
        lines = [_comment(f"{spec}: budgets suggested by edgecheck --edge-suggest from this run's figures, "
                          f"margin {margin * 100:g}%")]
        notes = {field: note for kind in check_kinds() for field, note in kind.suggest_notes.items()}
        lines += [_comment(notes[name]) for name, _ in _field_order() if name in kinds and name in notes]
        if _epsilon_used(targets):
            lines.append(_comment(f"atol or rel_l2 of {EPSILON:g}: the run was bit-exact (0); a bound of 0 would "
                                  "fail on the first harmless change of kernels or threads"))
        lines.append(_comment("with several backends per target, each budget is the loosest over them"))
        lines.append(_comment("paste under the spec's targets: and review; edgecheck never edits a spec"))
        body = yaml.safe_dump(targets, sort_keys=False, default_flow_style=False, allow_unicode=True)
        blocks.append("\n".join(lines) + "\n" + body)
    return "\n".join(blocks)
