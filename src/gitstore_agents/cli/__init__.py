"""CLI: the ``gitstore-agents`` command line, thin wrappers over the package."""

from ._main import main

__all__ = ["main"]
