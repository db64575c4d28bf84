"""Subcommands of the ``neuralassets`` CLI, one module each (see :mod:`neuralassets.cli`)."""
