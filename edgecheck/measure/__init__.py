"""Measurement: timing statistics (stats.py), the per-device timing lock (lock.py)."""
