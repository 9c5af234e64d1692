"""The .trtjob format: an ONNX model with its TensorRT build settings in its metadata, built into an engine
on the Jetson that runs it (an engine is specific to the GPU and TensorRT version that built it).

A .trtjob is a valid ONNX ModelProto, so its facts (inputs, outputs, parameters, operators) are the ONNX
facts, read by the core's ONNX reader, and its graph is judged by the ONNX judge against the TensorRT
ONNX parser's operator table; only its format name differs, so that only the tensorrt backend runs it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgecheck.errors import ModelError
from edgecheck.formats.base import ArtifactFormat, Constant, Weights
from edgecheck.model import ModelInfo, inspect_onnx, load_onnx
from edgecheck.vendors.tensorrt.trtexec import JOB_SUFFIX, METADATA_KEY, BuildSettings, SettingsError


def read_build_settings(path: Path) -> BuildSettings:
    """The build settings a .trtjob carries; a ModelError naming the file where they are missing or unreadable."""
    model = load_onnx(path)
    texts = [p.value for p in model.metadata_props if p.key == METADATA_KEY]
    if len(texts) != 1:
        raise ModelError(path, f"a .trtjob carries its TensorRT build settings in metadata_props[{METADATA_KEY!r}], "
                         f"and this file has {len(texts)} such entries: make it with a tensorrt-* recipe")
    try:
        return BuildSettings.from_json(texts[0])
    except SettingsError as exc:
        raise ModelError(path, f"metadata_props[{METADATA_KEY!r}]: {exc}") from None


class TensorrtJobFormat(ArtifactFormat):
    """A .trtjob file: ONNX plus build settings; its reference outputs are the ONNX model's it was made from."""

    name = "tensorrt-job"
    suffixes = (JOB_SUFFIX,)
    judge = "edgecheck.vendors.tensorrt.judge:TensorrtJobJudge"  # the graph against the tensorrt-onnx-parser table,
    # its latency estimate in the precision of the job's build settings
    estimates = ("latency",)

    def inspect(self, path: Path) -> ModelInfo:
        read_build_settings(path)  # a .trtjob without readable settings is no job: said at once
        return dataclasses.replace(inspect_onnx(path), format=self.name)

    def inspect_reads(self, path: Path) -> dict[str, str] | None:
        return {}  # the file alone

    def weights(self, path: Path) -> Weights:
        """The ONNX graph's initializers (what a recipe comparison reads): a .trtjob's weights are its graph's."""
        import hashlib

        from onnx import helper, numpy_helper

        model = load_onnx(path)
        constants = []
        for tensor in model.graph.initializer:
            array = numpy_helper.to_array(tensor)
            data = array.tobytes()
            constants.append(Constant(helper.tensor_dtype_to_np_dtype(tensor.data_type).name, tuple(array.shape),
                                      hashlib.sha256(data).hexdigest(), len(data)))
        return Weights(path.stat().st_size, dict(inspect_onnx(path).op_counts), constants)
