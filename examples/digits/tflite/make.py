"""Make the TFLite example from the ONNX one: digits.tflite (float32, converted by onnx2tf through
edgecheck's own tflite-fp32 recipe) and the data in the layout it takes (NHWC).

    edgecheck env create onnx2tf          # once: onnx2tf's own environment
    python examples/digits/tflite/make.py

The .tflite file is shipped without edgecheck's layout map, as a .tflite made elsewhere would be: a
spec whose model is this file feeds it NHWC data under its own input name (specs/digits-tflite.yaml).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgecheck.compress import RecipeContext
from edgecheck.vendors.tflite.recipes import TfliteConvertParams, convert_tflite_fp32

HERE = Path(__file__).resolve().parent
DIGITS = HERE.parent


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        made = convert_tflite_fp32(DIGITS / "digits.onnx", TfliteConvertParams(),
                                   RecipeContext(calibration=None, out_dir=Path(scratch)))
        shutil.copyfile(made.path, HERE / "digits.tflite")
    for name in ("calibration.npz", "test.npz"):
        with np.load(DIGITS / name, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        arrays["input"] = np.ascontiguousarray(arrays["input"].transpose(0, 2, 3, 1))  # NCHW -> NHWC
        np.savez_compressed(HERE / name, **arrays)
    print(f"wrote {', '.join(p.name for p in sorted(HERE.iterdir()) if p.suffix in ('.tflite', '.npz'))}")


if __name__ == "__main__":
    main()
