"""`lowrank`: truncated SVD of weight matrices into two thinner factors, where that saves parameters.

A dense weight W [in, out] becomes A [in, r] @ B [r, out], one node becomes two (Gemm, MatMul with a
2-D weight, 1x1 Conv). It only pays when r * (in + out) < in * out, so a node is factored only then
and only when its weight is big enough to be worth a second node; every other node is left as it
is with the reason, which the notes show. Nodes inside subgraphs (If, Loop, Scan) are left alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from edgecheck.compress import (Artifact, RecipeContext, RecipeNotApplicable, RecipeParams, artifact_path,
                                load_model_for_editing, register_recipe, save_model)
from edgecheck.analysis.constants import fold_weight_constants, folded_note
from edgecheck.errors import EdgecheckError, RecipeError

DEFAULT_ENERGY = 0.9


class LowRankParams(RecipeParams):
    """How much of each weight to keep: a fixed fraction of its rank, or of its spectral energy."""

    rank: float | None = Field(None, gt=0, le=1, description="Fraction of min(in, out) kept as the rank.")
    energy: float | None = Field(None, gt=0, le=1, description="Fraction of the squared singular values kept "
                                 f"(default {DEFAULT_ENERGY} when rank is not given).")
    op_types: tuple[Literal["Gemm", "MatMul", "Conv"], ...] = Field(
        ("Gemm", "MatMul", "Conv"), description="Kinds of node factored (Conv: 1x1, group 1 only).")
    exclude_nodes: tuple[str, ...] = Field((), description="Node names left as they are.")
    min_params: int = Field(1024, ge=0, description="Weights with fewer elements are not worth a second node.")

    @model_validator(mode="before")
    @classmethod
    def _one_criterion(cls, data: Any) -> Any:
        """Exactly one of rank/energy; none given means energy 0.9 (set here so the cache key shows it)."""
        if not isinstance(data, dict):
            return data
        if data.get("rank") is not None and data.get("energy") is not None:
            raise ValueError("give either rank or energy, not both")
        if data.get("rank") is None and data.get("energy") is None:
            return {**data, "energy": DEFAULT_ENERGY}
        return data


class _Skip(Exception):
    """A node left as it is; the message (which names the node) goes into the notes."""


@dataclass(frozen=True)
class _Factors:
    first: str  # initializer names
    second: str
    rank: int
    energy: float  # fraction of the sum of squared singular values kept


def choose_rank(singular_values: np.ndarray, params: LowRankParams) -> int:
    """The rank that `params` asks for: ceil(rank * min(in, out)), or the smallest reaching `energy`."""
    if params.rank is not None:
        # minus a hair so that 0.3 * 10 = 3.0000000000000004 gives 3, not 4
        return max(1, math.ceil(params.rank * len(singular_values) - 1e-9))
    energy = _cumulative_energy(singular_values)
    return min(int(np.searchsorted(energy, params.energy - 1e-12)) + 1, len(singular_values))


def _cumulative_energy(singular_values: np.ndarray) -> np.ndarray:
    squares = np.cumsum(singular_values.astype(np.float64) ** 2)
    return squares / squares[-1] if squares[-1] > 0 else np.ones_like(squares)


def factorize(weight: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """A [in, r], B [r, out] float32 with A @ B the best rank-r approximation of `weight` [in, out]."""
    return _truncate(*np.linalg.svd(weight.astype(np.float64), full_matrices=False), rank)


def _truncate(u: np.ndarray, s: np.ndarray, vt: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the float64 SVD's top `rank` terms as sqrt(S) on each side, stored as float32.

    Singular vectors are defined up to sign, so each left vector's largest-|value| entry is made
    positive: the same weight always gives the same bytes.
    """
    u, s, vt = u[:, :rank], s[:rank], vt[:rank]
    pivots = np.argmax(np.abs(u), axis=0)
    signs = np.where(u[pivots, np.arange(rank)] < 0, -1.0, 1.0)
    root = np.sqrt(s) * signs  # the sign goes on both sides, so A @ B is unchanged
    return (u * root).astype(np.float32), (root[:, None] * vt).astype(np.float32)


