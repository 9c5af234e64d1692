"""One root exception; every error carries the facts a user needs to act (file, field, node, figures).

The plugin turns these into readable failures; anything that is not an `EdgecheckError` is a bug
and is shown with its traceback.
"""

from __future__ import annotations

from pathlib import Path


def did_you_mean(name: str, known) -> str:
    """'; did you mean raspberry-pi-4b?' for a near miss among `known` names, else ''."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def warn_at(warning: Warning, where: Path | str, line: int = 0) -> None:
    """Issue `warning` located at what it is about (a spec's budget line, a cache entry), never at edgecheck's own
    source: pytest's warnings summary prints the location and, where it is a line of a file, that line."""
    import warnings

    warnings.warn_explicit(warning, type(warning), str(where), line)


class EdgecheckError(Exception):
    """Root of every error edgecheck raises on purpose."""


class SpecError(EdgecheckError):
    """A spec file is not valid: names the file, the line and the field."""

    def __init__(self, path: Path | str, message: str, *, line: int | None = None, field: str | None = None):
        self.path = Path(path)
        self.line = line
        self.field = field
        self.reason = message
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class ModelError(EdgecheckError):
    """A model file is missing, truncated, malformed or unsafe."""

    def __init__(self, path: Path | str, message: str):
        self.path = Path(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}")


class DataError(EdgecheckError):
    """Evaluation, calibration or input data does not fit the model."""


class DeviceError(EdgecheckError):
    """A device profile is unknown or its file is invalid."""


class BackendUnavailable(EdgecheckError):
    """A backend is not installed or cannot run on this machine; checks on it are skipped."""

    def __init__(self, backend: str, reason: str):
        self.backend = backend
        self.reason = reason
        super().__init__(f"{backend} cannot run here: {reason}")


class CannotJudge(EdgecheckError):
    """A budget that cannot be judged here (a device figure with no device to measure on): skipped
    with the reason, or failed under --edge-strict; never judged on a figure from somewhere else."""


class BackendError(EdgecheckError):
    """A backend failed to load or run an artifact."""

    def __init__(self, backend: str, artifact: Path | str, step: str, message: str):
        self.backend = backend
        self.artifact = Path(artifact)
        self.step = step
        self.reason = message
        super().__init__(f"{backend} failed while {step} {self.artifact.name}: {message}")


class RecipeError(EdgecheckError):
    """A compression recipe is unknown or could not be applied."""


class ModelFitWarning(UserWarning):
    """A model outside the size a device is known to suit (the field's rule of thumb): not a failure."""


class PluginWarning(UserWarning):
    """An installed edgecheck plug-in could not be used (it failed to import, or it clashes with another)."""


class SpecLocationWarning(UserWarning):
    """A spec file runs only because it was named on the command line: its folder's run would not collect it."""


class EntryNotRunWarning(UserWarning):
    """A compress entry that no target of its spec runs (its artifact's format, or the chip it is built for, fits
    none of their backends): it is neither built nor checked, so its budgets prove nothing."""


class InconclusiveWarning(UserWarning):
    """A budget lies within the measurement's noise: this run can say neither pass nor fail."""


class BudgetExceeded(EdgecheckError):
    """A measured figure breached its budget; carries the whole check result for the report."""

    def __init__(self, result):  # result: edgecheck.checks.result.CheckResult
        self.result = result
        super().__init__("; ".join(result.breaches()))


class EnvError(EdgecheckError):
    """A tool environment (`edgecheck env`) is unknown, its definition file is invalid, or creating
    it failed: names the step and carries the end of the failing command's output."""

    def __init__(self, message: str, *, step: str | None = None, output: str = ""):
        self.step = step
        self.output = output
        super().__init__(message + (f"\n{output}" if output else ""))
