"""The `.fnpu` format: a compiled linear layer — an .npz of float16 weight and bias and the I/O names."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from edgecheck.errors import ModelError
from edgecheck.formats.base import ArtifactFormat
from edgecheck.model import ModelInfo, TensorInfo


def read_program(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a .fnpu file; a ModelError naming the file where it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            program = {name: data[name] for name in ("weight", "bias", "input", "output")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: not a fakenpu program: {type(exc).__name__}: {exc}") from None
    if program["weight"].ndim != 2 or program["bias"].shape != program["weight"].shape[1:]:
        raise ModelError(f"{path}: weight {program['weight'].shape} and bias {program['bias'].shape} do not fit")
    return program


class FnpuFormat(ArtifactFormat):
    name = "fnpu"
    suffixes = (".fnpu",)
    reference_backend = "fakenpu"

    def inspect(self, path: Path) -> ModelInfo:
        program = read_program(path)
        features, classes = program["weight"].shape
        data = path.read_bytes()
        return ModelInfo(
            path=path, format=self.name,
            inputs=(TensorInfo(str(program["input"]), "float32", ("N", features)),),
            outputs=(TensorInfo(str(program["output"]), "float32", ("N", classes)),),
            size_bytes=len(data), parameters=int(program["weight"].size + program["bias"].size),
            opsets={}, op_counts={"FnpuLinear": 1}, sha256=hashlib.sha256(data).hexdigest())
