"""Reading the files a command line names, failing with the path and the reason."""

from __future__ import annotations

from pathlib import Path

from ..consumers import ContentUnavailableError


def read_input(path: Path, what: str) -> bytes:
    """The bytes of ``path``, a ``what`` (``module``, ``input``) named on the command line.

    Raises:
        ContentUnavailableError: naming ``what`` and ``path`` (not retryable:
            the same command fails the same way until the file is there).
    """
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ContentUnavailableError(
            f"cannot read {what} {path}: {exc.strerror or exc}", retryable=False
        ) from None
