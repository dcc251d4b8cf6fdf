"""CLI: the ``gitstore-agents`` command line, thin wrappers over the package."""

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
