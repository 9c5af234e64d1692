"""`fnpu-compile`: an ONNX linear layer (MatMul + Add of constant weights) to a .fnpu program, float16."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecheck.compress import Artifact, NoParams, RecipeContext, RecipeNotApplicable, artifact_path, register_recipe


@register_recipe("fnpu-compile", NoParams, tools=("onnx", "numpy"), takes=("onnx",), makes="fnpu",
                 summary="an ONNX MatMul + Add to a fakenpu program with float16 weights")
def compile_fnpu(model: Path, params: NoParams, context: RecipeContext) -> Artifact:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model)).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    ops = [node.op_type for node in graph.node]
    if ops != ["MatMul", "Add"] or graph.node[0].input[1] not in constants or graph.node[1].input[1] not in constants:
        raise RecipeNotApplicable(f"fnpu-compile compiles a MatMul + Add of constant weights, not {ops}")
    out = artifact_path(model, "fnpu-compile", context, ".fnpu")
    with out.open("wb") as handle:
        np.savez(handle, weight=constants[graph.node[0].input[1]].astype(np.float16),
                 bias=constants[graph.node[1].input[1]].astype(np.float16),
                 input=np.array(graph.input[0].name), output=np.array(graph.output[0].name))
    return Artifact(path=out, recipe="fnpu-compile", notes={"did": "compiled the layer, weights in float16"})
