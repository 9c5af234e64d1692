"""The .tflite format: a LiteRT flatbuffer, read by edgecheck's bounded reader; its own operators are
judged against a TFLite operator table, and it is its own reference, on LiteRT."""

from __future__ import annotations

from pathlib import Path

from edgecheck.formats.base import ArtifactFormat
from edgecheck.model import ModelInfo
from edgecheck.vendors.tflite.model import inspect_tflite

FILE_IDENTIFIER = b"TFL3"  # bytes 4..8 of every .tflite flatbuffer


class TfliteFormat(ArtifactFormat):
    """A .tflite file, whatever its name when its first bytes carry the TFLite identifier."""

    name = "tflite"
    suffixes = (".tflite",)
    reference_backend = "tflite"
    judge = "edgecheck.vendors.tflite.judge:TfliteJudge"

    def inspect(self, path: Path) -> ModelInfo:
        return inspect_tflite(path)

    def sniff(self, head: bytes) -> bool:
        return head[4:8] == FILE_IDENTIFIER
