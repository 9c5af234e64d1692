"""What rknn-toolkit2 says about a build, read from its logs: the per-layer table (op type, data type,
NPU or CPU, the compiler's cycle estimate, bytes moved), the memory totals, the per-layer error of
`accuracy_analysis`, and the reason of a refused build.

These are logs, not an API (rknn-toolkit2 2.5.0's formats are recorded verbatim in
docs/research/rknn-toolkit2.md): every reader here skips what it does not recognise and says what it
found, so a changed format yields fewer facts, never a crash or a wrong number.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

_PREFIX = re.compile(r"^[DIWE] RKNN: \[\d\d:\d\d:\d\d\.\d+\] ?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MEMORY = re.compile(r"Total (Internal|Weight) Memory Size:\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)\b", re.IGNORECASE)
_INTEGER = re.compile(r"[0-9]+")
_SHAPE_GROUP = re.compile(r"\(([^)]*)\)")
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
_ERROR_ROW = re.compile(r"^\[(?P<op>[^\]]+)\]\s+(?P<name>\S+)\s+(?P<ecos>-?[\d.]+|nan)\s*\|\s*(?P<eeuc>[\d.]+|nan|inf)"
                        r"\s+(?P<scos>-?[\d.]+|nan)\s*\|\s*(?P<seuc>[\d.]+|nan|inf)\s*$")
_FUSED_ROW = re.compile(r"^\[(?P<op>[^\]]+)\]\s+(?P<name>\S+)\s*$")
BOUNDARY_OPS = ("InputOperator", "OutputOperator")  # listed as layers, but they are the model's edges


@dataclass(frozen=True)
class RknnLayer:
    """One row of the toolkit's "Network Layer Information Table"."""

    index: int
    op_type: str  # after the toolkit's fusion: ConvRelu, exSoftmax13, ...
    dtype: str  # INT8, FLOAT16, INT64, ...
    target: str  # NPU or CPU
    input_shape: str
    output_shape: str
    cycles_ddr: int
    cycles_npu: int
    cycles_total: int
    rw_kb: int
    full_name: str  # "<ONNX op>:<ONNX node or tensor name>", as the toolkit writes it

    @property
    def source_op(self) -> str:
        return self.full_name.partition(":")[0] if ":" in self.full_name else self.op_type

    @property
    def source_name(self) -> str:
        """The ONNX node or tensor the layer came from (the toolkit's '#2' suffix of a rewrite dropped)."""
        name = self.full_name.partition(":")[2] if ":" in self.full_name else self.full_name
        return re.sub(r"#\d+$", "", name)

    @property
    def boundary(self) -> bool:
        return self.op_type in BOUNDARY_OPS


@dataclass(frozen=True)
class LayerError:
    """One row of accuracy_analysis's error_analysis.txt: the simulator against the float model, after
    this layer, accumulated ("entire") and for this layer alone ("single"). None where a fused layer
    has no figures of its own."""

    op_type: str
    name: str
    entire_cos: float | None = None
    entire_euc: float | None = None
    single_cos: float | None = None
    single_euc: float | None = None


@dataclass(frozen=True)
class BuildLog:
    layers: tuple[RknnLayer, ...]
    internal_memory_bytes: int | None
    weight_memory_bytes: int | None

    @property
    def cycles_total(self) -> int:
        return sum(layer.cycles_total for layer in self.layers)

    def cpu_layers(self) -> list[RknnLayer]:
        return [layer for layer in self.layers if layer.target == "CPU" and not layer.boundary]

    def as_json(self) -> dict:
        return {"layers": [asdict(layer) for layer in self.layers],
                "internal_memory_bytes": self.internal_memory_bytes, "weight_memory_bytes": self.weight_memory_bytes}

    @classmethod
    def from_json(cls, data: dict) -> BuildLog:
        return cls(tuple(RknnLayer(**row) for row in data.get("layers", [])), data.get("internal_memory_bytes"),
                   data.get("weight_memory_bytes"))


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _strip(line: str) -> str:
    return _PREFIX.sub("", _ANSI.sub("", line.rstrip("\r\n")))


