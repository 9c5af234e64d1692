"""What the tflite recipes tell onnx2tf and what they say when it fails, without running onnx2tf: the
input shapes fixed from the recipe's parameters or one calibration sample, the node and the option to
try next read from onnx2tf's log (a verbatim sample of onnx2tf 1.29.24's), and the branches of an If
made self-contained so that simplification cannot drop the constants they read."""

from __future__ import annotations


import numpy as np
import onnx
import onnxruntime
import pytest
from convert_builders import if_model, paddle_style, yolo_head

from edgecheck.compress import RecipeError
from edgecheck.vendors.tflite.onnx2tf_driver import copy_constants_into_branches
from edgecheck.vendors.tflite.onnx2tf_options import (Onnx2tfParams, failed_node, fixed_shapes, next_option, shape_failure,
                                                shapes_text)
from edgecheck.model import inspect_onnx

# onnx2tf 1.29.24 on tests/convert_builders.py's if_model, as exported (colour codes as it prints them)
IF_LOG = """\x1b[31mERROR:\x1b[0m The trace log is below.
Traceback (most recent call last):
  File "/envs/onnx2tf/lib/python3.11/site-packages/onnx2tf/utils/common_functions.py", line 312, in print_wrapper_func
    result = func(*args, **kwargs)
  File "/envs/onnx2tf/lib/python3.11/site-packages/onnx2tf/ops/If.py", line 96, in make_node
    tf_layers_dict[graph_node_output.name]['tf_node'] = tf.cond(
KeyError: '/Constant_output_0'
\x1b[31mERROR:\x1b[0m input_onnx_file_path: ../if-branch.onnx
\x1b[31mERROR:\x1b[0m onnx_op_name: wa/If
\x1b[31mERROR:\x1b[0m Read this and deal with it. https://github.com/PINTO0309/onnx2tf#parameter-replacement
\x1b[31mERROR:\x1b[0m Alternatively, if the input OP has a dynamic dimension, use the -b or -ois option to rewrite it to a static shape and try again.
"""
# onnx2tf 1.29.24 on yolo_head simplified with a dynamic batch
YOLO_LOG = """\x1b[31mERROR:\x1b[0m The trace log is below.
Traceback (most recent call last):
  File "/envs/onnx2tf/lib/python3.11/site-packages/onnx2tf/ops/Sub.py", line 198, in make_node
    explicit_broadcast(
  File "/envs/onnx2tf/lib/python3.11/site-packages/onnx2tf/utils/common_functions.py", line 1152, in explicit_broadcast
    const_or_var_2: np.ndarray = const_or_var_2.transpose(transpose_perm)
ValueError: axes don't match array

During handling of the above exception, another exception occurred:

\x1b[31mERROR:\x1b[0m input_onnx_file_path: /tmp/edgecheck-onnx2tf-x/prepared/yolo.onnx
\x1b[31mERROR:\x1b[0m onnx_op_name: wa/model.22/Sub
"""


def test_shapes_come_from_the_parameters_else_one_calibration_sample_and_the_batch_stays(tmp_path):
    info = inspect_onnx(yolo_head(tmp_path / "yolo.onnx"))
    np.savez(tmp_path / "calibration.npz", images=np.zeros((4, 3, 64, 96), np.float32))
    calibration = tmp_path / "calibration.npz"
    assert fixed_shapes(info, calibration, Onnx2tfParams(), None, "tflite-fp32") == {"images": [None, 3, 64, 96]}
    assert fixed_shapes(info, calibration, Onnx2tfParams(), 1, "tflite-fp32") == {"images": [1, 3, 64, 96]}
    given = Onnx2tfParams(input_shapes={"images": [2, 3, 32, 32]})
    assert fixed_shapes(info, calibration, given, None, "tflite-fp32") == {"images": [2, 3, 32, 32]}
    # simplify: false converts the model as exported, the parameters' shapes aside
    assert fixed_shapes(info, calibration, Onnx2tfParams(simplify=False), None, "tflite-fp32") == {
        "images": [None, 3, None, None]}
    assert shapes_text({"images": [None, 3, 64, 96]}) == "images [?, 3, 64, 96]"


