"""NATS subject wildcard matching (``*`` one token, ``>`` the rest)."""

from __future__ import annotations


def subject_matches(pattern: str, subject: str) -> bool:
    """True when ``subject`` is covered by ``pattern`` under NATS wildcard rules."""
    p_tokens = pattern.split(".")
    s_tokens = subject.split(".")
    for i, token in enumerate(p_tokens):
        if token == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens):
            return False
        if token != "*" and token != s_tokens[i]:
            return False
    return len(p_tokens) == len(s_tokens)
