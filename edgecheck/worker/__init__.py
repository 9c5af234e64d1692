"""Isolated processes that run a backend: the client the session drives and the worker it starts."""
