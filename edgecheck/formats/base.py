"""The contract every artifact format meets: what a file of it is, and who judges it without running it.

A format names itself ("onnx", "tflite", "rknn"), the file suffixes it owns, how to read a file's
facts (signature, size with its side files, parameters, digest), the backend whose outputs are the
reference when the model itself is in this format, and the static judge: the authority on its
operators' placement and its cost. The judge is named as `module:Class`, loaded by the static checks
on first use, so that reading a format's facts (a low layer) never imports the checks above it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from edgecheck.model import ModelInfo


@dataclass(frozen=True)
class Constant:
    """One constant tensor of a file, by digest: what a recipe's comparison of before and after reads."""

    dtype: str
    shape: tuple[int, ...]
    sha256: str
    nbytes: int
    behind_dequantize: bool = False  # a float16 constant a DEQUANTIZE turns into float32


@dataclass(frozen=True)
class Weights:
    """A file's constants and operators, for telling whether a recipe changed anything."""

    size_bytes: int
    op_counts: dict[str, int]
    constants: list[Constant] = field(default_factory=list)


class ArtifactFormat(ABC):
    """One kind of model file. Subclasses set the class attributes and write `inspect`."""

    name: ClassVar[str]  # "onnx": what backends, recipes and operator tables call it
    suffixes: ClassVar[tuple[str, ...]]  # the first is the one its files are written with
    # The backend whose outputs are the reference when the spec's model is in this format; None: the
    # installed backend that says it is (Backend.reference_for), else the ONNX model's reference.
    reference_backend: ClassVar[str | None] = None
    # `module:Class` of its static judge (edgecheck.static_checks.StaticJudge): its `ops` check and its
    # latency and memory estimates. None: this format's artifacts are judged only by running them.
    judge: ClassVar[str | None] = None
    # True where a file's facts come from the file alone; False for one read through files beside it that
    # only edgecheck's own build writes (a compiled file and its build folder): a file given by hand is then
    # not inspected before it runs.
    self_contained: ClassVar[bool] = True
    # The checks its judge estimates without running ("latency", "memory"): a .rknn's build reports both.
    estimates: ClassVar[tuple[str, ...]] = ()

    @property
    def suffix(self) -> str:
        """The suffix its files are written with."""
        return self.suffixes[0]

    @abstractmethod
    def inspect(self, path: Path) -> ModelInfo:
        """The file's facts without running it; a broken or hostile file is a `ModelError` naming it."""

    def inspect_reads(self, path: Path) -> dict[str, str] | None:
        """What `inspect` reads besides the file's own bytes, by content (a name: its SHA-256), so that its
        facts can be kept by content and a warm run need not import the format's library; None (the
        default): inspected every time. A file whose facts count data beside it (ONNX external data) is
        inspected every time whatever this says (its size is not the file's alone)."""
        return None

    def side_files(self, path: Path) -> list[Path]:
        """Files beside `path` that belong to the artifact (ONNX external data): counted in its size and digest."""
        return []

    def weights(self, path: Path) -> Weights | None:
        """Its constants and operators (None: the format cannot list them, as a compiled file)."""
        return None

    def sniff(self, head: bytes) -> bool:
        """Whether a file starting with `head` (its first 16 bytes) is of this format, whatever its name."""
        return False
