"""The ``bastion`` command line, one module per command group (``main`` assembles them)."""

from bastion.cli.main import main

__all__ = ["main"]
