"""STAND-IN for NVIDIA's trtexec, for edgecheck's tests on the localhost SSH board. It is NOT TensorRT and
nothing it prints is a TensorRT result: its numbers are made up.

What it does, so a test can check the command lines and the file traffic edgecheck's TensorRT code makes:
- refuses any flag the TensorRT version it plays (trtexec_standin.json beside it) does not have, as trtexec
  does ("[E] Unknown option: ..."), by the flag table of RESEARCH20 section 3;
- `--help`: the version banner;
- a build (`--onnx --saveEngine`): fails with an [E] line where trtexec_standin.json says "fail_build"; else copies the ONNX model into the engine path, writes `--exportLayerInfo` in
  the detailed format and a build log with memory totals and the [DlaLayer]/[GpuLayer] lists (the layers
  trtexec_standin.json's "dla" names on the DLA when --useDLACore is given, the rest on the GPU);
- a timing (`--exportTimes`, `--exportProfile`): made-up per-inference times and per-layer profile in
  trtexec's JSON layouts, after "running" for WALLTIME_S (a file `busy` beside it exists meanwhile, which
  the tests' stand-in power meter reads);
- `--exportOutput` with `--loadInputs`: the outputs of the ONNX model run by ONNX Runtime, printed with
  6 significant digits as trtexec prints them.
Every call's argv is appended to trtexec_standin.calls.jsonl beside it.
"""

import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = json.load(open(os.path.join(HERE, "trtexec_standin.json")))
VERSION = tuple(int(p) for p in CONFIG["version"].split("."))
PACKED = "v%d%02d%02d" % VERSION if VERSION[0] >= 10 else "v%d%d%02d" % VERSION
WALLTIME_S = 0.5
LAYERS = [("Reformatting CopyNode for Input Tensor 0 to matmul + add", "Reformat", "FP32", "REFORMAT"),
          ("matmul + add", "CaskGemm", "FP16", None),
          ("head kept in fp32", "CaskPointWise", "FP32", None)]

COMMON = {"help", "onnx", "saveEngine", "loadEngine", "fp16", "int8", "noTF32", "useDLACore", "allowGPUFallback",
          "minShapes", "optShapes", "maxShapes", "shapes", "profilingVerbosity", "exportProfile", "exportTimes",
          "exportOutput", "separateProfileRun", "iterations", "warmUp", "duration", "useSpinWait", "loadInputs",
          "verbose", "noDataTransfers", "calib"}


def known(version):
    flags = set(COMMON)
    if version < (10, 0):
        flags |= {"workspace", "buildOnly"}
    if version >= (8, 2):
        flags.add("exportLayerInfo")
    else:
        flags.add("nvtxMode")  # 8.0's detailed-profile flag (RESEARCH20 section 3)
    if version >= (8, 4):
        flags.add("memPoolSize")
    if version >= (8, 6):
        flags |= {"builderOptimizationLevel", "skipInference"}
    if version >= (10, 0):
        flags.add("stronglyTyped")
    return flags


def banner(state):
    return "&&&& %s TensorRT.trtexec [TensorRT %s] # %s" % (state, PACKED, " ".join(sys.argv))


def fail(message):
    print("[E] " + message)
    print(banner("FAILED"))
    sys.exit(1)


def parse(argv):
    options = {}
    for word in argv:
        if not word.startswith("--"):
            fail("Unknown option: " + word)
        name, _, value = word[2:].partition("=")
        if name not in known(VERSION):
            fail("Unknown option: --%s %s" % (name, value))
        options[name] = value
    return options


def build(options):
    if CONFIG.get("fail_build"):  # trtexec_standin.json {"fail_build": true}: every build fails, as a parser error would
        fail("ModelImporter.cpp:773: While parsing node number 0 [Gemm]: (the stand-in fails every build)")
    if not ("buildOnly" in options or "skipInference" in options):
        fail("the stand-in builds only with --buildOnly / --skipInference (edgecheck never times at build)")
    shutil.copyfile(options["onnx"], options["saveEngine"])
    if "exportLayerInfo" in options:
        layers = [{"Name": name, "LayerType": kind, "Inputs": [{"Name": "in", "Location": "Device", "Dimensions": [1, 4],
                   "Format/Datatype": "Row major linear %s format" % precision}],
                   "Outputs": [{"Name": "out", "Location": "Device", "Dimensions": [1, 3],
                                "Format/Datatype": "Row major linear %s format" % precision}],
                   "ParameterType": kind, "Origin": origin, "TacticValue": "0x0000000000000000"}
                  for name, kind, precision, origin in LAYERS]
        for layer in layers:
            if layer["Origin"] is None:
                del layer["Origin"]
        with open(options["exportLayerInfo"], "w") as handle:
            json.dump({"Layers": layers, "Bindings": ["x", "scores"]}, handle, indent=1)
    print("[I] TensorRT version: %d.%d.%d" % VERSION)
    # trtexec_standin.json {"dla": [layer names]}: with --useDLACore, these are listed under [DlaLayer], the rest on the GPU
    on_dla = set(CONFIG.get("dla") or []) if "useDLACore" in options else set()
    print("[I] [TRT] ---------- Layers Running on DLA ----------")
    for name, _, _, _ in LAYERS:
        if name in on_dla:
            print("[I] [TRT] [DlaLayer] %s" % name)
    print("[I] [TRT] ---------- Layers Running on GPU ----------")
    for name, _, _, _ in LAYERS:
        if name not in on_dla:
            print("[I] [TRT] [GpuLayer] %s" % name)
    print("[I] [TRT] Total Host Persistent Memory: 30784")
    print("[I] [TRT] Total Device Persistent Memory: 1048576")
    print("[I] [TRT] Total Scratch Memory: 0")
    print("[I] [TRT] Total Activation Memory: 524288")
    print("[I] Engine built in 0.1 sec.")


