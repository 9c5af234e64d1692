"""Rockchip RKNN: the .rknn format, its backend (simulator), the rknn-toolkit2 recipes and driver, the build-log reader, the compiler-backed checks, the operator table and the toolkit environment."""

from pathlib import Path

TABLES = Path(__file__).resolve().with_name("tables")  # entry point edgecheck.tables
ENVS = Path(__file__).resolve().parent  # entry point edgecheck.envs: its tool environment definition (*.yaml)
