"""Latency results as a pytest-benchmark JSON document.

So that `pytest-benchmark compare file.json`, and the CI dashboards that read pytest-benchmark's
files, read edgecheck's latency figures. The layout is the one pytest-benchmark 5.x writes
(plugin.pytest_benchmark_generate_json, stats.Metadata.as_dict, storage.file.FileStorage.save).
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgecheck.checks.result import CheckResult
from edgecheck.errors import warn_at
from edgecheck.measure.stats import BENCHMARK_STATS_KEYS
from edgecheck.results import record_result, write_atomically

# pytest-benchmark writes its own version under "version"; this is the release whose format
# these documents follow (and the oldest edgecheck's dev dependencies allow).
FORMAT_VERSION = "5.1.0"

# Facts of a latency result copied into the benchmark's extra_info.
_EXTRA_INFO_KEYS = ("measured_on", "runtime", "host", "threads", "artifact")
_IDENTITY_KEYS = ("spec", "target", "backend", "recipe")


def benchmark_entry(name: str, fullname: str, group: str, stats: dict, extra_info: dict[str, str],
                    *, options: dict[str, Any] | None = None) -> dict:
    """One element of the document's "benchmarks" list, keyed as Metadata.as_dict writes it.

    `stats` is LatencyStats.benchmark_stats(). `options` is pytest-benchmark's record of the
    fixture's settings; edgecheck has no such fixture, so it stays empty unless given.
    """
    return {
        "group": group,
        "name": name,
        "fullname": fullname,
        "params": None,
        "param": None,
        "extra_info": dict(extra_info),
        "options": dict(options or {}),
        "stats": dict(stats),
    }


def _unversioned_commit_info() -> dict:
    """What pytest-benchmark records when it finds no version control."""
    return {"id": "unversioned", "time": None, "author_time": None, "dirty": False,
            "project": Path.cwd().name, "branch": "(unknown)"}


def benchmark_document(entries: list[dict], machine_info: dict, commit_info: dict | None = None) -> dict:
    """The whole document: machine_info, commit_info, benchmarks, datetime (UTC), version."""
    return {
        "machine_info": machine_info,
        "commit_info": commit_info if commit_info is not None else _unversioned_commit_info(),
        "benchmarks": list(entries),
        "datetime": datetime.now(timezone.utc).isoformat(),
        "version": FORMAT_VERSION,
    }


def _cpu_fields() -> tuple[str, str]:
    """CPU brand and vendor from /proc/cpuinfo where there is one; platform's guess elsewhere."""
    brand, vendor = "", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if not brand and key in ("model name", "Model", "cpu model"):
                    brand = value.strip()
                elif not vendor and key in ("vendor_id", "CPU implementer"):
                    vendor = value.strip()
                if brand and vendor:
                    break
    except OSError:
        pass
    return brand or platform.processor() or platform.machine(), vendor


def machine_info() -> dict:
    """The host's description with the keys pytest-benchmark records, from the stdlib alone.

    pytest-benchmark fills "cpu" from the py-cpuinfo package; this gives the fields readers use
    (brand_raw, arch, bits, count) without it.
    """
    brand, vendor = _cpu_fields()
    bits = platform.architecture()[0]
    return {
        "node": platform.node(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "python_compiler": platform.python_compiler(),
        "python_implementation": platform.python_implementation(),
        "python_implementation_version": platform.python_version(),
        "python_version": platform.python_version(),
        "python_build": list(platform.python_build()),
        "release": platform.release(),
        "system": platform.system(),
        "cpu": {
            "arch": platform.machine(),
            "bits": int(bits.rstrip("bit")) if bits.rstrip("bit").isdigit() else None,
            "count": os.cpu_count(),
            "arch_string_raw": platform.machine(),
            "vendor_id_raw": vendor,
            "brand_raw": brand,
        },
    }


def write_benchmark_json(path: Path, document: dict) -> None:
    """Write `document` to `path` atomically: readers see the old file or the new one, never half.

    A temporary file in the same folder is written, fsynced and renamed over `path`; parent folders
    are created. Formatted as pytest-benchmark formats its own (ASCII, indent 4). NaN and infinity
    are refused: they are not JSON, and dashboards' parsers reject them.
    """
    text = json.dumps(document, ensure_ascii=True, indent=4, allow_nan=False)
    write_atomically(Path(path), text.encode("ascii"))


def _valid_stats(stats: Any) -> str | None:
    """Why `stats` is not a usable pytest-benchmark stats object, or None when it is."""
    if not isinstance(stats, dict):
        return f"expected a JSON object, got {type(stats).__name__}"
    missing = [key for key in BENCHMARK_STATS_KEYS if key not in stats]
    if missing:
        return f"missing {', '.join(missing)}"
    for key in BENCHMARK_STATS_KEYS:
        value = stats[key]
        if key == "outliers":
            if not isinstance(value, str):
                return "outliers is not a string"
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{key} is not a finite number"
    return None


def _latency_stats(result: CheckResult) -> Any:
    """The latency check's pytest-benchmark statistics: the JSON its `latency.stats` fact holds."""
    return json.loads(result.facts["latency.stats"]) if "latency.stats" in result.facts else None


# How a check's result gives pytest-benchmark statistics, by check name (a check not named gives none).
# Each returns the stats (validated after), or None for a result without them; a ValueError if malformed.
BENCHMARK_STATS_BY_CHECK: dict[str, Callable[[CheckResult], Any]] = {"latency": _latency_stats}


def entries_from_records(records: list[Mapping[str, Any]]) -> list[dict]:
    """Benchmark entries from finished items' records.

    Records of checks without benchmark statistics are passed over; one whose stats or identity is
    malformed is skipped with a warning naming it, so that one bad item does not cost the rest of
    the export.
    """
    entries: list[dict] = []
    for record in records:
        try:
            result = record_result(record)
        except (KeyError, ValueError):
            result = None
        stats_of = BENCHMARK_STATS_BY_CHECK.get(result.check) if result is not None else None
        if result is None or stats_of is None:
            continue
        ident = {key: record.get(key) for key in _IDENTITY_KEYS}
        label = "-".join(str(ident[k]) for k in ("target", "backend", "recipe"))
        item = f"{ident['spec']}::{label}-{result.check}"
        absent = [k for k, v in ident.items() if not v]
        if absent:
            warn_at(UserWarning(f"edgecheck: latency results of {item} not exported: no {', '.join(absent)} in its "
                                "record"), str(ident["spec"] or "<results>"))
            continue
        try:
            stats = stats_of(result)
        except ValueError as exc:
            problem: str | None = f"not JSON ({exc})"
        else:
            if stats is None:
                continue
            problem = _valid_stats(stats)
        if problem is not None:
            warn_at(UserWarning(f"edgecheck: latency results of {item} not exported: malformed latency.stats: "
                                f"{problem}"), str(ident["spec"]))
            continue
        spec_name = record.get("spec_name")
        target = str(ident["target"])
        if not record.get("target_is_host") and result.facts.get("measured_on", "").startswith("host"):
            # a host figure standing in for a device: dashboards show names and groups, not extra_info
            target = f"{target} (host stand-in)"
            label = f"{label} (host stand-in)"
        group = f"{spec_name} {target}" if spec_name else target
        extra_info = {key: result.facts[key] for key in _EXTRA_INFO_KEYS if key in result.facts}
        entries.append(benchmark_entry(name=label, fullname=item, group=group, stats=stats,
                                       extra_info=extra_info))
    return entries
