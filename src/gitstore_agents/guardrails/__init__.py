"""Guardrails: what a role may publish, checked in code (and, later, by the server)."""

from ._boundary import Outbound, PublishBoundary, PublishRefusedError
from ._subject_match import subject_matches

__all__ = ["Outbound", "PublishBoundary", "PublishRefusedError", "subject_matches"]
