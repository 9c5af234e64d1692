"""Backends: one small contract (base.py), a registry fed by entry points (registry.py)."""

from edgecheck.backends.base import Availability, Backend, RunOptions, Runner
from edgecheck.backends.registry import backend_reads, backend_suffixes, check_available, get_backend, known_backends, register_backend

__all__ = ["Availability", "Backend", "backend_reads", "backend_suffixes", "RunOptions", "Runner", "check_available", "get_backend",
           "known_backends", "register_backend"]
