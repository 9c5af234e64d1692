"""ONNX Runtime: the backend that runs .onnx files (and the reference), and its installed kernel registry as an operator table."""

from pathlib import Path

TABLES = Path(__file__).resolve().with_name("tables")  # entry point edgecheck.tables
