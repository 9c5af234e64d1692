"""LiteRT / TFLite: the .tflite format, its backend, the onnx2tf and ai-edge-quantizer recipes, operator tables and the onnx2tf environment."""

from pathlib import Path

TABLES = Path(__file__).resolve().with_name("tables")  # entry point edgecheck.tables
ENVS = Path(__file__).resolve().parent  # entry point edgecheck.envs: its tool environment definition (*.yaml)
