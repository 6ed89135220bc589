"""The ``faceaudit`` command line. Each command group lives in its own module."""

from faceaudit.cli._main import main

__all__ = ["main"]
