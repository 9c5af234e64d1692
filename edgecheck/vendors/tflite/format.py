"""The .tflite format: a LiteRT flatbuffer, read by edgecheck's bounded reader; its own operators are
judged against a TFLite operator table, and it is its own reference, on LiteRT."""

from __future__ import annotations

from pathlib import Path

from edgecheck.formats.base import ArtifactFormat, Constant, Weights
from edgecheck.model import ModelInfo
from edgecheck.vendors.tflite.model import inspect_tflite, read_tflite

FILE_IDENTIFIER = b"TFL3"  # bytes 4..8 of every .tflite flatbuffer


class TfliteFormat(ArtifactFormat):
    """A .tflite file, whatever its name when its first bytes carry the TFLite identifier."""

    name = "tflite"
    suffixes = (".tflite",)
    judge = "edgecheck.vendors.tflite.judge:TfliteJudge"

    def inspect(self, path: Path) -> ModelInfo:
        return inspect_tflite(path)

    def weights(self, path: Path) -> Weights:
        parsed = read_tflite(path)  # bounds and names every fault of the file
        return Weights(parsed.size_bytes, parsed.op_counts(),
                       [Constant(c.dtype, tuple(c.shape), c.sha256, c.nbytes, bool(c.behind_dequantize))
                        for c in parsed.constants])

    def sniff(self, head: bytes) -> bool:
        return head[4:8] == FILE_IDENTIFIER
