"""Boards in the loop: a device target's artifacts run on a board of that device, over SSH.

config.py reads the boards file; ssh.py reaches a board with the system's OpenSSH client; store.py
keeps files there by content, through agent.py (run on the board, with probe.py: what the board says
about itself); worker.py is edgecheck's own worker started there; pool.py shares a device's boards
and holds each board's lock; runs.py runs outputs and timings there. Nothing here is imported by a
worker: the board runs only probe.py, agent.py and edgecheck's worker side.
"""
