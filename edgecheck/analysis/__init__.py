"""Static analysis of a model for a target: operator compatibility, model facts and a latency estimate.

Nothing here runs a model. Everything reads the model file and data files (operator tables,
device profiles), so it answers before any board is attached.
"""
