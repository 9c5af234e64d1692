"""The one contract every backend meets (after Polygraphy's runners).

A backend says whether it can run here and why not, and loads an artifact into a `Runner`.
A runner runs feeds to outputs. The public methods check once; backends write only `_*_impl`.
Nothing heavy happens at import or construction: only `availability()` and `load()` import the
runtime.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edgecheck.errors import BackendError

if TYPE_CHECKING:
    from edgecheck.analysis.optable import OpTable
    from edgecheck.devices import DeviceProfile


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class RunOptions:
    """How to run, fixed so that two runs of the same artifact give the same outputs."""

    threads: int = 1
    extra: Mapping[str, str] = field(default_factory=dict)
    # the file suffixes the backend runs, as the session worked them out: a worker then never reads the format
    # registry, whose entry point scan would count in the memory a load is measured to take
    suffixes: tuple[str, ...] | None = None
    # True in a worker on a board (edgecheck.boards): a backend whose host runtime is a simulator or a
    # converter's (rknn-toolkit2) loads the board's own runtime instead (rknn-toolkit-lite2)
    on_board: bool = False


class Runner(ABC):
    """One loaded artifact. Use as a context manager, or call `close()`.

    A backend's runner sets these four attributes when it is made.
    """

    backend: str
    artifact: Path
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one feed; checks input names once so that backends need not."""
        missing = [name for name in self.input_names if name not in feed]
        unknown = [name for name in feed if name not in self.input_names]
        if missing or unknown:
            raise BackendError(self.backend, self.artifact, "running",
                               f"feed does not match the model's inputs (missing {missing}, unknown {unknown})")
        try:
            outputs = self._infer_impl(feed)
        except (BackendError, MemoryError):  # out of memory is the worker's to report, with its limit
            raise
        except Exception as exc:  # the runtime's own error, kept whole for the user, with what it was fed
            fed = ", ".join(f"{name} {list(np.shape(value))} {getattr(value, 'dtype', type(value).__name__)}"
                            for name, value in feed.items())
            raise BackendError(self.backend, self.artifact, "running",
                               f"{type(exc).__name__}: {exc} (fed: {fed})") from exc
        if not isinstance(outputs, dict) or not all(isinstance(v, np.ndarray) for v in outputs.values()):
            raise BackendError(self.backend, self.artifact, "running",
                               "the runner did not return a dict of numpy arrays (a bug in the backend)")
        return outputs

    def bind(self, feed: Mapping[str, np.ndarray]) -> Callable[[], object]:
        """A call that runs this one feed with nothing else around it, for timing: the feed is checked
        once here, and the call is the runtime's own (a backend overrides `_bind_impl` to drop even
        its result conversion)."""
        self.infer(feed)  # names, and that it runs at all, checked once outside the timed loop
        return self._bind_impl(feed)

    def _bind_impl(self, feed: Mapping[str, np.ndarray]) -> Callable[[], object]:
        return lambda: self._infer_impl(feed)

    def close(self) -> None:
        """Release the runtime's resources."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class Backend(ABC):
    """A runtime that runs artifacts (ONNX Runtime, LiteRT, TensorRT, RKNN, ...)."""

    name: ClassVar[str]
    # The artifact formats it runs, by name (edgecheck.formats): "onnx", "tflite", ...
    formats: ClassVar[tuple[str, ...]] = ("onnx",)
    # Formats judged without running (the ops table, the latency cost model), beside those it runs: a
    # backend of compiled artifacts may have its table and cost model read the ONNX graph they are built from.
    reads: ClassVar[tuple[str, ...]] = ()
    # The formats whose reference outputs it gives when the spec's model is in one of them (ONNX Runtime
    # FP32 for ONNX): the outputs every artifact made from the model is compared with. Not inherited: a
    # subclass serving another device is not the reference unless it says so itself.
    reference_for: ClassVar[tuple[str, ...]] = ()
    # The older declaration, by file suffix (".onnx"): honoured where a backend sets it instead of `formats`
    # (a format no plugin declares); every suffix-derived answer then comes from it.
    suffixes: ClassVar[tuple[str, ...]] = ()
    # `module:Class` of the model of its own options in a device profile (under backends: {name: {...}}),
    # a subclass of edgecheck.devices.BackendOptions; None: it takes none but the common `platform`. Named,
    # not imported, so that a worker that imports backends never imports pydantic.
    profile_options: ClassVar[str | None] = None
    # True if the same artifact, runtime version, thread count and inputs always give the same outputs:
    # then outputs are cached by content and a rerun with nothing changed does not run the model again.
    deterministic: ClassVar[bool] = False
    # False where running here says nothing of the device's speed and memory (a simulator): latency and
    # memory checks then take only the spec's `source: estimate`, never a host stand-in.
    measures_time: ClassVar[bool] = True
    # False where the runtime takes no thread count of ours (TensorRT on a GPU): results then name none
    takes_threads: ClassVar[bool] = True
    # True where its timing run on a board reports where each layer of the artifact it built runs
    # (Measured.extra["native"]["layers"]: a TensorRT engine's GPU/DLA placement): the ops check of a target a board
    # serves is then judged on that run by the artifact format's judge (StaticJudge.placed_ops), the format's
    # operator table on the source graph being the cross-check; False: the format's judge reads the artifact only
    places_on_board: ClassVar[bool] = False

    @abstractmethod
    def availability(self) -> Availability:
        """Whether this backend can run on this machine; if not, the reason a user can act on."""

    def load(self, artifact: Path, options: RunOptions = RunOptions()) -> Runner:
        """Load `artifact`; a failure names the backend, the file and the runtime's message."""
        artifact = Path(artifact)
        runs = options.suffixes if options.suffixes is not None else file_suffixes(type(self))
        if artifact.suffix not in runs:
            raise BackendError(self.name, artifact, "loading",
                               f"{self.name} runs {', '.join(runs)} files, not {artifact.suffix or 'this file'}")
        try:
            return self._load_impl(artifact, options)
        except (BackendError, MemoryError):  # out of memory is the worker's to report, with its limit
            raise
        except Exception as exc:
            raise BackendError(self.name, artifact, "loading", f"{type(exc).__name__}: {exc}") from exc

    @abstractmethod
    def _load_impl(self, artifact: Path, options: RunOptions) -> Runner: ...

    def board_availability(self) -> Availability:
        """Whether this backend can run in a worker on a board (edgecheck.boards), checked there: the same as
        `availability()` unless the board's runtime differs from the host's (RKNNLite on an RK3588 against
        the toolkit's simulator here). Runs under the board's Python: standard library and numpy only."""
        return self.availability()

    def facts(self) -> dict[str, str]:
        """Version, provider and the like, recorded beside every figure measured with it."""
        return {}

    def board_extra(self, artifact: Path) -> dict[str, str]:
        """Options (`RunOptions.extra`) a worker on a board needs to run `artifact`, worked out here on the host,
        where the files beside the artifact are (only the artifact itself is sent): rknn's input and output
        names, a .tflite's layout map. None by default."""
        return {}

    def cannot_serve(self, artifact: Path, device: DeviceProfile) -> str:
        """Why `device` cannot run `artifact` on this backend at all, wherever it would run (a build setting that
        needs a precision or an accelerator the device's profile lacks: INT8 or a DLA on a Jetson Nano); '' where
        nothing in the artifact rules the device out. Asked on the host, before any board or build is used; the
        item then skips with this reason (a failure under --edge-strict). Nothing by default."""
        return ""

    def board_facts(self) -> dict[str, str]:
        """`facts()` as a worker on a board finds them (the board's runtime and its version), recorded beside
        every figure measured there; the same as `facts()` unless the board's runtime differs from the host's."""
        return self.facts()

    def op_table(self) -> OpTable | None:
        """The installed runtime's own operator table, where it can say what it runs (ONNX Runtime's
        kernel registry): the authority over the shipped table for this machine."""
        return None

    def arithmetic_note(self) -> str:
        """How it computes a reduced-precision graph where that is not what a device would do (a note beside
        outputs identical to the reference's); '' when it has nothing to say."""
        return ""

    def diagnose(self, artifact: Path) -> list[str]:
        """Lines that say where an artifact's outputs go wrong (a toolkit's per-layer error), added to a
        failing parity or accuracy check's notes; none by default."""
        return []

    def interpreter(self) -> str:
        """The Python that runs this backend's worker: the session's own by default; a toolkit whose
        pins clash with edgecheck's returns its own environment's interpreter."""
        return sys.executable


def file_suffixes(cls: type[Backend]) -> tuple[str, ...]:
    """The file suffixes of the formats a backend class runs (its own `suffixes` where it declares them so)."""
    return cls.suffixes or tuple(_suffix(name) for name in cls.formats)


def read_suffixes(cls: type[Backend]) -> tuple[str, ...]:
    """The file suffixes of the formats a backend class judges without running."""
    return tuple(_suffix(name) for name in cls.reads)


def _suffix(name: str) -> str:
    """A format's suffix; one given as a suffix already (".onnx", the older declaration) stays as it is."""
    if name.startswith("."):
        return name
    from edgecheck.formats import suffix_text  # only where asked: not in a worker's measured load

    return suffix_text(name)
