"""rknn-toolkit2's refusals read whole: a message that runs over several lines (onnx's checker names
the node on the lines after its first, under a qualified exception type with digits in its module path)
reaches the user with the node, never as its last fragment ("is not output of any previous nodes.").
The samples are verbatim: the checker's traceback as onnx 1.18 in the rknn environment prints it, and
the toolkit's coloured warning lines from a build of the same model."""

from __future__ import annotations

import pytest

from edgecheck.vendors.rknn.build_log import refusal
from edgecheck.vendors.rknn.toolkit import last_error

RED, YELLOW, RESET = "\x1b[1;31m", "\x1b[1;33m", "\x1b[0m"
CHECKER = """Traceback (most recent call last):
  File "rknn/api/rknn_log.py", line 344, in rknn.api.rknn_log.error_catch_decorator.error_catch_wrapper
  File "rknn/api/rknn_base.py", line 2066, in rknn.api.rknn_base.RKNNBase.build
  File "/root/.local/share/edgecheck/envs/rknn/lib/python3.11/site-packages/onnx/checker.py", line 180, in check_model
    C.check_model(
onnx.onnx_cpp2py_export.checker.ValidationError: Nodes in a graph must be topologically sorted, however input 'a' of node: 
name: relu_late OpType: Relu
 is not output of any previous nodes.
"""
WHOLE = ("ValidationError: Nodes in a graph must be topologically sorted, however input 'a' of node: name: relu_late "
         "OpType: Relu is not output of any previous nodes.")
# the toolkit's own log line for the same message: the E line, then the message's further lines unindented
E_LINE = (f"{RED}E{RESET} {RED}build: onnx.checker.check_model fail: Nodes in a graph must be topologically sorted, "
          f"however input 'a' of node: \nname: relu_late OpType: Relu\n is not output of any previous nodes.{RESET}\n"
          f"{YELLOW}W{RESET} {YELLOW}build: ===================== WARN(4) ====================={RESET}\n")


def test_the_exception_inside_the_toolkits_error_is_given_whole_with_the_node():
    assert last_error(CHECKER) == WHOLE
    assert last_error("ValueError: " + CHECKER) == WHOLE


def test_the_stderr_reader_gives_the_whole_sentence_with_the_node():
    said = refusal(f"{RED}E{RESET} {RED}build: {CHECKER}{RESET}")
    assert said == WHOLE
    assert "relu_late" in said and said.endswith("is not output of any previous nodes.")


def test_an_e_line_that_runs_over_lines_keeps_them_until_the_next_log_line():
    assert refusal(E_LINE) == ("build: onnx.checker.check_model fail: Nodes in a graph must be topologically sorted, "
                               "however input 'a' of node: name: relu_late OpType: Relu is not output of any previous "
                               "nodes.")


@pytest.mark.parametrize("text", ["", "   \n", "some words\nthe end"])
def test_text_without_an_exception_is_given_whole(text):
    assert last_error(text) == " ".join(line.strip() for line in text.splitlines() if line.strip())


# rknn-toolkit2 2.5.0's stderr building a graph whose nodes are out of order (verbatim, colours included):
# onnx's checker fails as a warning, and the build then fails with a bare KeyError naming a tensor only
UNSORTED = (
    "I rknn-toolkit2 version: 2.5.0\n"
    f"{YELLOW}W{RESET} {YELLOW}load_onnx: onnx.checker.check_model fail: Nodes in a graph must be topologically sorted, "
    "however input 'a' of node: \nname: relu_late OpType: Relu\n is not output of any previous nodes."
    f"{RESET}\n"
    f"{YELLOW}W{RESET} {YELLOW}load_onnx: The config.mean_values is None, zeros will be set for input 0!{RESET}\n"
    f"{RED}E{RESET} {RED}build: Traceback (most recent call last):\n"
    '  File "rknn/api/rknn_log.py", line 344, in rknn.api.rknn_log.error_catch_decorator.error_catch_wrapper\n'
    '  File "rknn/api/rknn_base.py", line 2066, in rknn.api.rknn_base.RKNNBase.build\n'
    '  File "rknn/api/graph_optimizer.py", line 963, in rknn.api.graph_optimizer.GraphOptimizer.fold_constant\n'
    f"KeyError: 'a'\n{RESET}\n"
    f"{YELLOW}W{RESET} {YELLOW}build: ===================== WARN(4) ====================={RESET}\n")


def test_the_checkers_warning_is_read_whole_beside_a_bare_key_error():
    from edgecheck.vendors.rknn.build_log import checker_warning

    assert refusal(UNSORTED) == "KeyError: 'a'"
    assert checker_warning(UNSORTED) == (
        "onnx.checker.check_model fail: Nodes in a graph must be topologically sorted, however input 'a' of node: "
        "name: relu_late OpType: Relu is not output of any previous nodes.")
    assert checker_warning(E_LINE) == "" and checker_warning("") == ""
