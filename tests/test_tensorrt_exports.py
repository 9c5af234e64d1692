"""edgecheck.vendors.tensorrt.exports on trtexec's own outputs. Each sample is copied verbatim from the source cited
beside it (via docs research RESEARCH20); where an excerpt was elided at the source ("…"), the elision is dropped and
the JSON closed, and the comment says so. Then fuzzing: any text, every prefix of a sample, mutated numbers — a reader
raises TrtexecOutputError or returns, nothing else; generated valid records round-trip."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecheck.vendors.tensorrt.exports import (InferenceTime, TrtexecLog, TrtexecOutputError, packed_version,
                                                read_layer_info, read_log, read_output, read_profile, read_times,
                                                tensor_precision, without_warmup)

# NVIDIA/TensorRT tools/experimental/trt-engine-explorer/tests/inputs/mobilenet.qat.onnx.engine.timing.json
# @ 922ec5ff4a2b324a3c675894767a7f3ab0e1cf4c: the first 3 records (the file goes on; closed here with "]")
TIMES = """[
  { "startEnqMs" : 12.6384, "endEnqMs" : 12.7482, "startH2dMs" : 12.5399, "endH2dMs" : 12.5399, "startComputeMs" : 12.5399, "endComputeMs" : 12.9989, "startD2hMs" : 12.9989, "endD2hMs" : 12.9989, "h2dMs" : 0, "computeMs" : 0.459041, "d2hMs" : 0, "latencyMs" : 0.459041 }
, { "startEnqMs" : 12.7579, "endEnqMs" : 12.7998, "startH2dMs" : 12.9996, "endH2dMs" : 12.9996, "startComputeMs" : 12.9996, "endComputeMs" : 13.4419, "startD2hMs" : 13.4419, "endD2hMs" : 13.4419, "h2dMs" : 0, "computeMs" : 0.442369, "d2hMs" : 0, "latencyMs" : 0.442369 }
, { "startEnqMs" : 13.1941, "endEnqMs" : 13.2368, "startH2dMs" : 13.4435, "endH2dMs" : 13.4435, "startComputeMs" : 13.4435, "endComputeMs" : 13.8883, "startD2hMs" : 13.8883, "endD2hMs" : 13.8883, "h2dMs" : 0, "computeMs" : 0.444799, "d2hMs" : 0, "latencyMs" : 0.444799 }
]
"""

# NVIDIA/TensorRT trt-engine-explorer/tests/inputs/mobilenet.qat.onnx.engine.profile.json
# @ 26210e920b95f8bd825bb77fac7afae848559d88: head and tail (the middle elided), no medianMs
PROFILE_OLD = """[
  { "count" : 4216 }
, { "name" : "QuantizeLinear_2", "timeMs" : 51.4526, "averageMs" : 0.0122041, "percentage" : 1.88608 }
, { "name" : "features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)", "timeMs" : 45.3071, "averageMs" : 0.0107465, "percentage" : 1.66081 }
, { "name" : "features.1.conv.0.0.weight + QuantizeLinear_25 + Conv_29 + PWN(Clip_33)", "timeMs" : 25.7439, "averageMs" : 0.00610625, "percentage" : 0.943687 }
, { "name" : "GlobalAveragePool_843", "timeMs" : 25.7243, "averageMs" : 0.00610158, "percentage" : 0.942966 }
, { "name" : "QuantizeLinear_854", "timeMs" : 30.8987, "averageMs" : 0.00732892, "percentage" : 1.13264 }
, { "name" : "copied_squeeze_after_(Unnamed Layer* 850) [ElementWise]", "timeMs" : 0, "averageMs" : 0, "percentage" : 0 }
]
"""

# NVIDIA/TensorRT trt-engine-explorer/examples/pytorch/resnet/A100/qat/resnet-qat.onnx.engine.profile.json
# @ 768d994b7305b69eb5db2397337ae96e36586b41: head and tail (the middle elided), with medianMs
PROFILE_NEW = """[
  { "count" : 1 }
, { "name" : "QuantizeLinear_2", "timeMs" : 0.06144, "averageMs" : 0.06144, "medianMs" : 0.06144, "percentage" : 5.60748 }
, { "name" : "conv1.weight + QuantizeLinear_7 + Conv_9", "timeMs" : 0.201728, "averageMs" : 0.201728, "medianMs" : 0.201728, "percentage" : 18.4112 }
, { "name" : "MaxPool_12", "timeMs" : 0.095232, "averageMs" : 0.095232, "medianMs" : 0.095232, "percentage" : 8.69159 }
, { "name" : "copied_squeeze_after_(Unnamed Layer* 307) [ElementWise]", "timeMs" : 0, "averageMs" : 0, "medianMs" : 0, "percentage" : 0 }
]
"""

# TensorRT 8.4 names-only layer info: https://github.com/NVIDIA/trt-samples-for-hackathon-cn/issues/18 (2022-05-07)
LAYER_NAMES = """{"Layers": ["Conv__25 + Relu"
,"MaxPool2d"
,"Reformatting CopyNode for Output Tensor 0 to MaxPool2d"
,"Conv__27 + Relu_1"
,"Reformatting CopyNode for Input Tensor 0 to MaxPool2d_1"
,"MaxPool2d_1"
,"MaxPool2d_1__22 + Reshape + (Unnamed Layer* 14) [Shuffle]"
,"MatMul + b3/read:0 + (Unnamed Layer* 21) [Shuffle] + unsqueeze_node_after_b3/read:0 + (Unnamed Layer* 21) [Shuffle]_(Unnamed Layer* 21) [Shuffle]_output + add_2 + Relu_2"
,"MatMul_1 + b4/read:0 + (Unnamed Layer* 37) [Shuffle] + unsqueeze_node_after_b4/read:0 + (Unnamed Layer* 37) [Shuffle]_(Unnamed Layer* 37) [Shuffle]_output + add_3"
,"copied_squeeze_after_add_3"
,"y + z"
,"(Unnamed Layer* 52) [Shuffle]"
],
"Bindings": ["x:0"
,"z:0"
]}"""

# NVIDIA/TensorRT trt-engine-explorer/tests/inputs/mobilenet.qat.onnx.engine.graph.json
# @ 8fe05393fed8488631b6d5b54458c4c3492a17dc: the first two layers, then Bindings (the layers between elided)
LAYER_DETAILED = """{"Layers": [{
  "Name": "QuantizeLinear_2",
  "LayerType": "Reformat",
  "Inputs": [
  {
    "Name": "input1",
    "Location": "Device",
    "Dimensions": [1,3,224,224],
    "Format/Datatype": "Row major linear FP32"
  }],
  "Outputs": [
  {
    "Name": "317",
    "Location": "Device",
    "Dimensions": [1,3,224,224],
    "Format/Datatype": "Four wide channel vectorized row major Int8 format"
  }],
  "ParameterType": "Reformat",
  "Origin": "QDQ",
  "TacticValue": "0x0000000000000000"
},{
  "Name": "features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)",
  "LayerType": "CaskConvolution",
  "Inputs": [
  {
    "Name": "317",
    "Location": "Device",
    "Dimensions": [1,3,224,224],
    "Format/Datatype": "Four wide channel vectorized row major Int8 format"
  }],
  "Outputs": [
  {
    "Name": "334",
    "Location": "Device",
    "Dimensions": [1,32,112,112],
    "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"
  }],
  "ParameterType": "Convolution",
  "Kernel": [3,3],
  "PaddingMode": "kEXPLICIT_ROUND_DOWN",
  "PrePadding": [1,1],
  "PostPadding": [1,1],
  "Stride": [2,2],
  "Dilation": [1,1],
  "OutMaps": 32,
  "Groups": 1,
  "Weights": {"Type": "Int8", "Count": 864},
  "Bias": {"Type": "Float", "Count": 32},
  "HasSparseWeights": 0,
  "Activation": "CLIPPED_RELU",
  "ParameterSubType": "[0.000000,127.000000]",
  "HasBias": 1,
  "HasReLU": 0,
  "TacticName": "volta_int8x4_icudnn_int8x4_128x32_relu_xregs_medium_c32_nn_v1",
  "TacticValue": "0x10d7116a3fad9b7a"
}],
"Bindings": ["input1"
,"1179"
]}"""

# --exportOutput, kept in a comment of a stored Python file (index id 30135411841); the comment's "# " stripped
OUTPUT = """[
  { "name" : "probs_phone"
  , "dimensions" : "1x5"
  , "values" : [ 0.0435101, 0.0340782, 0.0555826, 0.195444, 0.671385 ]
  }
, { "name" : "probs_headset"
  , "dimensions" : "1x3"
  , "values" : [ 0.79014, 0.206794, 0.00306536 ]
  }
, { "name" : "probs_gaze"
  , "dimensions" : "1x5"
  , "values" : [ 0.0187541, 0.0112795, 0.0027413, 0.00542685, 0.961798 ]
  }
]
"""

# Jetson Nano (Tegra X1), TensorRT 8.2.1: excerpts of a full build + benchmark log (index id 11074896290); the
# source's elisions ("…") dropped, nothing else changed
LOG_NANO_82 = """&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec --workspace=2048 --onnx=weights/culane_18-INT32.onnx --saveEngine=weights/culane_18-INT32.engine
[07/14/2023-11:52:09] [I] Workspace: 2048 MiB
[07/14/2023-11:52:09] [I] Skip inference: Disabled
[07/14/2023-11:52:09] [I] === Device Information ===
[07/14/2023-11:52:09] [I] Selected Device: NVIDIA Tegra X1
[07/14/2023-11:52:09] [I] Compute Capability: 5.3
[07/14/2023-11:52:09] [I] SMs: 1
[07/14/2023-11:52:09] [I] Compute Clock Rate: 0.9216 GHz
[07/14/2023-11:52:09] [I] Device Global Memory: 3955 MiB
[07/14/2023-11:52:09] [I] TensorRT version: 8.2.1
[07/14/2023-11:52:13] [I] [TRT] ---------- Layers Running on DLA ----------
[07/14/2023-11:52:13] [I] [TRT] ---------- Layers Running on GPU ----------
[07/14/2023-11:52:13] [I] [TRT] [GpuLayer] /model/conv1/Conv + /model/relu/Relu
[07/14/2023-11:52:13] [I] [TRT] [GpuLayer] /model/maxpool/MaxPool
[07/14/2023-11:55:10] [I] [TRT] Total Host Persistent Memory: 30784
[07/14/2023-11:55:10] [I] [TRT] Total Device Persistent Memory: 61892096
[07/14/2023-11:55:10] [I] [TRT] Total Scratch Memory: 0
[07/14/2023-11:55:10] [I] [TRT] [MemUsageStats] Peak memory usage of TRT CPU/GPU memory allocators: CPU 113 MiB, GPU 1112 MiB
[07/14/2023-11:55:10] [I] [TRT] Total Activation Memory: 22118400
[07/14/2023-11:55:11] [I] [TRT] Loaded engine size: 186 MiB
[07/14/2023-11:55:14] [I] Engine built in 184.708 sec.
[07/14/2023-11:55:18] [I] Warmup completed 2 queries over 200 ms
[07/14/2023-11:55:18] [I] Timing trace has 35 queries over 3.16419 s
[07/14/2023-11:55:18] [I] 
[07/14/2023-11:55:18] [I] === Trace details ===
[07/14/2023-11:55:18] [I] Trace averages of 10 runs:
[07/14/2023-11:55:18] [I] Average on 10 runs - GPU latency: 90.1627 ms - Host latency: 90.4484 ms (end to end 90.4616 ms, enqueue 7.42288 ms)
[07/14/2023-11:55:18] [I] === Performance summary ===
[07/14/2023-11:55:18] [I] Throughput: 11.0613 qps
[07/14/2023-11:55:18] [I] Latency: min = 89.312 ms, max = 91.492 ms, mean = 90.3919 ms, median = 90.3035 ms, percentile(99%) = 91.492 ms
[07/14/2023-11:55:18] [I] End-to-End Host Latency: min = 89.3254 ms, max = 91.5049 ms, mean = 90.4048 ms, median = 90.3167 ms, percentile(99%) = 91.5049 ms
[07/14/2023-11:55:18] [I] Enqueue Time: min = 1.54553 ms, max = 9.62085 ms, mean = 6.19246 ms, median = 6.2948 ms, percentile(99%) = 9.62085 ms
[07/14/2023-11:55:18] [I] H2D Latency: min = 0.274475 ms, max = 0.288208 ms, mean = 0.277587 ms, median = 0.276855 ms, percentile(99%) = 0.288208 ms
[07/14/2023-11:55:18] [I] GPU Compute Time: min = 89.0273 ms, max = 91.2045 ms, mean = 90.1061 ms, median = 90.0183 ms, percentile(99%) = 91.2045 ms
[07/14/2023-11:55:18] [I] D2H Latency: min = 0.00683594 ms, max = 0.00881958 ms, mean = 0.008238 ms, median = 0.00830078 ms, percentile(99%) = 0.00881958 ms
[07/14/2023-11:55:18] [I] Total Host Walltime: 3.16419 s
[07/14/2023-11:55:18] [I] Total GPU Compute Time: 3.15371 s
[07/14/2023-11:55:18] [I] Explanations of the performance metrics are printed in the verbose logs.
[07/14/2023-11:55:18] [I] 
&&&& PASSED TensorRT.trtexec [TensorRT v8201] # trtexec --workspace=2048 --onnx=weights/culane_18-INT32.onnx --saveEngine=weights/culane_18-INT32.engine
"""

# Xavier AGX, TensorRT 8.4.0 (no End-to-End line): https://github.com/OE4T/meta-tegra/pull/952 (elisions dropped)
LOG_XAVIER_84 = """[03/11/2022-14:57:03] [I] === Performance summary ===
[03/11/2022-14:57:03] [I] Throughput: 41087.7 qps
[03/11/2022-14:57:03] [I] Latency: min = 0.387207 ms, max = 0.447357 ms, mean = 0.402238 ms, median = 0.401947 ms, percentile(99%) = 0.420288 ms
[03/11/2022-14:57:03] [I] GPU Compute Time: min = 0.375977 ms, max = 0.403564 ms, mean = 0.388221 ms, median = 0.388443 ms, percentile(99%) = 0.393188 ms
[03/11/2022-14:57:03] [I] Explanations of the performance metrics are printed in the verbose logs.
[03/11/2022-14:57:03] [I] 
&&&& PASSED TensorRT.trtexec [TensorRT v8400] # trtexec --loadEngine=mnist16.trt --batch=16
"""

# Orin Nano, JetPack 5, TensorRT 8.5.2, three percentiles: Idein/aicast_jetson_benchmark jetson/README.md
# @ 85232041caef110207ba98dcf8f091c3b15c2155
LOG_ORIN_85 = """[02/26/2024-10:43:06] [I] === Performance summary ===
[02/26/2024-10:43:06] [I] Throughput: 97.8649 qps
[02/26/2024-10:43:06] [I] Latency: min = 10.642 ms, max = 10.9861 ms, mean = 10.7971 ms, median = 10.7972 ms, percentile(90%) = 10.9329 ms, percentile(95%) = 10.949 ms, percentile(99%) = 10.9744 ms
[02/26/2024-10:43:06] [I] Enqueue Time: min = 1.1098 ms, max = 2.30975 ms, mean = 1.36227 ms, median = 1.19873 ms, percentile(90%) = 1.9928 ms, percentile(95%) = 2.07275 ms, percentile(99%) = 2.15002 ms
[02/26/2024-10:43:06] [I] H2D Latency: min = 0.299072 ms, max = 0.373962 ms, mean = 0.316446 ms, median = 0.310486 ms, percentile(90%) = 0.332031 ms, percentile(95%) = 0.345398 ms, percentile(99%) = 0.354126 ms
[02/26/2024-10:43:06] [I] GPU Compute Time: min = 10.0343 ms, max = 10.3575 ms, mean = 10.1824 ms, median = 10.1851 ms, percentile(90%) = 10.3206 ms, percentile(95%) = 10.338 ms, percentile(99%) = 10.356 ms
[02/26/2024-10:43:06] [I] D2H Latency: min = 0.17041 ms, max = 0.312134 ms, mean = 0.29821 ms, median = 0.298584 ms, percentile(90%) = 0.302856 ms, percentile(95%) = 0.304077 ms, percentile(99%) = 0.310608 ms
[02/26/2024-10:43:06] [I] Total Host Walltime: 3.0348 s
[02/26/2024-10:43:06] [I] Total GPU Compute Time: 3.02418 s
[02/26/2024-10:43:06] [I] Explanations of the performance metrics are printed in the verbose logs.
[02/26/2024-10:43:06] [I] 
&&&& PASSED TensorRT.trtexec [TensorRT v8502] # trtexec --onnx=./yolox_s_leaky.onnx --saveEngine=./fp16.trt --fp16
"""

# JetPack 6, TensorRT 10.3, --noDataTransfers (index id 9871029832)
LOG_JP6_103 = """[05/13/2025-10:36:46] [I] === Performance summary ===
[05/13/2025-10:36:46] [I] Throughput: 318.007 qps
[05/13/2025-10:36:46] [I] Latency: min = 3.12671 ms, max = 3.15479 ms, mean = 3.14068 ms, median = 3.14062 ms, percentile(90%) = 3.14587 ms, percentile(95%) = 3.14771 ms, percentile(99%) = 3.15039 ms
[05/13/2025-10:36:46] [I] Enqueue Time: min = 0.844238 ms, max = 2.05505 ms, mean = 0.887139 ms, median = 0.872437 ms, percentile(90%) = 0.932861 ms, percentile(95%) = 0.953735 ms, percentile(99%) = 1.0658 ms
[05/13/2025-10:36:46] [I] H2D Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(90%) = 0 ms, percentile(95%) = 0 ms, percentile(99%) = 0 ms
[05/13/2025-10:36:46] [I] GPU Compute Time: min = 3.12671 ms, max = 3.15479 ms, mean = 3.14068 ms, median = 3.14062 ms, percentile(90%) = 3.14587 ms, percentile(95%) = 3.14771 ms, percentile(99%) = 3.15039 ms
[05/13/2025-10:36:46] [I] D2H Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(90%) = 0 ms, percentile(95%) = 0 ms, percentile(99%) = 0 ms
[05/13/2025-10:36:46] [I] Total Host Walltime: 3.00622 s
[05/13/2025-10:36:46] [I] Total GPU Compute Time: 3.00249 s
[05/13/2025-10:36:46] [I] Explanations of the performance metrics are printed in the verbose logs.
[05/13/2025-10:36:46] [I] 
&&&& PASSED TensorRT.trtexec [TensorRT v100300] # /usr/src/tensorrt/bin/trtexec --onnx=/usr/src/tensorrt/data/resnet50/ResNet50.onnx --fp16 --noDataTransfers --iterations=2
"""

# TensorRT 10.3 refusing 8.x flags on JetPack 6 (index id 14991181718)
LOG_JP6_FAILED = """[10/05/2025-10:46:31] [E] Unknown option: --workspace 2048
[10/05/2025-10:46:31] [E] Unknown option: --buildOnly 
[10/05/2025-10:46:31] [E] Unknown option: --explicitBatch 
&&&& FAILED TensorRT.trtexec [TensorRT v100300] # /usr/src/tensorrt/bin/trtexec --onnx=./models/best.onnx --saveEngine=models/best_fp16.engine --explicitBatch --fp16 --workspace=2048 --minShapes=images:1x3x640x640 --optShapes=images:1x3x640x640 --maxShapes=images:1x3x640x640 --buildOnly
"""

# DLA placement printed at build time, 8.4-era form with the layer type (index id 31676822915; a shell script's
# comment, "#" stripped, trailing spaces kept)
LOG_DLA = """[02/19/2022-05:35:26] [I] [TRT] ---------- Layers Running on DLA ---------- 
[02/19/2022-05:35:26] [I] [TRT] [DlaLayer] {ForeignNode[conv1_1...pool5]}
[02/19/2022-05:35:26] [I] [TRT] [DlaLayer] {ForeignNode[relu6...fc8]}
[02/19/2022-05:35:26] [I] [TRT] ---------- Layers Running on GPU ----------
[02/19/2022-05:35:26] [I] [TRT] [GpuLayer] SHUFFLE: shuffle_between_pool5_and_fc6 
[02/19/2022-05:35:26] [I] [TRT] [GpuLayer] CONVOLUTION: fc6
[02/19/2022-05:35:26] [I] [TRT] [GpuLayer] SOFTMAX: prob
"""

# Python API logger order "[TRT] [I]" (index id 36066344056)
LOG_PYTHON_ORDER = """[12/30/2022-14:03:16] [TRT] [I] [GpuLayer] COPY: (Unnamed Layer* 149) [Slice]_output copy
"""

# TensorRT 10-era memory lines with "bytes" (index id 12070031452)
LOG_MEMORY_10 = """[11/27/2025-05:30:20] [I] [TRT] Total Host Persistent Memory: 26432 bytes
[11/27/2025-05:30:20] [I] [TRT] Total Device Persistent Memory: 0 bytes
[11/27/2025-05:30:20] [I] [TRT] Max Scratch Memory: 0 bytes
"""

SAMPLES = [TIMES, PROFILE_OLD, PROFILE_NEW, LAYER_NAMES, LAYER_DETAILED, OUTPUT, LOG_NANO_82, LOG_ORIN_85,
           LOG_JP6_FAILED, LOG_DLA]
READERS = [read_times, read_profile, read_layer_info, read_output, read_log]


# --- --exportTimes -----------------------------------------------------------------------------------------------


def test_times_sample():
    times = read_times(TIMES, "timing.json")
    assert len(times) == 3
    first = times[0]
    assert first.enqueue_ms == pytest.approx(12.7482 - 12.6384)
    assert (first.h2d_ms, first.compute_ms, first.d2h_ms, first.latency_ms) == (0, 0.459041, 0, 0.459041)
    assert first.end_to_end_ms is None
    assert times[2].compute_ms == 0.444799


def _record(**values: float) -> str:
    # the writer's line shape (sampleReporting.cpp, see RESEARCH20 1.1): keys in its order, ", " between them
    return "{ " + ", ".join(f'"{key}" : {value!r}' for key, value in values.items()) + " }"


def _times_text(records: list[dict]) -> str:
    return "[\n" + "".join(("  " if i == 0 else ", ") + _record(**r) + "\n" for i, r in enumerate(records)) + "]\n"


def test_times_old_form_has_end_to_end():
    # no verbatim 8.2-era file was found: this record follows the old writer code (endToEndMs last)
    text = _times_text([dict(startEnqMs=1.0, endEnqMs=1.5, startH2dMs=1.0, endH2dMs=1.25, startComputeMs=1.25,
                             endComputeMs=3.0, startD2hMs=3.0, endD2hMs=3.125, h2dMs=0.25, computeMs=1.75,
                             d2hMs=0.125, latencyMs=2.125, endToEndMs=2.5)])
    (only,) = read_times(text, "t.json")
    assert only == InferenceTime(0.5, 0.25, 1.75, 0.125, 2.125, 2.5)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("computeMs"), r"t\.json: record 1 has no 'computeMs'"),
    (lambda r: r.update(latencyMs=-0.1), r"record 1: 'latencyMs' is -0\.1, a negative time"),
    (lambda r: r.update(h2dMs="0.1"), r"record 1: 'h2dMs' is '0\.1', not a number"),
    (lambda r: r.update(d2hMs=True), r"record 1: 'd2hMs' is True, not a number"),
    (lambda r: r.update(endEnqMs=1.0), r"record 1: endEnqMs 1 is before startEnqMs 12\.7579"),
])
def test_times_bad_record_is_refused_with_field_and_index(edit, message):
    records = json.loads(TIMES)
    edit(records[1])
    with pytest.raises(TrtexecOutputError, match=message):
        read_times(json.dumps(records), "t.json")


def test_times_non_finite_and_empty_are_refused():
    with pytest.raises(TrtexecOutputError, match="t.json: .*non-finite"):
        read_times(TIMES.replace("0.442369", "nan", 1), "t.json")
    with pytest.raises(TrtexecOutputError, match="t.json: .*NaN"):
        read_times(TIMES.replace("0.442369", "NaN", 1), "t.json")
    with pytest.raises(TrtexecOutputError, match="holds no inference records"):
        read_times("[]", "t.json")
    with pytest.raises(TrtexecOutputError, match="empty file"):
        read_times("  \n", "t.json")


def test_times_truncation_says_so():
    with pytest.raises(TrtexecOutputError, match=r"timing\.json: not valid JSON .*ends early"):
        read_times(TIMES[:400], "timing.json")


def test_without_warmup_keeps_the_timed_queries():
    times = read_times(TIMES, "t.json")
    log = read_log(LOG_NANO_82, "log")
    assert log.timed_queries == 35 and log.warmup_queries == 2
    assert without_warmup(times, log) == times  # fewer records than timed queries: unchanged
    two = read_log("[I] Timing trace has 2 queries over 3.1 s", "log")
    assert without_warmup(times, two) == times[1:]


# --- --exportProfile ---------------------------------------------------------------------------------------------


def test_profile_without_median():
    profile = read_profile(PROFILE_OLD, "profile.json")
    assert profile.count == 4216
    assert [layer.name for layer in profile.layers][:2] == [
        "QuantizeLinear_2", "features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)"]
    first = profile.layers[0]
    assert (first.total_ms, first.average_ms, first.median_ms, first.percentage) == (51.4526, 0.0122041, None, 1.88608)
    assert profile.layers[-1].total_ms == 0


def test_profile_with_median():
    profile = read_profile(PROFILE_NEW, "profile.json")
    assert profile.count == 1 and len(profile.layers) == 4
    assert profile.layers[1].median_ms == 0.201728 and profile.layers[1].percentage == 18.4112


def test_profile_refusals_name_the_record():
    records = json.loads(PROFILE_NEW)
    del records[2]["averageMs"]
    with pytest.raises(TrtexecOutputError, match=r"p\.json: record 2 \('conv1\.weight.*'\) has no 'averageMs'"):
        read_profile(json.dumps(records), "p.json")
    with pytest.raises(TrtexecOutputError, match="non-finite number"):
        # trtexec divides by a zero total time: its stream writes "nan" where JSON has no such number
        read_profile(PROFILE_NEW.replace("5.60748", "-nan"), "p.json")
    with pytest.raises(TrtexecOutputError, match="record 0: 'count' is -1"):
        read_profile('[{"count": -1}]', "p.json")
    with pytest.raises(TrtexecOutputError, match="not a list"):
        read_profile('{"count": 1}', "p.json")


# --- --exportLayerInfo -------------------------------------------------------------------------------------------


def test_layer_info_names_only():
    layers, bindings = read_layer_info(LAYER_NAMES, "graph.json")
    assert len(layers) == 12 and bindings == ["x:0", "z:0"]
    assert layers[0].name == "Conv__25 + Relu" and not layers[0].detailed
    assert layers[0].layer_type is None and layers[0].precision is None


def test_layer_info_detailed():
    layers, bindings = read_layer_info(LAYER_DETAILED, "graph.json")
    assert bindings == ["input1", "1179"]
    quantize, conv = layers
    assert (quantize.layer_type, quantize.origin, quantize.tactic, quantize.precision) == (
        "Reformat", "QDQ", "0x0000000000000000", "FP32")  # a layer's precision is its first input's
    assert conv.detailed and conv.layer_type == "CaskConvolution" and conv.precision == "INT8"
    assert conv.tactic == "volta_int8x4_icudnn_int8x4_128x32_relu_xregs_medium_c32_nn_v1"


def test_layer_info_without_bindings_and_int8_conv_writing_fp16():
    # older TensorRT writes no Bindings (trex parser.py: "Older TRT didn't include bindings"); an INT8 convolution
    # writing FP16 is computed in INT8 (the Format/Datatype texts of features.2.conv.2 in the mobilenet.qat sample)
    record = {"Name": "features.2.conv.2.weight + QuantizeLinear_90 + Conv_94", "LayerType": "CaskConvolution",
              "Inputs": [{"Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}],
              "Outputs": [{"Format/Datatype": "Thirty-two wide channel vectorized row major FP16 format"}]}
    layers, bindings = read_layer_info(json.dumps({"Layers": [record]}), "g.json")
    assert bindings == [] and layers[0].precision == "INT8" and layers[0].tactic is None


def test_layer_info_metadata_control_characters():
    # TensorRT 8.6+ "Metadata" may hold raw \x1E / \x1F separators (NVIDIA/TensorRT#2779)
    text = '{"Layers": [{"Name": "a", "LayerType": "Myelin", "Metadata": "[ONNX Layer: x]\x1e[ONNX Layer: y]"}]}'
    assert read_layer_info(text, "g.json")[0][0].layer_type == "Myelin"


@pytest.mark.parametrize("text, message", [
    ('{"Bindings": []}', "has no 'Layers'"),
    ('{"Layers": [{"LayerType": "Reformat"}]}', r"Layers\[0\] has no 'Name'"),
    ('{"Layers": ["a", 3]}', r"Layers\[1\] is int, not a JSON object"),
    ('{"Layers": [], "Bindings": [1]}', "'Bindings' is not a list of names"),
    ('["a"]', "not an object with 'Layers'"),
])
def test_layer_info_refusals(text, message):
    with pytest.raises(TrtexecOutputError, match=message):
        read_layer_info(text, "g.json")


@pytest.mark.parametrize("text, precision", [
    ("Row major linear FP32", "FP32"), ("Channel major FP16 format where channel % 8 == 0", "FP16"),
    ("Four wide channel vectorized row major Int8 format", "INT8"), ("Row major linear Int32", "INT32"),
    ("Row major linear BOOL", "BOOL"), ("Half", "FP16"), ("Float", "FP32"), ("BFloat16", "BF16"),
    ("Channel major INT8 format where channel % 16 == 0", "INT8"), ("Row major linear FP8 format", "FP8"),
    ("Unknown format", None), ("None", None),
])
def test_tensor_precision(text, precision):
    # format texts from trex activations.py (NVIDIA/TensorRT @ 147005ffe1dc447bec8af9601539a9d464ca77fd)
    assert tensor_precision(text) == precision


# --- --exportOutput ----------------------------------------------------------------------------------------------


def test_output_sample():
    outputs = read_output(OUTPUT, "out.json")
    assert list(outputs) == ["probs_phone", "probs_headset", "probs_gaze"]
    assert outputs["probs_headset"].shape == (1, 3)
    np.testing.assert_array_equal(outputs["probs_phone"], [[0.0435101, 0.0340782, 0.0555826, 0.195444, 0.671385]])


def test_output_non_finite_values_are_data():
    text = OUTPUT.replace("0.79014, 0.206794, 0.00306536", "nan, -inf, inf")
    values = read_output(text, "out.json")["probs_headset"][0]
    assert math.isnan(values[0]) and values[1] == -math.inf and values[2] == math.inf


@pytest.mark.parametrize("old, new, message", [
    ('"1x3"', '"1x4"', r"output 1 \('probs_headset'\): 3 values for dimensions '1x4' \(4 expected\)"),
    ('"1x3"', '"1 by 3"', "is not of the form"),
    ('"probs_gaze"', '"probs_phone"', "appears twice"),
    ('  , "dimensions" : "1x3"\n', "", r"output 1 has no 'dimensions'"),
    ("0.79014", '"0.79"', "'values' is not a list of numbers"),
])
def test_output_refusals(old, new, message):
    with pytest.raises(TrtexecOutputError, match=message):
        read_output(OUTPUT.replace(old, new, 1), "out.json")


def test_output_scalar():
    assert read_output('[{"name": "s", "dimensions": "", "values": [2]}]', "o").get("s").shape == ()


# --- the log -----------------------------------------------------------------------------------------------------


def test_log_nano_trt82():
    log = read_log(LOG_NANO_82, "build.log")
    assert (log.version, log.passed, log.device, log.compute_capability) == ("8.2.1", True, "NVIDIA Tegra X1", "5.3")
    assert log.throughput_qps == 11.0613
    assert set(log.summary) == {"Latency", "End-to-End Host Latency", "Enqueue Time", "H2D Latency",
                                "GPU Compute Time", "D2H Latency"}
    assert log.summary["GPU Compute Time"] == {"min": 89.0273, "max": 91.2045, "mean": 90.1061, "median": 90.0183,
                                               "p99": 91.2045}
    assert log.memory_bytes == {"Total Host Persistent Memory": 30784, "Total Device Persistent Memory": 61892096,
                                "Total Scratch Memory": 0, "Total Activation Memory": 22118400}
    assert log.gpu_layers == ["/model/conv1/Conv + /model/relu/Relu", "/model/maxpool/MaxPool"]
    assert log.dla_layers == [] and log.errors == [] and log.warnings == []
    assert log.totals_s == {"Total Host Walltime": 3.16419, "Total GPU Compute Time": 3.15371}


def test_log_xavier_trt84_version_from_banner():
    log = read_log(LOG_XAVIER_84, "x.log")
    assert log.version == "8.4.0" and log.passed is True
    assert set(log.summary) == {"Latency", "GPU Compute Time"} and log.throughput_qps == 41087.7


def test_log_three_percentiles():
    log = read_log(LOG_ORIN_85, "o.log")
    assert log.version == "8.5.2"
    assert log.summary["GPU Compute Time"] == {"min": 10.0343, "max": 10.3575, "mean": 10.1824, "median": 10.1851,
                                               "p90": 10.3206, "p95": 10.338, "p99": 10.356}


def test_log_jetpack6_trt10():
    log = read_log(LOG_JP6_103, "j.log")
    assert log.version == "10.3.0" and log.summary["H2D Latency"]["p95"] == 0


def test_log_failed_with_errors():
    log = read_log(LOG_JP6_FAILED, "f.log")
    assert log.passed is False and log.version == "10.3.0" and log.summary == {}
    assert log.errors == ["Unknown option: --workspace 2048", "Unknown option: --buildOnly",
                          "Unknown option: --explicitBatch"]


def test_log_placement_lists():
    log = read_log(LOG_DLA + LOG_PYTHON_ORDER, "dla.log")
    assert log.dla_layers == ["{ForeignNode[conv1_1...pool5]}", "{ForeignNode[relu6...fc8]}"]
    assert log.gpu_layers == ["shuffle_between_pool5_and_fc6", "fc6", "prob", "(Unnamed Layer* 149) [Slice]_output copy"]


def test_log_memory_with_bytes():
    assert read_log(LOG_MEMORY_10, "m.log").memory_bytes == {
        "Total Host Persistent Memory": 26432, "Total Device Persistent Memory": 0, "Max Scratch Memory": 0}


def test_log_warnings_and_dotted_version():
    # the warning's text follows the writer (sampleReporting.cpp); the version line is the 8.6 form (NVIDIA/TensorRT#3747)
    log = read_log("[I] TensorRT version: 8.6.3\n[W] * Throughput may be bound by Enqueue Time rather than GPU "
                   "Compute and the GPU may be under-utilized.\n", "w.log")
    assert log.version == "8.6.3" and log.passed is None
    assert log.warnings == ["* Throughput may be bound by Enqueue Time rather than GPU Compute and the GPU may be "
                            "under-utilized."]


def test_log_without_summary_is_empty_not_an_error():
    log = read_log(LOG_DLA, "b.log")
    assert log.summary == {} and log.throughput_qps is None and log.version is None


@pytest.mark.parametrize("line, message", [
    ("GPU Compute Time: min = 89.0273 ms, max = 91.2", r"line 2: 'GPU Compute Time' has 'max = 91\.2'"),
    ("Latency: min = 1 ms, max = 2 ms, mean = 1.5 ms", "line 2: 'Latency' has no median"),
    ("Latency: min = -1 ms, max = 2 ms, mean = 1 ms, median = 1 ms", "not a finite non-negative"),
])
def test_log_garbled_summary_is_refused_with_the_line(line, message):
    with pytest.raises(TrtexecOutputError, match=message):
        read_log(f"[I] === Performance summary ===\n[I] {line}\n", "g.log")


@pytest.mark.parametrize("packed, dotted", [("8201", "8.2.1"), ("8400", "8.4.0"), ("8502", "8.5.2"),
                                            ("8601", "8.6.1"), ("100300", "10.3.0"), ("100500", "10.5.0")])
def test_packed_version(packed, dotted):
    assert packed_version(packed) == dotted


# --- fuzzing -----------------------------------------------------------------------------------------------------


def _read_all(text: str) -> None:
    for reader in READERS:
        try:
            reader(text, "fuzz.json")
        except TrtexecOutputError:
            pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text_never_crashes(text):
    _read_all(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "count", "timeMs", "averageMs", "percentage", "medianMs", "Layers", "Bindings",
                         "Name", "LayerType", "Inputs", "Format/Datatype", "dimensions", "values", "startEnqMs",
                         "endEnqMs", "h2dMs", "computeMs", "d2hMs", "latencyMs", "TacticName"]) | st.text(max_size=5),
        inner, max_size=6),
    max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_never_crashes(value):
    _read_all(json.dumps(value))


@pytest.mark.parametrize("sample", SAMPLES, ids=range(len(SAMPLES)))
def test_every_prefix_is_refused_or_read(sample):
    text = sample.rstrip()
    for end in range(len(text)):
        _read_all(text[:end])
    reader = {TIMES: read_times, PROFILE_OLD: read_profile, PROFILE_NEW: read_profile, OUTPUT: read_output,
              LAYER_NAMES: read_layer_info, LAYER_DETAILED: read_layer_info}.get(sample)
    if reader is not None:  # a JSON export cut short is always refused, never half-read
        for end in range(len(text)):
            with pytest.raises(TrtexecOutputError):
                reader(text[:end], "cut.json")


@st.composite
def mutated_numbers(draw):
    sample = draw(st.sampled_from(SAMPLES))
    numbers = list(re.finditer(r"-?\d+(?:\.\d+)?", sample))
    replacement = draw(st.sampled_from(["-1", "nan", "-nan", "inf", "1e999", "0", "-0.0", "1" * 5000, "", "abc",
                                        "true", "null", '"1"', "9" * 30]) | st.floats().map(repr))
    chosen = draw(st.lists(st.sampled_from(numbers), max_size=4, unique_by=lambda m: m.start()))
    for match in sorted(chosen, key=lambda m: m.start(), reverse=True):  # from the end: earlier offsets stay valid
        sample = sample[:match.start()] + replacement + sample[match.end():]
    return sample


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_numbers())
def test_mutated_numbers_never_crash(text):
    _read_all(text)


finite_ms = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(finite_ms, finite_ms, finite_ms, finite_ms, finite_ms, finite_ms,
                          st.none() | finite_ms), min_size=1, max_size=5))
def test_generated_times_round_trip(rows):
    records = []
    for start, enqueue, h2d, compute, d2h, latency, e2e in rows:
        record = dict(startEnqMs=start, endEnqMs=start + enqueue, h2dMs=h2d, computeMs=compute, d2hMs=d2h,
                      latencyMs=latency)
        if e2e is not None:
            record["endToEndMs"] = e2e
        records.append(record)
    times = read_times(_times_text(records), "gen.json")
    for time, record in zip(times, records):
        assert time.enqueue_ms == record["endEnqMs"] - record["startEnqMs"]
        assert (time.h2d_ms, time.compute_ms, time.d2h_ms, time.latency_ms, time.end_to_end_ms) == (
            record["h2dMs"], record["computeMs"], record["d2hMs"], record["latencyMs"], record.get("endToEndMs"))


names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\'), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.none(), st.integers(0, 10**6)),
       st.lists(st.tuples(names, finite_ms, finite_ms, st.none() | finite_ms, finite_ms), max_size=5))
def test_generated_profile_round_trips(count, rows):
    records = ([{"count": count}] if count is not None else []) + [
        {"name": n, "timeMs": t, "averageMs": a, **({} if m is None else {"medianMs": m}), "percentage": p}
        for n, t, a, m, p in rows]
    profile = read_profile(json.dumps(records), "gen.json")
    assert profile.count == count
    assert [(x.name, x.total_ms, x.average_ms, x.median_ms, x.percentage) for x in profile.layers] == list(rows)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(names, st.lists(st.integers(0, 4), min_size=0, max_size=3), max_size=4), st.data())
def test_generated_outputs_round_trip(shapes, data):
    records, expected = [], {}
    for name, shape in shapes.items():
        values = data.draw(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=math.prod(shape),
                                    max_size=math.prod(shape)))
        records.append({"name": name, "dimensions": "x".join(map(str, shape)), "values": values})
        expected[name] = np.asarray(values, dtype=np.float64).reshape(shape)
    outputs = read_output(json.dumps(records), "gen.json")
    assert list(outputs) == list(expected)
    for name in expected:
        np.testing.assert_array_equal(outputs[name], expected[name])


def test_log_type_is_plain_data():
    assert isinstance(read_log("", "empty.log"), TrtexecLog)
