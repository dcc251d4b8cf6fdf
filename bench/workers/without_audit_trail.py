"""``gitstore-agents`` with the audit trail's storage switched off: a what-if, not a configuration.

``python -m bench --without-audit-trail`` runs our rows with this entry point to
measure what storing decision records costs (the workers' CPU, nats-server's
stored writes) against the same rows as shipped. Everything else is the
product: records are still built, logged and counted; only ``AuditLog.commit``
answers "stored" without publishing. The product itself has no such switch:
the trail is what ``trace``, status and dead letters read.
"""

from __future__ import annotations

from collections.abc import Sequence

from gitstore_agents.cli import main
from gitstore_agents.pipeline._audit import AuditLog
from gitstore_agents.telemetry import DecisionRecord


async def _not_stored(self: AuditLog, records: Sequence[DecisionRecord]) -> bool:
    return True


def skip_audit_storage() -> None:
    """Make every ``AuditLog`` of this process answer "stored" without publishing."""
    AuditLog.commit = _not_stored  # type: ignore[method-assign]


if __name__ == "__main__":
    skip_audit_storage()
    raise SystemExit(main())