class _Rewriter:
    """Factors the main graph's nodes in place, on a model that is already a private copy."""

    def __init__(self, model: Any, params: LowRankParams):
        self.graph = model.graph
        self.params = params
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.graph_inputs = {i.name for i in self.graph.input}
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.taken = set(self.initializers) | self.graph_inputs | {o.name for o in self.graph.output}
        self.taken |= {v.name for v in self.graph.value_info} | _tensor_and_node_names(self.graph)
        self.cache: dict[tuple[str, str], _Factors] = {}
        self.new_initializers: list[Any] = []
        self.replaced_weights: list[str] = []
        self.factored: list[str] = []
        self.skipped: list[str] = []

    def run(self) -> None:
        nodes = []
        for index, node in enumerate(self.graph.node):
            label = node.name or f"{node.op_type}_{index}"
            if node.op_type not in self.params.op_types or node.domain not in ("", "ai.onnx"):
                nodes.append(node)
                continue
            try:
                nodes.extend(self._factor(node, label))
            except _Skip as skip:
                self.skipped.append(str(skip))
                nodes.append(node)
            except EdgecheckError:
                raise
            except Exception as exc:
                raise RecipeError(f"lowrank: node {label} ({node.op_type}): {type(exc).__name__}: {exc}") from exc
        del self.graph.node[:]
        self.graph.node.extend(nodes)
        self.graph.initializer.extend(self.new_initializers)

    def _unique(self, name: str) -> str:
        candidate, count = name, 0
        while candidate in self.taken:
            count += 1
            candidate = f"{name}_{count}"
        self.taken.add(candidate)
        return candidate

    def _weight(self, node: Any, label: str) -> np.ndarray:
        from onnx import TensorProto, numpy_helper

        name = node.input[1] if len(node.input) > 1 else ""
        tensor = self.initializers.get(name)
        if tensor is None:
            raise _Skip(f"{label}: weight {name!r} is not an initializer (computed at run time)")
        if name in self.graph_inputs:
            raise _Skip(f"{label}: weight {name!r} is also a graph input, so a caller may replace it")
        if tensor.data_type != TensorProto.FLOAT:
            kind = TensorProto.DataType.Name(tensor.data_type).lower()
            raise _Skip(f"{label}: weight {name!r} is {kind} (only float32 weights are factored)")
        return numpy_helper.to_array(tensor)

    def _factor(self, node: Any, label: str) -> list[Any]:
        """The two nodes replacing `node`, or `_Skip` saying why it stays."""
        if label in self.params.exclude_nodes:  # the node's name, or e.g. "Gemm_3" when it has none
            raise _Skip(f"{label}: excluded by exclude_nodes")
        attrs = {a.name: a for a in node.attribute}
        weight = self._weight(node, label)
        if node.op_type == "Gemm":
            if self.opset < 11:
                raise _Skip(f"{label}: Gemm before opset 11 requires C on both factors (opset {self.opset})")
            dense = weight.T if "transB" in attrs and attrs["transB"].i else weight
            layout = "gemm-t" if dense is not weight else "dense"
        elif node.op_type == "MatMul":
            if weight.ndim != 2:
                raise _Skip(f"{label}: weight is {weight.ndim}-D (only 2-D MatMul weights are factored)")
            dense, layout = weight, "dense"
        else:  # Conv [out, in, 1, 1]
            group = attrs["group"].i if "group" in attrs else 1
            if weight.ndim < 3 or any(d != 1 for d in weight.shape[2:]) or group != 1:
                kernel = "x".join(str(d) for d in weight.shape[2:])
                raise _Skip(f"{label}: kernel {kernel}, group {group} (only 1x1 with group 1 is factored)")
            dense, layout = weight.reshape(weight.shape[0], weight.shape[1]).T, "conv"
        n_in, n_out = dense.shape
        where = f"{label} [{n_in}x{n_out}]"
        if dense.size < self.params.min_params:
            raise _Skip(f"{where}: {dense.size:,} weights < min_params {self.params.min_params:,}")
        if not np.all(np.isfinite(dense)):
            raise RecipeError(f"lowrank: node {label}: weight {node.input[1]!r} holds NaN or infinity")
        factors = self._factors(node.input[1], layout, dense, weight.ndim, where)
        self.factored.append(f"{where} rank {factors.rank} (energy {factors.energy:.3f})")
        self.replaced_weights.append(node.input[1])
        return self._nodes(node, label, factors, attrs, weight.ndim - 2)

    def _factors(self, name: str, layout: str, dense: np.ndarray, ndim: int, where: str) -> _Factors:
        """Factor (once per weight and layout, so a shared weight stays shared) and add the initializers."""
        from onnx import numpy_helper

        if (name, layout) in self.cache:
            return self.cache[(name, layout)]
        u, singular_values, vt = np.linalg.svd(dense.astype(np.float64), full_matrices=False)  # float64: stable
        rank = choose_rank(singular_values, self.params)
        n_in, n_out = dense.shape
        if rank * (n_in + n_out) >= n_in * n_out:
            raise _Skip(f"{where}: rank {rank} would not reduce parameters "
                        f"({rank * (n_in + n_out):,} >= {n_in * n_out:,})")
        first, second = _truncate(u, singular_values, vt, rank)
        if layout == "conv":  # [r, in, 1, 1] and [out, r, 1, 1]
            ones = (1,) * (ndim - 2)
            first, second = first.T.reshape((rank, n_in) + ones), second.T.reshape((n_out, rank) + ones)
        names = self._unique(f"{name}.lowrank_a"), self._unique(f"{name}.lowrank_b")
        self.new_initializers += [numpy_helper.from_array(np.ascontiguousarray(first), names[0]),
                                  numpy_helper.from_array(np.ascontiguousarray(second), names[1])]
        energy = float(_cumulative_energy(singular_values)[rank - 1])
        self.cache[(name, layout)] = factors = _Factors(names[0], names[1], rank, energy)
        return factors

    def _nodes(self, node: Any, label: str, factors: _Factors, attrs: dict[str, Any], spatial: int) -> list[Any]:
        from onnx import helper

        hidden = self._unique(f"{label}.lowrank_hidden")
        extra = [name for name in node.input[2:3] if name]  # Gemm's C or Conv's bias, if any
        first = helper.make_node(node.op_type, [node.input[0], factors.first], [hidden],
                                 name=self._unique(f"{label}.lowrank_a"))
        second = helper.make_node(node.op_type, [hidden, factors.second, *extra], [node.output[0]],
                                  name=self._unique(f"{label}.lowrank_b"))
        if node.op_type == "Gemm":  # alpha * op(x) @ A, then h @ B + beta * C (B is never transposed)
            first.attribute.extend(attrs[k] for k in ("transA", "alpha") if k in attrs)
            second.attribute.extend(attrs[k] for k in ("beta",) if k in attrs and extra)
        elif node.op_type == "Conv":
            # The first conv keeps strides, pads and auto_pad (dilations do nothing on a 1x1 kernel);
            # the second is a plain 1x1 conv with the bias. Padding stays correct: a padded position
            # holds zeros, the first conv (no bias) maps them to 0, and the second maps 0 to the bias,
            # which is exactly what the original conv gives there.
            first.attribute.extend(node.attribute)
            second.attribute.append(helper.make_attribute("kernel_shape", [1] * spatial))
        return [first, second]