def read_inputs(options, engine):
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(engine, providers=["CPUExecutionProvider"])
    shapes = dict(item.split(":") for item in options.get("shapes", "").split(",") if item)
    feeds = {}
    for spec in options["loadInputs"].split(","):
        name, _, path = spec.partition(":")
        name = name.strip("'")
        meta = next(i for i in session.get_inputs() if i.name == name)
        dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}[meta.type]
        shape = [int(d) for d in shapes[name].split("x")] if name in shapes else meta.shape
        feeds[name] = np.fromfile(path, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    return session, feeds


def export_output(options, engine):
    session, feeds = read_inputs(options, engine)
    outputs = session.run(None, feeds)
    parts = []
    for meta, value in zip(session.get_outputs(), outputs):
        values = ", ".join("%g" % v for v in value.reshape(-1).tolist())
        parts.append('{ "name" : "%s"\n  , "dimensions" : "%s"\n  , "values" : [ %s ]\n  }\n'
                     % (meta.name, "x".join(str(d) for d in value.shape), values))
    with open(options["exportOutput"], "w") as handle:
        handle.write("[\n  " + ", ".join(parts) + "]\n")


def timing(options):
    iterations = int(options.get("iterations", "10"))
    duration = float(options.get("duration", "3"))
    count = max(iterations, int(duration * 40))
    busy = os.path.join(HERE, "busy")
    open(busy, "w").close()
    try:
        time.sleep(WALLTIME_S + 0.1)
    finally:
        os.unlink(busy)
    if "exportTimes" in options:
        records, clock = [], 10.0
        for index in range(count):
            compute = 1.2 + 0.01 * (index % 7)
            record = {"startEnqMs": clock, "endEnqMs": clock + 0.1, "startH2dMs": clock, "endH2dMs": clock + 0.05,
                      "startComputeMs": clock + 0.05, "endComputeMs": clock + 0.05 + compute,
                      "startD2hMs": clock + 0.05 + compute, "endD2hMs": clock + 0.07 + compute, "h2dMs": 0.05,
                      "computeMs": compute, "d2hMs": 0.02, "latencyMs": 0.07 + compute}
            records.append("{ " + ", ".join('"%s" : %s' % (k, round(v, 6)) for k, v in record.items()) + " }")
            clock += 0.07 + compute
        with open(options["exportTimes"], "w") as handle:
            handle.write("[\n  " + "\n, ".join(records) + "\n]\n")
    if "exportProfile" in options:
        rows = ['  { "count" : %d }' % count]
        for share, (name, _, _, _) in zip((5.0, 80.0, 15.0), LAYERS):
            rows.append(', { "name" : "%s", "timeMs" : %g, "averageMs" : %g, "medianMs" : %g, "percentage" : %g }'
                        % (name, share / 100 * 1.2 * count, share / 100 * 1.2, share / 100 * 1.2, share))
        with open(options["exportProfile"], "w") as handle:
            handle.write("[\n" + "\n".join(rows) + "\n]\n")
    print("[I] Warmup completed 5 queries over 200 ms")
    print("[I] Timing trace has %d queries over %g s" % (count, WALLTIME_S))
    print("[I] === Performance summary ===")
    print("[I] Throughput: %g qps" % (count / WALLTIME_S))
    print("[I] GPU Compute Time: min = 1.2 ms, max = 1.26 ms, mean = 1.23 ms, median = 1.23 ms, percentile(99%) = 1.26 ms")
    print("[I] Total Host Walltime: %g s" % WALLTIME_S)
    print("[I] Total GPU Compute Time: %g s" % (1.23 * count / 1000))


def main():
    with open(os.path.join(HERE, "trtexec_standin.calls.jsonl"), "a") as calls:
        calls.write(json.dumps(sys.argv[1:]) + "\n")
    print(banner("RUNNING"))
    print("[I] (a stand-in for trtexec in edgecheck's tests: not TensorRT, made-up numbers)")
    options = parse(sys.argv[1:])
    if "help" in options:
        print("=== Model Options ===")
    elif "onnx" in options:
        build(options)
    elif "loadEngine" in options:
        engine = options["loadEngine"]
        if not os.path.isfile(engine):
            fail("engine file not found: " + engine)
        if "exportOutput" in options:
            export_output(options, engine)
        else:
            timing(options)
    else:
        fail("Model missing or format not recognized")
    print(banner("PASSED"))


if __name__ == "__main__":
    main()
