"""A model checked out without Git LFS is a text pointer: the error says so and how to fetch it, not that the
model is truncated (a new user's CI checkout, issue 18)."""

from __future__ import annotations

import pytest
from conftest import INT8_SPEC

from edgecheck.errors import EdgecheckError
from edgecheck.formats import inspect_model

POINTER = ("version https://git-lfs.github.com/spec/v1\n"
           "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n")


@pytest.mark.parametrize("suffix", [".onnx", ".tflite", ".rknn"])
def test_an_lfs_pointer_is_named_for_what_it_is(tmp_path, suffix):
    model = tmp_path / f"model{suffix}"
    model.write_text(POINTER)
    with pytest.raises(EdgecheckError, match="a Git LFS pointer, not the model: fetch the file with `git lfs pull`"):
        inspect_model(model)


def test_a_spec_whose_model_is_an_lfs_pointer_fails_with_the_fix(pytester, spec_project):
    spec_project(INT8_SPEC)
    (pytester.path / "models" / "clf.onnx").write_text(POINTER)
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*clf.onnx: a Git LFS pointer, not the model*lfs: true*"])
