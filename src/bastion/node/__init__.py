"""The trading node: the composition root (``kernel``), the live runner, the control
channel and the operator actions it serves."""
