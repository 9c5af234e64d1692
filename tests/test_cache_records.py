"""The JSON records cache: a read-only cache folder costs only the work (never a crash), and a record
edited by hand (its verdict flipped, its key intact) is not served: it is recomputed, warned about by
name and rewritten."""

from __future__ import annotations

import errno
import json
import os
import re
import warnings
from pathlib import Path

import pytest

from edgecheck.cache_records import CacheWarning, RecordCache


def _refuse_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes fail as on a read-only mount (EROFS), whoever runs the test (root ignores chmod)."""
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "write_text", read_only)
    monkeypatch.setattr(Path, "unlink", read_only)
    monkeypatch.setattr(os, "replace", read_only)


def test_a_read_only_cache_root_costs_the_work_never_a_crash(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    cache = RecordCache(tmp_path / "file" / "records")  # mkdir below a file: NotADirectoryError
    cache.put("static", "ab" * 32, {"verdict": "fail"})
    assert cache.remember("static", "cd" * 32, lambda: {"verdict": "fail"}) == ({"verdict": "fail"}, False)

    writable = RecordCache(tmp_path / "records")
    _refuse_writes(monkeypatch)  # the folder exists, but every write and the cleanup raise EROFS
    writable.put("static", "ab" * 32, {"verdict": "fail"})
    assert writable.remember("static", "ab" * 32, lambda: {"verdict": "fail"}) == ({"verdict": "fail"}, False)
    assert writable.misses == {"static": 1}


def test_a_record_edited_by_hand_is_recomputed_with_a_warning_and_rewritten(tmp_path):
    cache = RecordCache(tmp_path / "records")
    key = "ef" * 32
    computed = []

    def judge() -> dict[str, object]:
        computed.append(1)
        return {"outcome": "fail", "value": 3}

    assert cache.remember("static", key, judge) == ({"outcome": "fail", "value": 3}, False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # an untouched record is served silently
        assert cache.remember("static", key, judge) == ({"outcome": "fail", "value": 3}, True)
    path = cache._path("static", key)
    stored = json.loads(path.read_text())
    stored["record"]["outcome"] = "pass"  # valid JSON, key unchanged, verdict flipped
    path.write_text(json.dumps(stored))

    with pytest.warns(CacheWarning, match=re.escape(f"edgecheck cache record {path} does not match its "
                                                    "recorded SHA-256; recomputing it")):
        assert cache.remember("static", key, judge) == ({"outcome": "fail", "value": 3}, False)
    assert len(computed) == 2
    assert json.loads(path.read_text())["record"]["outcome"] == "fail"  # rewritten
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert cache.remember("static", key, judge) == ({"outcome": "fail", "value": 3}, True)
    assert len(computed) == 2


def test_a_record_without_its_sha256_is_not_served(tmp_path):
    cache = RecordCache(tmp_path / "records")
    key = "01" * 32
    path = cache._path("static", key)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"key": key, "record": {"outcome": "pass"}}))
    with pytest.warns(CacheWarning, match="does not match its recorded SHA-256"):
        assert cache.get("static", key) is None


def test_a_record_json_reads_back_differently_is_served_silently(tmp_path):
    cache = RecordCache(tmp_path / "records")
    record = {"shapes": [("x", (1, 3))], "by_index": {2: "b", 10: "a"}}  # tuples and int keys change on the way
    cache.put("model", "23" * 32, record)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert cache.get("model", "23" * 32) == json.loads(json.dumps(record))
