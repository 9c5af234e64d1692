"""Backends: one small contract (base.py), a registry fed by entry points (registry.py)."""

from edgecheck.backends.base import Availability, Backend, RunOptions, Runner
from edgecheck.backends.registry import check_available, get_backend, known_backends, register_backend

__all__ = ["Availability", "Backend", "RunOptions", "Runner", "check_available", "get_backend",
           "known_backends", "register_backend"]
