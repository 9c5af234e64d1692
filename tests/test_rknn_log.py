"""Unit tests of edgecheck.vendors.rknn.build_log on rknn-toolkit2 2.5.0's own logs: the samples below are copied
verbatim (prefixes and trailing spaces included) from docs/research/rknn-toolkit2.md."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecheck.vendors.rknn.build_log import (BuildLog, LayerError, RknnLayer, describe_error, error_jumps,
                                         parse_build_log, parse_error_analysis, parse_layer_table, parse_memory,
                                         refusal)

# the mid CNN int8 build's layer table and memory totals, the TopK build's table, error_analysis.txt
# of the mid CNN int8 and the small fp16 builds, the LayerNormalization and NonZero refusals
MID_INT8 = r"""D RKNN: [08:30:54.076] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
D RKNN: [08:30:54.076]                                                         Network Layer Information Table                                                      
D RKNN: [08:30:54.076] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
D RKNN: [08:30:54.076] ID   OpType             DataType Target InputShape                               OutputShape            Cycles(DDR/NPU/Total)    RW(KB)       FullName        
D RKNN: [08:30:54.076] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
D RKNN: [08:30:54.076] 0    InputOperator      INT8     CPU    \                                        (1,3,32,32)            0/0/0                    0            InputOperator:x 
D RKNN: [08:30:54.076] 1    ConvRelu           INT8     NPU    (1,3,32,32),(16,3,3,3),(16)              (1,16,32,32)           931/9216/9216            5            Conv:l1_c       
D RKNN: [08:30:54.076] 2    MaxPool            INT8     NPU    (1,16,32,32)                             (1,16,16,16)           0/0/0                    16           MaxPool:p1      
D RKNN: [08:30:54.076] 3    ConvRelu           INT8     NPU    (1,16,16,16),(16,16,3,3),(16)            (1,16,16,16)           455/2304/2304            6            Conv:l2a_c      
D RKNN: [08:30:54.076] 4    ConvExSwish        INT8     NPU    (1,16,16,16),(16,16,3,3),(16)            (1,16,16,16)           455/2304/2304            6            Conv:l2b_c      
D RKNN: [08:30:54.076] 5    Add                INT8     NPU    (1,16,16,16),(1,16,16,16)                (1,16,16,16)           0/0/0                    8            Add:res         
D RKNN: [08:30:54.076] 6    ConvRelu           INT8     NPU    (1,16,16,16),(32,16,3,3),(32)            (1,32,8,8)             466/576/576              8            Conv:l3_c       
D RKNN: [08:30:54.076] 7    ConvExSwish        INT8     NPU    (1,32,8,8),(32,32,1,1),(32)              (1,32,8,8)             228/256/256              3            Conv:l4_c       
D RKNN: [08:30:54.076] 8    Resize             INT8     NPU    (1,32,8,8),(1),(4)                       (1,32,16,16)           0/0/0                    2            Resize:up       
D RKNN: [08:30:54.076] 9    Concat             INT8     NPU    (1,32,16,16),(1,16,16,16)                (1,48,16,16)           0/0/0                    12           Concat:cat      
D RKNN: [08:30:54.076] 10   ConvRelu           INT8     NPU    (1,48,16,16),(32,48,3,3),(32)            (1,32,16,16)           1462/4608/4608           25           Conv:l5_c       
D RKNN: [08:30:54.076] 11   Conv               INT8     NPU    (1,32,16,16),(1,32,7,7),(32)             (1,32,3,3)             447/784/784              10           Conv:gap_2conv0 
D RKNN: [08:30:54.076] 12   Conv               INT8     NPU    (1,32,3,3),(1,32,3,3),(32)               (1,32,1,1)             48/144/144               1            Conv:gap_2conv1 
D RKNN: [08:30:54.076] 13   Conv               INT8     NPU    (1,32,1,1),(10,32,1,1),(10)              (1,10,1,1)             27/64/64                 0            Conv:logits#2   
D RKNN: [08:30:54.076] 14   exDataConvert      INT8     NPU    (1,10,1,1)                               (1,10,1,1)             0/0/0                    0            exDataConvert:logits_mm__cvt_int8_float16
D RKNN: [08:30:54.076] 15   exSoftmax13        FLOAT16  NPU    (1,10,1,1),(1,10,1,1)                    (1,10,1,1)             0/0/0                    0            exSoftmax13:output
D RKNN: [08:30:54.076] 16   Reshape            FLOAT16  CPU    (1,10,1,1),(2)                           (1,10)                 0/0/0                    0            Reshape:output-rs
D RKNN: [08:30:54.076] 17   OutputOperator     FLOAT16  CPU    (1,10)                                   \                      0/0/0                    0            OutputOperator:output
D RKNN: [08:30:54.076] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
D RKNN: [08:30:54.076] <<<<<<<< end: rknn::RKNNModelRegCmdbuildPass
D RKNN: [08:30:54.077] ----------------------------------------
D RKNN: [08:30:54.077] Total Internal Memory Size: 39KB
D RKNN: [08:30:54.077] Total Weight Memory Size: 33.25KB
D RKNN: [08:30:54.077] ----------------------------------------
"""
TOPK = r"""D RKNN: [08:30:05.450] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
D RKNN: [08:30:05.450]                                                         Network Layer Information Table                                                      
D RKNN: [08:30:05.450] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
D RKNN: [08:30:05.450] ID   OpType             DataType Target InputShape                               OutputShape            Cycles(DDR/NPU/Total)    RW(KB)       FullName        
D RKNN: [08:30:05.450] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
D RKNN: [08:30:05.450] 0    InputOperator      INT8     CPU    \                                        (1,3,16,16)            0/0/0                    0            InputOperator:x 
D RKNN: [08:30:05.450] 1    ConvRelu           INT8     NPU    (1,3,16,16),(8,3,3,3),(8)                (1,8,16,16)            266/2304/2304            2            Conv:c          
D RKNN: [08:30:05.450] 2    Conv               INT8     NPU    (1,8,16,16),(1,8,7,7),(8)                (1,8,3,3)              218/784/784              4            Conv:g_2conv0   
D RKNN: [08:30:05.450] 3    Conv               INT8     NPU    (1,8,3,3),(1,8,3,3),(8)                  (1,8,1,1)              32/144/144               0            Conv:g_2conv1   
D RKNN: [08:30:05.450] 4    Conv               INT8     NPU    (1,8,1,1),(10,8,1,1),(10)                (1,10,1,1)             19/64/64                 0            Conv:logits#2   
D RKNN: [08:30:05.450] 5    TopK               INT8     CPU    (1,10,1,1),(1)                           (1,3,1,1),...          0/0/0                    0            TopK:values     
D RKNN: [08:30:05.450] 6    Reshape            INT64    CPU    (1,3,1,1),(2)                            (1,3)                  0/0/0                    0            Reshape:indices-rs
D RKNN: [08:30:05.450] 7    OutputOperator     INT64    CPU    (1,3)                                    \                      0/0/0                    0            OutputOperator:indices
D RKNN: [08:30:05.450] 8    Reshape            INT8     NPU    (1,3,1,1),(2)                            (1,3)                  0/0/0                    0            Reshape:values-rs
D RKNN: [08:30:05.450] 9    OutputOperator     INT8     CPU    (1,3)                                    \                      0/0/0                    0            OutputOperator:values
D RKNN: [08:30:05.450] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
"""
ERROR_INT8 = r"""# simulator_error: calculate the output error of each layer of the simulator (compared to the 'golden' value).
#              entire: output error of each layer between 'golden' and 'simulator', these errors will accumulate layer by layer.
#              single: single-layer output error between 'golden' and 'simulator', can better reflect the single-layer accuracy of the simulator.

