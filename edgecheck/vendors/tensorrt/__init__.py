"""NVIDIA TensorRT: for now its ONNX parser operator table (the backend and recipes come with the TensorRT issue)."""

from pathlib import Path

TABLES = Path(__file__).resolve().with_name("tables")  # entry point edgecheck.tables
