"""Runs onnx2tf on one model: started by the tflite recipes under the onnx2tf environment's own
interpreter (its pins clash with edgecheck's), so it imports only the standard library, numpy and
onnx2tf — never edgecheck.

    <onnx2tf env>/bin/python onnx2tf_driver.py JOB.json RESULT.json

The job names a copy of the model (onnx2tf may rewrite its input with the simplified model), the
mode, the input shapes to fix and whether to simplify first (onnxsim, installed with onnx2tf), onnx2tf's
own options, and for INT8 the calibration arrays already in the converted model's layout (NHWC). It runs
in a scratch folder with the network blocked (edgecheck/compress/offline/sitecustomize.py), so the
sample calibration file onnx2tf would otherwise download is never fetched.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

# the file onnx2tf writes for each mode (suffixes of <model stem>_<suffix>.tflite)
OUTPUTS = {"fp32": "float32", "fp16": "float16", "int8-dynamic": "dynamic_range_quant",
           "int8-static": "integer_quant", "int8-static-int8-io": "full_integer_quant"}


def copy_constants_into_branches(graph, outer: dict | None = None) -> int:
    """Give each subgraph (If, Loop, Scan) its own copy of the constants it reads from the graphs
    around it: onnxsim (onnx2tf runs it too) drops a Constant node whose only readers are inside a
    branch, and onnx2tf then fails at the If with KeyError on that constant's name. The number of
    copies made."""
    import onnx
    from onnx import helper

    values = dict(outer or {})
    values.update({t.name: t for t in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            values[node.output[0]] = node.attribute[0].t
    copies = 0
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type != onnx.AttributeProto.GRAPH:
                continue
            branch = attribute.g
            inside = ({o for n in branch.node for o in n.output} | {i.name for i in branch.input}
                      | {t.name for t in branch.initializer})
            read = dict.fromkeys(i for n in branch.node for i in n.input if i and i not in inside and i in values)
            for name in reversed(list(read)):
                copy = onnx.TensorProto()
                copy.CopyFrom(values[name])
                copy.name = f"{name}__{branch.name or 'branch'}"
                for reader in branch.node:
                    reader.input[:] = [copy.name if i == name else i for i in reader.input]
                branch.node.insert(0, helper.make_node("Constant", [], [copy.name], name=copy.name, value=copy))
                copies += 1
            copies += copy_constants_into_branches(branch, values)
    return copies


def prepare(job: dict) -> tuple[str, str]:
    """The model onnx2tf gets: the copy with its input shapes fixed as the job says, simplified by
    onnxsim where `simplify` is set; and a note of what was done."""
    import onnx

    shapes = job.get("input_shapes") or {}
    if not job.get("simplify") and not any(d is not None for dims in shapes.values() for d in dims):
        return job["model"], ""
    model = onnx.load(job["model"])
    if model.ByteSize() > 2**31 - 2**26:  # one protobuf holds under 2 GB: onnxsim and onnx.save would fail
        return job["model"], "not prepared (the model is close to 2 GB, more than one protobuf holds)"
    fixed = []
    for tensor in model.graph.input:
        dims = shapes.get(tensor.name)
        if not dims or not tensor.type.HasField("tensor_type"):
            continue
        for dim, size in zip(tensor.type.tensor_type.shape.dim, dims):
            if size is not None and not dim.HasField("dim_value"):
                dim.Clear()
                dim.dim_value = size
                fixed.append(tensor.name)
    note = f"shapes fixed: {', '.join(sorted(set(fixed)))}" if fixed else ""
    before = len(model.graph.node)
    if job.get("simplify"):
        import onnxsim

        copies = copy_constants_into_branches(model.graph)
        if copies:
            note = "; ".join(p for p in (note, f"{copies} constants copied into the branches that read them") if p)

        try:
            simplified, checked = onnxsim.simplify(model)
        except Exception as exc:  # onnxsim refuses some graphs (control flow): convert them as they are
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
            simplified, checked = None, f"{type(exc).__name__}: {first}"
        if simplified is not None and checked is True:
            model = simplified
            note = "; ".join(p for p in (note, f"simplified by onnxsim {onnxsim.__version__}: {before} → "
                                         f"{len(model.graph.node)} nodes") if p)
        else:
            why = checked if isinstance(checked, str) else "its result differed from the model's"
            note = "; ".join(p for p in (note, f"not simplified (onnxsim: {why})") if p)
    folder = Path(job["work_dir"]) / "prepared"
    folder.mkdir(exist_ok=True)
    path = folder / Path(job["model"]).name
    onnx.save(model, str(path))
    return str(path), note


def convert(job: dict) -> dict:
    import onnx2tf

    mode = job["mode"]
    work = Path(job["work_dir"])
    out = work / "converted"
    model, prepared = prepare(job)
    job["prepared"] = prepared
    calibration = [[name, path, 0.0, 1.0] for name, path in job.get("calibration", [])] or None
    onnx2tf.convert(
        input_onnx_file_path=model,
        output_folder_path=str(out),
        copy_onnx_input_output_names_to_tflite=True,
        output_signaturedefs=True,
        output_dynamic_range_quantized_tflite=mode == "int8-dynamic",
        output_integer_quantized_tflite=mode.startswith("int8-static"),
        quant_type="per-channel" if job.get("per_channel", True) else "per-tensor",
        custom_input_op_name_np_data_path=calibration,
        non_verbose=True,
        **job.get("options", {}),
    )
    wanted = out / f"{Path(model).stem}_{OUTPUTS[mode]}.tflite"
    if not wanted.is_file():
        made = ", ".join(sorted(p.name for p in out.glob("*.tflite"))) or "no .tflite file"
        raise RuntimeError(f"onnx2tf finished without writing {wanted.name} (it wrote: {made})")
    return {"path": str(wanted), "onnx2tf": onnx2tf.__version__, "prepared": prepared}


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    os.chdir(job["work_dir"])  # onnx2tf writes beside itself: never in the user's tree
    try:
        result = {"ok": True, **convert(job)}
    except SystemExit as exc:  # onnx2tf logs its error, then calls sys.exit(1)
        result = {"ok": False, "error": f"onnx2tf stopped (exit status {exc.code}); its log says why"}
    except BaseException as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    result.setdefault("prepared", job.get("prepared", ""))
    Path(argv[2]).write_text(json.dumps(result), encoding="utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