layer_name                                      simulator_error                    
                                            entire              single             
                                         cos      euc        cos      euc          
-------------------------------------------------------------------------------
[Input] x                              1.00000 | 0.00000   1.00000 | 0.00000       
[exDataConvert] x_int8                 0.99995 | 0.52871   0.99995 | 0.52871       
[Conv] l1_bn                           
[Relu] l1                              0.99993 | 1.37558   0.99993 | 1.37558       
[MaxPool] p1                           0.99996 | 0.94788   0.99999 | 0.42793       
[Conv] l2a_bn                          
[Relu] l2a                             0.99992 | 1.06169   0.99996 | 0.70104       
[Conv] l2b_bn                          0.99989 | 1.58331   0.99997 | 0.95071       
[exSwish] l2b                          0.99988 | 1.32983   0.99998 | 0.49352       
[Add] res                              0.99994 | 1.81580   0.99998 | 1.02096       
[Conv] l3_bn                           
[Relu] l3                              0.99989 | 1.31520   0.99996 | 0.81748       
[Conv] l4_bn                           0.99987 | 1.87567   0.99998 | 0.71935       
[exSwish] l4                           0.99982 | 1.38301   0.99997 | 0.56530       
[Resize] up                            0.99982 | 2.76602   0.99997 | 1.13060       
[Concat] cat                           0.99988 | 3.39828   0.99997 | 1.59577       
[Conv] l5_bn                           
[Relu] l5                              0.99980 | 2.78407   0.99994 | 1.58660       
[Conv] gap_2conv0                      0.99993 | 0.53995   0.99998 | 0.28995       
[Conv] gap                             0.99994 | 0.08504   0.99999 | 0.03592       
[Conv] logits_mm                       0.99991 | 0.03598   0.99992 | 0.03187       
[exDataConvert] logits_mm__float16     0.99991 | 0.03615   0.99999 | 0.01021       
[exSoftmax13] output-rs                0.99997 | 0.00291   1.00000 | 0.00006       
[Reshape] output                       0.99997 | 0.00291   1.00000 | 0.00006
"""
ERROR_FP16 = r"""# simulator_error: calculate the output error of each layer of the simulator (compared to the 'golden' value).
#              entire: output error of each layer between 'golden' and 'simulator', these errors will accumulate layer by layer.
#              single: single-layer output error between 'golden' and 'simulator', can better reflect the single-layer accuracy of the simulator.

