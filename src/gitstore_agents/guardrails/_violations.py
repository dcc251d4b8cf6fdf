"""Permission violations the NATS server reports: the server-side boundary speaking.

When the server refuses a publish it drops the message and sends the client an
asynchronous ``-ERR 'Permissions Violation for Publish to "<subject>"'``;
nats-py hands that to the connection's error callback and the publish itself
simply never gets a PubAck. ``PermissionViolations`` keeps the recent ones so
a publish that timed out can be told apart from one the server refused.
"""

from __future__ import annotations

import collections
import re
import threading
import time
from collections.abc import Iterable

import msgspec

_VIOLATION = re.compile(
    r"permissions violation for (?P<operation>publish|subscription) to \"(?P<subject>[^\"]*)\"",
    re.IGNORECASE,
)
_KEEP = 512


class PermissionViolation(msgspec.Struct, frozen=True, kw_only=True):
    """One refusal by the server.

    Attributes:
        operation: ``publish`` or ``subscription``.
        subject: The refused subject.
        at: ``time.monotonic()`` when it was reported.
    """

    operation: str
    subject: str
    at: float


def parse_violation(error: BaseException | str) -> PermissionViolation | None:
    """The violation an error from nats-py's error callback reports (None for other errors)."""
    match = _VIOLATION.search(str(error))
    if match is None:
        return None
    return PermissionViolation(
        operation=match["operation"].lower(), subject=match["subject"], at=time.monotonic()
    )


class PermissionViolations:
    """Recent permission violations of one connection, and how many there were.

    Feed it every error of the connection's error callback (``observe``); ask it
    whether a subject was refused since a moment (``refused``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: collections.deque[PermissionViolation] = collections.deque(maxlen=_KEEP)
        self.counts: collections.Counter[str] = collections.Counter()

    @property
    def total(self) -> int:
        """Violations observed since the start."""
        with self._lock:
            return sum(self.counts.values())

    def observe(self, error: BaseException | str) -> PermissionViolation | None:
        """Record ``error`` if it is a permission violation; return it (else None)."""
        violation = parse_violation(error)
        if violation is not None:
            with self._lock:
                self._recent.append(violation)
                self.counts[violation.operation] += 1
        return violation

    def refused(self, subjects: Iterable[str], since: float) -> list[str]:
        """Which of ``subjects`` the server refused to publish to at or after ``since``."""
        wanted = set(subjects)
        with self._lock:
            hits = {
                v.subject
                for v in self._recent
                if v.operation == "publish" and v.at >= since and v.subject in wanted
            }
        return sorted(hits)