@pytest.mark.parametrize("shapes, said", [({"image": [1, 3, 8, 8]}, "names 'image', which the model does not have"),
                                          ({"images": [1, 4, 8, 8]}, r"does not fit the model's \[N, 3, H, W\]"),
                                          ({"images": [1, 3, 8]}, "does not fit")])
def test_input_shapes_that_do_not_fit_the_model_are_refused_by_name(tmp_path, shapes, said):
    info = inspect_onnx(yolo_head(tmp_path / "yolo.onnx"))
    with pytest.raises(RecipeError, match=said):
        fixed_shapes(info, None, Onnx2tfParams(input_shapes=shapes), None, "tflite-fp32")


def test_onnx2tf_options_reach_it_only_where_set():
    assert Onnx2tfParams().passed_options() == {}
    params = Onnx2tfParams(disable_group_convolution=True, keep_shape_absolutely_input_names=["x"])
    assert params.passed_options() == {"disable_group_convolution": True, "keep_shape_absolutely_input_names": ["x"]}
    with pytest.raises(ValueError):
        Onnx2tfParams(batch_size=0)


def test_the_failing_node_and_its_exception_are_read_from_onnx2tfs_log():
    assert failed_node(IF_LOG) == ("/If", "KeyError: '/Constant_output_0'")
    assert failed_node(YOLO_LOG) == ("/model.22/Sub", "ValueError: axes don't match array")
    assert failed_node("") == ("", "") and failed_node("ERROR: something\n") == ("", "")
    assert shape_failure("ValueError: axes don't match array") and not shape_failure("KeyError: '/Constant_output_0'")


def test_the_option_to_try_next_follows_what_failed():
    assert "output_names_to_interrupt_model_conversion" in next_option("If", "KeyError: 'c'", False, True)
    assert next_option("If", "KeyError: 'c'", False, False).startswith("simplify: true")
    assert next_option("Sub", "ValueError: axes don't match array", False, True).startswith("batch_size: 1")
    assert "keep_shape_absolutely_input_names" in next_option("Sub", "ValueError: axes don't match array", True, True)
    assert "input_shapes" in next_option("Reshape", "ValueError: Dimension -1 must be >= 0", False, True)
    assert next_option("GRU", "ValueError: x", False, True) == "enable_rnn_unroll: true"
    assert next_option("Mystery", "KeyError: x", False, False).startswith("simplify: true")


def test_constants_read_inside_an_if_are_copied_into_its_branches_and_the_model_computes_the_same(tmp_path):
    """onnxsim drops a Constant node whose only readers are inside a branch (onnx2tf then fails with
    KeyError '/Constant_output_0'): each branch gets its own copy first."""
    path = if_model(tmp_path / "vad.onnx")
    model = onnx.load(str(path))
    assert copy_constants_into_branches(model.graph) == 2
    onnx.checker.check_model(model)
    branches = {a.name: a.g for n in model.graph.node if n.op_type == "If" for a in n.attribute}
    assert [n.op_type for n in branches["then_branch"].node] == ["Constant", "MatMul"]
    assert copy_constants_into_branches(model.graph) == 0  # nothing read from outside any more
    rng = np.random.default_rng(0)
    for rate in (16000, 8000):
        feed = {"input": rng.uniform(-1, 1, (1, 64)).astype(np.float32), "state": np.zeros((2, 1, 16), np.float32),
                "sr": np.array(rate, np.int64)}
        want = onnxruntime.InferenceSession(str(path)).run(None, feed)
        got = onnxruntime.InferenceSession(model.SerializeToString()).run(None, feed)
        assert all(np.array_equal(a, b) for a, b in zip(want, got))


def test_models_without_branches_are_left_as_they_are(tmp_path):
    model = onnx.load(str(paddle_style(tmp_path / "paddle.onnx")))
    before = model.SerializeToString()
    assert copy_constants_into_branches(model.graph) == 0 and model.SerializeToString() == before