layer_name                    simulator_error                    
                          entire              single             
                       cos      euc        cos      euc          
-------------------------------------------------------------
[Input] x            1.00000 | 0.00000   1.00000 | 0.00000       
[Conv] c             1.00000 | 0.02040   1.00000 | 0.02040       
[Relu] r             1.00000 | 0.01419   1.00000 | 0.00983       
[Conv] g_2conv0      1.00000 | 0.00224   1.00000 | 0.00222       
[Conv] g             1.00000 | 0.00042   1.00000 | 0.00037       
[Conv] output_mm     1.00000 | 0.00070   1.00000 | 0.00058       
[Reshape] output     1.00000 | 0.00070   1.00000 | 0.00030
"""
LN_NO_EPSILON = r"""D fuse_ops ...
W build: Show op fuse match nodes:
Rule: convert_layernorm_to_exnorm
Subgraph:
Op type: LayerNormalization
Op name: output
  Input:
    r : [1, 3, 16, 16]
    S : [16]
    B : [16]
  Output:
    output : [1, 3, 16, 16]
  Attribute:
    axis : -1
 

W You can add disable_rules=['convert_layernorm_to_exnorm'] in rknn.config() to temporarily disable the error rule!

E build: Traceback (most recent call last):
  File "rknn/api/rknn_log.py", line 344, in rknn.api.rknn_log.error_catch_decorator.error_catch_wrapper
  File "rknn/api/rknn_base.py", line 2083, in rknn.api.rknn_base.RKNNBase.build
  File "rknn/api/graph_optimizer.py", line 2221, in rknn.api.graph_optimizer.GraphOptimizer.fuse_ops
  File "rknn/api/rules/norm.py", line 2644, in rknn.api.rules.norm._p_convert_layernorm_to_exnorm
  File "rknn/api/ir_graph.py", line 937, in rknn.api.ir_graph.IRGraph.get_attr
