"""The fakenpu backend: runs .fnpu programs with numpy, and reports the board power its energy check uses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgecheck.backends.base import Availability, Backend, RunOptions, Runner

POWER_W = 2.5  # what the fake board draws while it computes


class FakeNpuRunner(Runner):
    def __init__(self, artifact: Path):
        from edgecheck_fakenpu.format import read_program

        program = read_program(artifact)
        self.backend, self.artifact = "fakenpu", artifact
        self.weight = program["weight"].astype(np.float32)
        self.bias = program["bias"].astype(np.float32)
        self.input_names, self.output_names = (str(program["input"]),), (str(program["output"]),)

    def _infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.asarray(feed[self.input_names[0]], dtype=np.float32)
        return {self.output_names[0]: x @ self.weight + self.bias}


class FakeNpuBackend(Backend):
    name = "fakenpu"
    formats = ("fnpu",)
    deterministic = True

    def availability(self) -> Availability:
        return Availability(True)

    def _load_impl(self, artifact: Path, options: RunOptions) -> Runner:
        return FakeNpuRunner(artifact)

    def facts(self) -> dict[str, str]:
        return {"version": "0.1", "provider": "fakenpu (numpy)", "power_w": str(POWER_W)}
