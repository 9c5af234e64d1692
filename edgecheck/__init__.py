"""edgecheck: check compressed models against per-device budgets, as pytest tests.

Importing this package is cheap: heavy libraries (onnx, onnxruntime) load only when used.

PYTEST_DONT_REWRITE: `edgecheck check` imports this package before pytest loads the plugin, and
pytest would warn that it cannot rewrite the asserts of a module this file does not have.
"""

from edgecheck.errors import (
    BackendError,
    BackendUnavailable,
    DataError,
    DeviceError,
    EdgecheckError,
    ModelError,
    RecipeError,
    SpecError,
)

__version__ = "0.1.0"
__all__ = [
    "BackendError",
    "BackendUnavailable",
    "DataError",
    "DeviceError",
    "EdgecheckError",
    "ModelError",
    "RecipeError",
    "SpecError",
    "__version__",
]
