"""Measurement: running artifacts in workers for their outputs and figures (runs.py), timing statistics (stats.py)."""