KeyError: 'LayerNormalization'

W build: ===================== WARN(4) =====================
E rknn-toolkit2 version: 2.5.0
Traceback (most recent call last):
  File "rknn/api/rknn_log.py", line 344, in rknn.api.rknn_log.error_catch_decorator.error_catch_wrapper
  File "rknn/api/rknn_base.py", line 2083, in rknn.api.rknn_base.RKNNBase.build
  File "rknn/api/graph_optimizer.py", line 2221, in rknn.api.graph_optimizer.GraphOptimizer.fuse_ops
  File "rknn/api/rules/norm.py", line 2644, in rknn.api.rules.norm._p_convert_layernorm_to_exnorm
  File "rknn/api/ir_graph.py", line 937, in rknn.api.ir_graph.IRGraph.get_attr
KeyError: 'LayerNormalization'
"""
NONZERO = r"""E build: The input 0 of NonZero('nz') need to be constant! It will cause the graph to be a dynamic graph!
                  Remove NonZero('nz') manually and try again!
W build: ===================== WARN(2) =====================
E rknn-toolkit2 version: 2.5.0
E build: Traceback (most recent call last):
  File "rknn/api/rknn_log.py", line 344, in rknn.api.rknn_log.error_catch_decorator.error_catch_wrapper
  File "rknn/api/rknn_base.py", line 2083, in rknn.api.rknn_base.RKNNBase.build
  File "rknn/api/graph_optimizer.py", line 2405, in rknn.api.graph_optimizer.GraphOptimizer.fuse_ops
  File "rknn/api/rknn_log.py", line 95, in rknn.api.rknn_log.RKNNLog.e
ValueError: The input 0 of NonZero('nz') need to be constant! It will cause the graph to be a dynamic graph!
                  Remove NonZero('nz') manually and try again!

I ===================== WARN(0) =====================
E rknn-toolkit2 version: 2.5.0
Traceback (most recent call last):
  File "rknn/api/rknn_log.py", line 344, in rknn.api.rknn_log.error_catch_decorator.error_catch_wrapper
  File "rknn/api/rknn_base.py", line 2083, in rknn.api.rknn_base.RKNNBase.build
  File "rknn/api/graph_optimizer.py", line 2405, in rknn.api.graph_optimizer.GraphOptimizer.fuse_ops
  File "rknn/api/rknn_log.py", line 95, in rknn.api.rknn_log.RKNNLog.e
ValueError: The input 0 of NonZero('nz') need to be constant! It will cause the graph to be a dynamic graph!
                  Remove NonZero('nz') manually and try again!
