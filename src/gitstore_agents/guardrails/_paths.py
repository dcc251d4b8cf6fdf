"""Catalog path patterns: which repository files a role's results may be about.

Glob-like and anchored at the repository root: ``*`` matches within one path
segment, ``?`` one character of a segment, ``**`` any number of whole
segments (including none). ``products/**/*.md`` matches ``products/a.md`` and
``products/shoes/trail/a.md``, but not ``products.md`` or ``docs/products/a.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_PATTERN_LENGTH = 1024
_SEGMENT_CHARS = re.compile(r"^[A-Za-z0-9._*?@+=,~-]+$")


class PathPatternError(ValueError):
    """A pattern is not a valid catalog path pattern (the message says why)."""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The anchored regular expression of ``pattern``.

    Raises:
        PathPatternError: empty, too long, absolute, ``.``/``..``/empty segments,
            ``**`` inside a segment, or characters outside ``A-Z a-z 0-9 . _ - * ?
            @ + = , ~``.
    """
    if not pattern or len(pattern) > MAX_PATTERN_LENGTH:
        raise PathPatternError(f"must be 1-{MAX_PATTERN_LENGTH} characters")
    if pattern.startswith("/"):
        raise PathPatternError("must be relative to the repository root (no leading '/')")
    parts: list[str] = []
    segments = pattern.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment in ("", ".", ".."):
            raise PathPatternError(f"segment {segment!r} is not allowed (no empty, '.' or '..')")
        if segment == "**":
            # Any number of whole segments: with the separator that follows,
            # or, at the end, everything below.
            parts.append(".*" if last else "(?:[^/]+/)*")
            continue
        if "**" in segment:
            raise PathPatternError(f"'**' must be a whole segment, not part of {segment!r}")
        if not _SEGMENT_CHARS.match(segment):
            raise PathPatternError(
                f"segment {segment!r} has characters outside A-Z a-z 0-9 ._-*?@+=,~"
            )
        regex = "".join(
            "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in segment
        )
        parts.append(regex if last else regex + "/")
    return re.compile("".join(parts))


class PathPatterns:
    """A set of catalog path patterns; a path is allowed when any pattern matches it.

    Args:
        patterns: Glob-like patterns (see the module docstring).

    Raises:
        PathPatternError: a pattern is invalid (the message names it).
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        compiled = []
        for pattern in self.patterns:
            try:
                compiled.append(compile_pattern(pattern))
            except PathPatternError as exc:
                raise PathPatternError(f"{pattern!r}: {exc}") from None
        self._compiled = tuple(compiled)

    def allows(self, path: str) -> bool:
        """True when ``path`` (repository-relative) matches one of the patterns."""
        return any(regex.fullmatch(path) for regex in self._compiled)

    def __repr__(self) -> str:
        return f"PathPatterns({list(self.patterns)!r})"
