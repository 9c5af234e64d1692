"""Boards: run artifacts on real devices over SSH."""
