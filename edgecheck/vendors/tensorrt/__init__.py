"""NVIDIA TensorRT on the Jetsons: the .trtjob format and its recipes (host), the tensorrt backend, trtexec's
command lines, the engine build and the runners (board), and the ONNX parser's operator table."""

from pathlib import Path

TABLES = Path(__file__).resolve().with_name("tables")  # entry point edgecheck.tables
