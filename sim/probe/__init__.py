"""Measurements run on the device's side: the firmware's heap over a run
(heap.py), a board's characterisation for `heatrig board-check` (board.py)."""
