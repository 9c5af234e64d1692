"""After a recipe makes its artifact (in the worker): can its runtime load it, and what did it change?

An ONNX artifact is loaded by ONNX Runtime, the runtime that will run it: one it refuses (a Cast
type mismatch left by a float16 converter, say) fails the recipe with the runtime's own words and a
hint, so every check of the entry fails with them instead of size and ops passing on a model that
cannot run. onnx.checker's complaints about an artifact the runtime loads are a note, not a refusal;
where the complaint is only the nodes' order (ONNX Runtime's quantizer does not count the values an
If/Loop body reads from outside when it sorts), the nodes are put in order so that other tools read
the artifact too. Then `diff.describe_change` compares the artifact with its input.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgecheck.compress import Artifact
from edgecheck.errors import RecipeError
from edgecheck.model import RUNTIME_LOADS_KEY, one_line


def verify_artifact(recipe: str, source: Path, artifact: Artifact) -> Artifact:
    """The artifact, with notes of what it shows; raises `RecipeError` where its runtime refuses it
    and `RecipeNotApplicable` where it changed nothing."""
    from edgecheck.compress.diff import describe_change

    notes = dict(artifact.notes)
    if artifact.path.suffix == ".onnx":
        notes.update(_check_onnx(recipe, artifact.path, source))
    notes.update(describe_change(recipe, source, artifact.path))  # its input given back: changed nothing
    return replace(artifact, notes=notes)


def _check_onnx(recipe: str, path: Path, source: Path) -> dict[str, str]:
    import onnx

    notes: dict[str, str] = {}
    try:
        onnx.checker.check_model(str(path))
        complaint = None
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        complaint = one_line(str(exc)) or type(exc).__name__
    refusal = runtime_refusal(path)
    if refusal is not None:
        refusal = refusal.replace(str(path), path.name)  # the build folder it names is gone once it fails
        before = runtime_refusal(source) if source.suffix == ".onnx" else None
        if before is not None:  # not the recipe's doing: no hint about its parameters
            raise RecipeError(
                f"{recipe}: ONNX Runtime cannot load the artifact {path.name}, nor the model it was made from, "
                f"{source.name} ({before.replace(str(source), source.name).rstrip('. ')}): the recipe did not "
                "cause this; make the model load in ONNX Runtime first (a custom op needs its library)")
        node = re.search(r"node \(([^)]*)\)|[Nn]ode(?: name)?:? '?([\w./:-]+)", refusal)
        named = next((g for g in node.groups() if g), None) if node else None
        raise RecipeError(
            f"{recipe}: ONNX Runtime cannot load the artifact {path.name}, so no check of this entry can "
            f"pass: {refusal.rstrip('. ')}" + (f" (onnx.checker: {complaint})" if complaint else "") + _hint(recipe, named))
    if complaint is not None:
        notes["checker"] = f"onnx.checker: {complaint.rstrip('. ')}; ONNX Runtime loads it, and the runtime decides"
        if "topologically sorted" in complaint and _sort_nodes(path):
            notes["checker"] += "; its nodes were put in topological order (the values If/Loop bodies read counted)"
        else:
            _record_runtime_acceptance(path, complaint)
    return notes


def _record_runtime_acceptance(path: Path, complaint: str) -> None:
    """Write the checker's complaint into the artifact's metadata, so that edgecheck's loader
    (model.load_onnx) accepts this model despite that complaint, and that one only."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    entry = model.metadata_props.add()
    entry.key, entry.value = RUNTIME_LOADS_KEY, complaint
    onnx.save_model(model, str(path))


def runtime_refusal(path: Path) -> str | None:
    """ONNX Runtime's words where it refuses to load the model, else None."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001  ONNX Runtime raises its own untyped errors
        return one_line(str(exc)) or type(exc).__name__
    return None


def _hint(recipe: str, node: str | None) -> str:
    where = f" {node!r}" if node else " it names"
    if recipe == "fp16":
        return (f". Hint: keep the node{where} in float32 (fp16 parameter keep_nodes: [{node or '...'}], or its op "
                "type in keep_op_types), or use int8-dynamic instead")
    return (f". Hint: leave the node{where} out of the recipe (its exclude_nodes parameter, where it has one), "
            "or try another recipe")


def _sort_nodes(path: Path) -> bool:
    """Put the nodes of every graph in an order where each value is made before it is read (the
    values a subgraph reads from outside included); True if the model then passes the checker."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    topological_sort(model)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError):
        return False
    onnx.save_model(model, str(path))  # external data, if any, stays where it is: the locations did not change
    return True


def topological_sort(model: Any) -> None:
    """Order the nodes of every graph of `model` so that each value is made before it is read,
    counting the values a subgraph reads from outside; a cycle keeps its nodes where they were."""
    _sort_graph(model.graph, {""})


def _sort_graph(graph: Any, known: set[str]) -> None:
    ready = set(known) | {i.name for i in graph.input} | {t.name for t in graph.initializer}
    pending = list(graph.node)
    ordered = []
    while pending:
        progress = False
        rest = []
        for node in pending:
            if all(name in ready for name in _reads(node)):
                ordered.append(node)
                ready.update(node.output)
                progress = True
            else:
                rest.append(node)
        pending = rest
        if not progress:  # a cycle or a value nothing makes: keep the rest as it was
            ordered.extend(pending)
            break
    nodes = [_copy(node) for node in ordered]
    del graph.node[:]
    graph.node.extend(nodes)
    for node in graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                _sort_graph(sub, ready)


def _copy(node: Any) -> Any:
    from onnx import NodeProto

    clone = NodeProto()
    clone.CopyFrom(node)
    return clone


def _reads(node: Any) -> set[str]:
    """The values a node reads: its inputs and what its subgraphs read from outside themselves."""
    names = {name for name in node.input if name}
    for attribute in node.attribute:
        for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
            inside = {i.name for i in sub.input} | {t.name for t in sub.initializer} | {o for n in sub.node for o in n.output}
            names |= {name for n in sub.node for name in _reads(n)} - inside
    return names