def _tensor_and_node_names(graph: Any) -> set[str]:
    """Every tensor and node name in `graph` and its subgraphs, so new names never collide."""
    names: set[str] = set()
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        names.add(node.name)
        for graph_in_attr in _subgraphs(node):
            names |= _tensor_and_node_names(graph_in_attr)
    return names


def _subgraphs(node: Any) -> list[Any]:
    return [g for a in node.attribute for g in ([a.g] if a.HasField("g") else []) + list(a.graphs)]


def _used_names(graph: Any) -> set[str]:
    """Names read by any node (subgraphs included: they may read the outer graph's initializers)."""
    used = {o.name for o in graph.output}
    for node in graph.node:
        used.update(node.input)
        for subgraph in _subgraphs(node):
            used |= _used_names(subgraph)
    return used


def _parameter_count(graph: Any) -> int:
    return sum(math.prod(t.dims) for t in graph.initializer)


@register_recipe("lowrank", LowRankParams, tools=("onnx", "numpy"),
                 summary="truncated SVD of Gemm, MatMul and 1x1 Conv weights into two thinner factors")
def compress_lowrank(model: Path, params: LowRankParams, context: RecipeContext) -> Artifact:
    """Factor every weight where a rank-r product has fewer parameters; skip the rest with reasons."""
    import onnx

    from edgecheck.model import one_line

    proto = load_model_for_editing(model)
    folded = fold_weight_constants(proto)  # weights held in Constant nodes (Paddle exports) become visible
    before = _parameter_count(proto.graph)
    rewriter = _Rewriter(proto, params)
    rewriter.run()
    if not rewriter.factored:
        reasons = "; ".join(rewriter.skipped) or f"no {'/'.join(params.op_types)} node in the main graph"
        raise RecipeNotApplicable(f"lowrank: nothing to factorize: {reasons}")

    used = _used_names(proto.graph)
    unused = set(rewriter.replaced_weights) - used
    kept = [t for t in proto.graph.initializer if t.name not in unused]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    produced = {name for node in proto.graph.node for name in node.output}
    fresh = [v for v in proto.graph.value_info if v.name in produced]  # drop entries for removed tensors
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(fresh)
    try:
        proto = onnx.shape_inference.infer_shapes(proto)  # adds the hidden tensors' shapes
    except (ValueError, RuntimeError, onnx.shape_inference.InferenceError):
        pass  # shapes are optional (e.g. a model over 2 GB cannot be inferred in memory)

    path = artifact_path(model, "lowrank", context)
    try:
        save_model(proto, path)
    except onnx.checker.ValidationError as exc:
        raise RecipeError(f"lowrank: the factored model fails the ONNX checker: {one_line(str(exc))}") from None
    notes = {"factored": ", ".join(rewriter.factored),
             "parameters": f"{before:,} -> {_parameter_count(proto.graph):,}"}
    if rewriter.skipped:
        notes["skipped"] = "; ".join(rewriter.skipped)
    if folded:
        notes["constants"] = folded_note(folded, "factored")
    return Artifact(path, "lowrank", notes=notes)