def _cycles(text: str) -> tuple[int, int, int] | None:
    parts = text.split("/")
    if len(parts) != 3 or not all(_INTEGER.fullmatch(p) for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def parse_layer_table(text: str) -> list[RknnLayer]:
    """The rows of the last "Network Layer Information Table" in a verbose build's stdout."""
    layers: list[RknnLayer] = []
    inside = False
    for raw in text.splitlines():
        line = _strip(raw)
        if "Network Layer Information Table" in line:
            inside, layers = True, []  # the last table printed is the build's
            continue
        if not inside:
            continue
        if line.startswith("<<<<") or line.startswith(">>>>"):
            inside = False
            continue
        fields = line.split(None, 8)
        if len(fields) < 8 or not _INTEGER.fullmatch(fields[0]):
            continue  # the header, the dashed lines, anything unforeseen
        cycles = _cycles(fields[6])
        if cycles is None or not _INTEGER.fullmatch(fields[7]):
            continue
        layers.append(RknnLayer(int(fields[0]), fields[1], fields[2], fields[3], fields[4], fields[5], *cycles,
                                int(fields[7]), fields[8].strip() if len(fields) > 8 else ""))
    return layers


def parse_memory(text: str) -> tuple[int | None, int | None]:
    """Total internal (feature maps) and weight memory in bytes, from the build's memory statistics."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        match = _MEMORY.search(_strip(line))
        if match:
            found[match.group(1).lower()] = round(float(match.group(2)) * _UNITS[match.group(3).lower()])
    return found.get("internal"), found.get("weight")


def parse_build_log(text: str) -> BuildLog:
    internal, weight = parse_memory(text)
    return BuildLog(tuple(parse_layer_table(text)), internal, weight)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # NaN: no figure


def parse_error_analysis(text: str) -> list[LayerError]:
    """The rows of accuracy_analysis's error_analysis.txt (fused layers without figures included)."""
    rows = []
    for raw in text.splitlines():
        line = _ANSI.sub("", raw).strip()
        match = _ERROR_ROW.match(line)
        if match:
            rows.append(LayerError(match["op"], match["name"], _number(match["ecos"]), _number(match["eeuc"]),
                                   _number(match["scos"]), _number(match["seuc"])))
            continue
        match = _FUSED_ROW.match(line)
        if match and not line.startswith("#"):
            rows.append(LayerError(match["op"], match["name"]))
    return rows


def error_jumps(rows: list[LayerError], count: int = 5, threshold: float = 0.999) -> list[LayerError]:
    """The first layers where the error jumps: a single-layer cosine below `threshold`, in model order;
    where none is, the layers with the lowest single-layer cosine. Input layers are left out."""
    scored = [r for r in rows if r.single_cos is not None and r.op_type != "Input"]
    jumps = [r for r in scored if r.single_cos < threshold]  # type: ignore[operator]
    if not jumps:
        worst = sorted(scored, key=lambda r: r.single_cos)[:count]  # type: ignore[arg-type, return-value]
        jumps = [r for r in scored if r in worst]
    return jumps[:count]


def _figure(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def describe_error(row: LayerError) -> str:
    return (f"[{row.op_type}] {row.name}: cosine {_figure(row.single_cos, '.5f')} for the layer alone, "
            f"{_figure(row.entire_cos, '.5f')} accumulated (euclidean {_figure(row.single_euc, '.4g')} / "
            f"{_figure(row.entire_euc, '.4g')})")


_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception))\b(.*:.*)$")
_NOT_CONTINUED = re.compile(r"^(\s*$|Traceback|During handling|The above exception|[EWID] |\s+File \")")


def _exception_messages(lines: list[str]) -> list[str]:
    """Each exception message of the tracebacks in `lines`, with the lines that continue it (onnx's
    checker names the node on the lines after its first: "... however input 'a' of node: / name: n
    OpType: Relu / is not output of any previous nodes."), the type's module path dropped."""
    messages = []
    for index, line in enumerate(lines):
        match = _EXCEPTION.match(line.strip())
        if not match:
            continue
        parts = [f"{match.group(1)}{match.group(2)}".strip()]
        for follow in lines[index + 1:index + 20]:
            if _NOT_CONTINUED.match(follow) or _EXCEPTION.match(follow.strip()):
                break
            parts.append(follow.strip())
        messages.append(" ".join(part for part in parts if part))
    return messages


def checker_warning(stderr: str) -> str:
    """The last onnx checker failure the toolkit logged as a warning (it goes on, then often fails with a
    bare KeyError naming only a tensor), whole: "onnx.checker.check_model fail: Nodes in a graph must
    be topologically sorted, however input 'a' of node: name: relu_late OpType: Relu is not output of
    any previous nodes."; '' where it logged none."""
    lines = [_ANSI.sub("", line).rstrip() for line in stderr.splitlines()]
    said = ""
    for index, line in enumerate(lines):
        match = re.match(r"^W (\w+): (onnx\.checker\.check_model fail: .*)$", line)
        if match:
            parts = [match.group(2).strip()]
            for follow in lines[index + 1:index + 20]:
                if _NOT_CONTINUED.match(follow):
                    break
                parts.append(follow.strip())
            said = " ".join(part for part in parts if part)
    return said


def refusal(stderr: str) -> str:
    """The toolkit's reason for a failed step, in its own words: the `E <api>: <message>` line, else the
    last line of its traceback; with the known workaround where there is one."""
    lines = [_ANSI.sub("", line).rstrip() for line in stderr.splitlines()]
    said = ""
    for index, line in enumerate(lines):
        match = re.match(r"^E (\w+): (.+)$", line)
        if match and match.group(1) != "RKNN" and "Traceback" not in match.group(2):
            said = f"{match.group(1)}: {match.group(2).strip()}"
            follow = []
            for ln in lines[index + 1:index + 20]:  # the message's own further lines, as the toolkit prints them
                if _NOT_CONTINUED.match(ln):
                    break
                follow.append(ln.strip())
            said = " ".join([said, *follow])
    errors = _exception_messages(lines)
    last = errors[-1] if errors else ""
    if "convert_layernorm_to_exnorm" in stderr and "KeyError" in last:
        return ("build: rknn-toolkit2 fails inside its rule convert_layernorm_to_exnorm (KeyError: "
                "'LayerNormalization'), which happens on a LayerNormalization without an explicit epsilon "
                "attribute: set epsilon in the model, or add disable_rules: [convert_layernorm_to_exnorm] "
                "to the recipe's parameters")
    if said and ("Traceback" not in said):
        return said
    return last.removeprefix("ValueError: ") or said


def shape_elements(text: str) -> int | None:
    """Elements of every tensor in a layer table's shape column ("(1,10,1,1),(2)"); None where the column is
    cut short ("..."), holds no shape, or a group is not plain dimensions ("(1,-1)")."""
    groups = _SHAPE_GROUP.findall(text)
    if not groups or "..." in text:
        return None
    total = 0
    for group in groups:
        dims = [d.strip() for d in group.split(",") if d.strip()]
        if not all(d.isdigit() for d in dims):
            return None
        total += math.prod(int(d) for d in dims)
    return total