"""
SAMPLES = (MID_INT8, TOPK, ERROR_INT8, ERROR_FP16, LN_NO_EPSILON, NONZERO)
RED, RESET = "\x1b[1;31m", "\x1b[0m"
NONZERO_SAID = ("build: The input 0 of NonZero('nz') need to be constant! It will cause the graph to be a dynamic "
                "graph! Remove NonZero('nz') manually and try again!")


def _colour(text: str) -> str:
    return "\n".join(f"{RED}{line}{RESET}" for line in text.splitlines())


def test_mid_cnn_int8_table():
    log = parse_build_log(MID_INT8)
    layers = log.layers
    assert [layer.index for layer in layers] == list(range(18))
    assert [layer.op_type for layer in layers[:6]] == ["InputOperator", "ConvRelu", "MaxPool", "ConvRelu",
                                                      "ConvExSwish", "Add"]
    conv = layers[1]
    assert (conv.op_type, conv.dtype, conv.target) == ("ConvRelu", "INT8", "NPU")
    assert (conv.input_shape, conv.output_shape) == ("(1,3,32,32),(16,3,3,3),(16)", "(1,16,32,32)")
    assert (conv.cycles_ddr, conv.cycles_npu, conv.cycles_total, conv.rw_kb) == (931, 9216, 9216, 5)
    assert (conv.full_name, conv.source_op, conv.source_name) == ("Conv:l1_c", "Conv", "l1_c")
    assert (layers[0].input_shape, layers[0].target, layers[17].output_shape) == ("\\", "CPU", "\\")
    assert (layers[10].cycles_ddr, layers[10].rw_kb) == (1462, 25)
    assert layers[14].full_name == "exDataConvert:logits_mm__cvt_int8_float16"
    assert [layer.dtype for layer in layers[14:]] == ["INT8", "FLOAT16", "FLOAT16", "FLOAT16"]
    assert {layer.target for layer in layers[1:16]} == {"NPU"} and layers[16].target == "CPU"
    assert [layer.index for layer in layers if layer.boundary] == [0, 17]
    assert layers[13].source_name == "logits"  # 'Conv:logits#2'
    assert log.cycles_total == sum(layer.cycles_total for layer in layers) == 20256
    assert [layer.full_name for layer in log.cpu_layers()] == ["Reshape:output-rs"]
    assert (log.internal_memory_bytes, log.weight_memory_bytes) == (39 * 1024, 34048)  # 39KB, 33.25KB


def test_topk_table():
    log = parse_build_log(TOPK)
    assert len(log.layers) == 10 and (log.internal_memory_bytes, log.weight_memory_bytes) == (None, None)
    topk = log.layers[5]
    assert (topk.op_type, topk.target, topk.input_shape) == ("TopK", "CPU", "(1,10,1,1),(1)")
    assert topk.output_shape == "(1,3,1,1),..." and topk.source_name == "values"
    assert [layer.index for layer in log.layers if layer.dtype == "INT64"] == [6, 7]
    assert [layer.full_name for layer in log.cpu_layers()] == ["TopK:values", "Reshape:indices-rs"]
    assert log.layers[8].target == "NPU" and log.cycles_total == 2304 + 784 + 144 + 64


@pytest.mark.parametrize("op_type, full_name, source_op, name, boundary", [
    ("Conv", "Conv:logits#2", "Conv", "logits", False), ("exNorm", "exNorm:output#1", "exNorm", "output", False),
    ("Reshape", "Reshape:output-rs", "Reshape", "output-rs", False), ("Conv", "Conv:a:b", "Conv", "a:b", False),
    ("Conv", "Conv:x#2b", "Conv", "x#2b", False), ("Foo", "plain#3", "Foo", "plain", False),
    ("Foo", "", "Foo", "", False), ("InputOperator", "InputOperator:x", "InputOperator", "x", True),
    ("OutputOperator", "OutputOperator:y", "OutputOperator", "y", True)])
def test_source_op_name_and_boundary(op_type, full_name, source_op, name, boundary):
    layer = RknnLayer(1, op_type, "INT8", "CPU", "(1)", "(1)", 1, 2, 3, 4, full_name)
    assert (layer.source_op, layer.source_name, layer.boundary) == (source_op, name, boundary)


@pytest.mark.parametrize("variant", [
    lambda t: re.sub(r"^D RKNN: \[[^\]]*\] ", "", t, flags=re.M),
    lambda t: re.sub(r"^D RKNN: \[([^\]]*)\] ", r"I RKNN: [\1]", t, flags=re.M),
    _colour, lambda t: t.replace("\n", "\r\n")], ids=["no-prefix", "info-prefix-no-space", "ansi", "crlf"])
def test_prefix_colour_and_line_endings(variant):
    assert parse_build_log(variant(MID_INT8)) == parse_build_log(MID_INT8)


def test_last_table_wins_and_end_marker_closes():
    assert len(parse_layer_table(MID_INT8 + TOPK)) == 10 and len(parse_layer_table(TOPK + MID_INT8)) == 18
    late = "D RKNN: [08:30:54.078] 18   Conv   INT8   NPU    (1)   (1)   1/1/1   0   Conv:late\n"
    assert len(parse_layer_table(MID_INT8 + late)) == 18  # after '<<<<<<<< end:'
    assert parse_layer_table("\n".join(line for line in TOPK.splitlines() if "Information" not in line)) == []


def test_table_cut_off_gives_rows_so_far():
    lines = MID_INT8.splitlines()
    at = next(i for i, line in enumerate(lines) if "Conv:l4_c" in line)
    assert [layer.index for layer in parse_layer_table("\n".join(lines[:at] + [lines[at][:80]]))] == list(range(7))
    no_name = lines[at].split("Conv:l4_c")[0]  # cut after RW(KB): a row without its FullName
    layers = parse_layer_table("\n".join(lines[:at] + [no_name]))
    assert (len(layers), layers[-1].full_name, layers[-1].rw_kb) == (8, "", 3)


def test_garbage_lines_are_skipped_and_empty_log():
    lines = MID_INT8.splitlines()
    junk = ["garbage", "", "12", "3 ConvRelu INT8 NPU a b 1/2 5 X", "4 Conv INT8 NPU a b 1/2/x 5 X",
            "5 Conv INT8 NPU a b 1/2/3 kb X", "x Conv INT8 NPU a b 1/2/3 5 X", "-1 Conv INT8 NPU a b 1/2/3 5 X",
            "6 Conv INT8 NPU a b -1/2/3 5 X", "\x00\x1b[", "Total Internal Memory Size: lots"]
    assert parse_build_log("\n".join(lines[:8] + junk + lines[8:12] + junk + lines[12:])) == parse_build_log(MID_INT8)
    log = parse_build_log("")
    assert log == BuildLog((), None, None) and log.cycles_total == 0 and log.cpu_layers() == []
    assert parse_memory("") == (None, None) and parse_layer_table("no table") == []


@pytest.mark.parametrize("size, expected", [
    ("39KB", 39936), ("33.25KB", 34048), ("8.75KB", 8960), ("5.875KB", 6016), ("3.5625KB", 3648), ("512B", 512),
    ("0B", 0), ("1.5MB", 1572864), ("2MB", 2 * 1024**2), ("1GB", 1024**3), ("39kb", 39936), ("4 KB", 4096)])
def test_memory_units(size, expected):
    text = f"D RKNN: [08:30:54.077] Total Internal Memory Size: {size}\nTotal Weight Memory Size: {size}"
    assert parse_memory(text) == (expected, expected)
    assert parse_memory(f"{RED}Total Weight Memory Size: {size}{RESET}") == (None, expected)
    assert parse_memory(MID_INT8 + f"\nTotal Internal Memory Size: {size}\n") == (expected, 34048)  # last wins


@pytest.mark.parametrize("size", ["1.2.3KB", ".KB"])
def test_malformed_memory_size_is_skipped(size):
    assert parse_build_log(f"Total Internal Memory Size: {size}\n") == BuildLog((), None, None)


@pytest.mark.parametrize("row", ["²  Conv INT8 NPU (1) (1) 1/1/1 0 Conv:c", "1  Conv INT8 NPU (1) (1) ²/1/1 0 Conv:c",
                                 "1  Conv INT8 NPU (1) (1) 1/1/1 ² Conv:c"])
def test_non_ascii_digits_in_a_row_are_skipped(row):
    assert parse_layer_table(f"Network Layer Information Table\n{row}\n") == []


def test_json_round_trip():
    for text in (MID_INT8, TOPK, ""):
        log = parse_build_log(text)
        assert BuildLog.from_json(json.loads(json.dumps(log.as_json()))) == log
    data = parse_build_log(MID_INT8).as_json()
    assert data["layers"][1]["full_name"] == "Conv:l1_c" and data["weight_memory_bytes"] == 34048
    assert BuildLog.from_json({}) == BuildLog((), None, None)


def test_error_analysis_int8_and_fp16():
    rows = parse_error_analysis(ERROR_INT8)
    assert len(rows) == 24 and rows[0] == LayerError("Input", "x", 1.0, 0.0, 1.0, 0.0)
    assert [row.name for row in rows if row.single_cos is None] == ["l1_bn", "l2a_bn", "l3_bn", "l5_bn"]
    assert rows[2] == LayerError("Conv", "l1_bn")  # fused: no figures
    assert rows[4] == LayerError("MaxPool", "p1", 0.99996, 0.94788, 0.99999, 0.42793)
    assert rows[-1] == LayerError("Reshape", "output", 0.99997, 0.00291, 1.0, 0.00006)  # no trailing spaces
    assert rows[-3].name == "logits_mm__float16" and rows[-2].op_type == "exSoftmax13"
    assert parse_error_analysis(_colour(ERROR_INT8)) == rows
    rows = parse_error_analysis(ERROR_FP16)
    assert [row.name for row in rows] == ["x", "c", "r", "g_2conv0", "g", "output_mm", "output"]
    assert all(row.single_cos == 1.0 for row in rows) and rows[2].single_euc == 0.00983
    assert rows[1] == LayerError("Conv", "c", 1.0, 0.0204, 1.0, 0.0204)
    assert parse_error_analysis("") == [] and parse_error_analysis(MID_INT8 + NONZERO) == []


SYNTHETIC = """\
[Input] x            1.00000 | 0.00000   0.50000 | 0.00000
[Conv] a             0.99999 | 0.10000   0.99999 | 0.10000
[Conv] b_bn
[Relu] b             0.95000 | 3.20000   0.95000 | 3.10000
[Conv] c             0.94000 | 3.30000   0.99000 | 1.20000
[Add] d              nan | inf   0.99990 | 0.20000
[Reshape] e          0.94000 | 3.30000   0.80000 | 0.00600
"""


def test_error_jumps_below_threshold_in_model_order():
    rows = parse_error_analysis(SYNTHETIC)
    assert rows[5] == LayerError("Add", "d", None, float("inf"), 0.9999, 0.2)
    assert [row.name for row in error_jumps(rows)] == ["b", "c", "e"]  # not 'x' (Input), not sorted by value
    assert [row.name for row in error_jumps(rows, count=2)] == ["b", "c"]
    assert [row.name for row in error_jumps(rows, threshold=0.9)] == ["e"]
    assert error_jumps([rows[1], rows[3]]) == [rows[3]]


def test_error_jumps_lowest_when_none_below():
    rows = parse_error_analysis(ERROR_INT8)
    # lowest single cosines: logits_mm .99992, l1 .99993, l5 .99994, x_int8 .99995, l2a .99996 (before l3)
    assert [row.name for row in error_jumps(rows)] == ["x_int8", "l1", "l2a", "l5", "logits_mm"]
    assert [row.name for row in error_jumps(rows, count=2)] == ["l1", "logits_mm"]
    assert [row.name for row in error_jumps(rows, threshold=0.99995)] == ["l1", "l5", "logits_mm"]
    assert all(row.op_type != "Input" for row in error_jumps(parse_error_analysis(ERROR_FP16), count=10))
    assert error_jumps([]) == [] and error_jumps([LayerError("Conv", "fused")]) == []


def test_describe_error():
    text = describe_error(parse_error_analysis(SYNTHETIC)[3])
    assert text.startswith("[Relu] b: cosine 0.95000 for the layer alone, 0.95000 accumulated")
    assert text.endswith("(euclidean 3.1 / 3.2)")


def test_describe_error_without_entire_figures():
    row = parse_error_analysis("[Add] d   nan | nan   0.50000 | 0.20000")[0]
    assert error_jumps([row]) == [row] and "0.50000" in describe_error(row)


def test_refusal_layernorm_without_epsilon():
    said = refusal(LN_NO_EPSILON)
    assert said.startswith("build:") and "epsilon" in said and "KeyError: 'LayerNormalization'" in said
    assert "disable_rules: [convert_layernorm_to_exnorm]" in said


def test_refusal_takes_the_e_line():
    assert "need to be constant" in NONZERO and refusal(NONZERO) == NONZERO_SAID
    coloured = "\n".join(f"{RED}{line}{RESET}" if line.startswith("E ") else line for line in NONZERO.splitlines())
    assert refusal(coloured) == NONZERO_SAID
    line = (f"{RED}E{RESET} {RED}build: If set do_quantization = True or auto_hybrid = True, dataset file need be "
            f"provided. But it`s value is None!{RESET}")
    assert refusal(line) == ("build: If set do_quantization = True or auto_hybrid = True, dataset file need be "
                             "provided. But it`s value is None!")
    assert refusal("E load_onnx: Model file /x.onnx not exists!\n") == "load_onnx: Model file /x.onnx not exists!"


def test_refusal_falls_back_to_the_last_error_line():
    traceback = NONZERO[NONZERO.rindex("Traceback"):]  # what str(exc) holds: no 'E build:' line
    assert refusal(traceback) == ("The input 0 of NonZero('nz') need to be constant! It will cause the graph to be "
                                  "a dynamic graph! Remove NonZero('nz') manually and try again!")
    two = ("ValueError: first\nTraceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
           "ValueError: The input num: 1 in dataset.txt not match input num: 2 in model !\n")
    assert refusal(two) == "The input num: 1 in dataset.txt not match input num: 2 in model !"
    missing = "FileNotFoundError: [Errno 2] No such file or directory: '/d/a0.npy'"
    assert refusal(missing) == missing
    librknnc = "E RKNN: [08:28:53.116] Unkown op target: 0\nE rknn-toolkit2 version: 2.5.0\n"
    assert refusal(librknnc + traceback) == refusal(traceback) and refusal(librknnc) == ""
    assert refusal("") == "" and refusal("W build: a warning\nI done\n") == ""


def _read_everything(text: str) -> None:
    log = parse_build_log(text)
    assert all(min(layer.cycles_ddr, layer.cycles_npu, layer.cycles_total, layer.rw_kb) >= 0 for layer in log.layers)
    assert BuildLog.from_json(json.loads(json.dumps(log.as_json()))) == log
    assert all(row.single_cos is not None and row.op_type != "Input" for row in error_jumps(parse_error_analysis(text)))
    assert isinstance(refusal(text), str)


@st.composite
def mutated_samples(draw) -> str:
    """One to three real samples, then lines dropped, duplicated, cut short, swapped or random ones inserted."""
    lines = [line for sample in draw(st.lists(st.sampled_from(SAMPLES), min_size=1, max_size=3))
             for line in sample.splitlines()]
    edits = st.tuples(st.sampled_from(["drop", "dup", "cut", "swap", "insert"]), st.integers(0, 10**6),
                      st.integers(0, 250), st.text(max_size=40))
    for edit, where, cut, junk in draw(st.lists(edits, max_size=15)):
        i = where % (len(lines) or 1)
        if not lines or edit == "insert":
            lines.insert(i, junk)
        elif edit == "drop":
            del lines[i]
        elif edit == "dup":
            lines.insert(i, lines[i])
        elif edit == "cut":
            lines[i] = lines[i][:cut]
        else:
            lines[i], lines[cut % len(lines)] = lines[cut % len(lines)], lines[i]
    return "\n".join(lines)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_never_raises_on_arbitrary_text(text):
    _read_everything(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_samples())
def test_never_raises_on_mutated_samples(text):
    _read_everything(text)
