"""The audit stream: created by provisioning, changed only by its administrator.

An update of the audit stream can rewrite the trail (a message limit of 1, an
age of one second, other subjects, ``sealed``), so no identity of the runtime
may send one: the provisioner may only *create* the stream, which nats-server
refuses when a stream of that name exists with another configuration. Once it
exists, ``provision`` compares its settings with the configuration and leaves
it alone: equal, nothing to do; different, the differences are logged (a
worker) or raised (``gitstore-agents provision``), naming the identity that may
apply them, ``audit-admin`` (``gitstore-agents provision --audit-stream``).
"""

from __future__ import annotations

import structlog
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from ..config import Topology
from ._errors import AuditStreamDiffersError

log = structlog.get_logger(__name__)

AUDIT_ADMIN_COMMAND = "gitstore-agents provision --audit-stream --config FILE"
"""What applies a change of the audit stream, run with the ``audit-admin`` credentials."""


def audit_stream_config(topology: Topology) -> StreamConfig:
    """The audit stream's configuration as the topology makes it."""
    return next(c for c in topology.stream_configs() if c.name == topology.audit_stream)


def _settings(config: StreamConfig) -> dict[str, object]:
    # Durations travel as integer nanoseconds: compare them at millisecond precision;
    # JetStream reports "no limit" as -1 whether it was sent as 0 or -1.
    def limit(value: int | None) -> int:
        return value if value and value > 0 else -1

    return {
        "subjects": sorted(config.subjects or []),
        "max_age": round(config.max_age or 0, 3),
        "max_bytes": limit(config.max_bytes),
        "max_msgs": limit(config.max_msgs),
        "max_msg_size": limit(config.max_msg_size),
        "duplicate_window": round(config.duplicate_window or 0, 3),
        "num_replicas": config.num_replicas or 1,
        "deny_delete": bool(config.deny_delete),
        "deny_purge": bool(config.deny_purge),
        "allow_direct": bool(config.allow_direct),
        "sealed": bool(config.sealed),
    }


def audit_stream_differences(actual: StreamConfig, wanted: StreamConfig) -> list[str]:
    """``setting: actual -> wanted`` for every setting the two configurations disagree on."""
    have, want = _settings(actual), _settings(wanted)
    return [f"{n}: {have[n]!r} -> {want[n]!r}" for n in want if have[n] != want[n]]


async def audit_stream_drift(js: JetStreamContext, topology: Topology) -> list[str]:
    """How the stored audit stream differs from the configuration (empty: not at all).

    Raises:
        nats.js.errors.NotFoundError: the audit stream does not exist.
    """
    info = await js.stream_info(topology.audit_stream)
    return audit_stream_differences(info.config, audit_stream_config(topology))


async def provision_audit_stream(
    js: JetStreamContext, topology: Topology, *, update: bool = False
) -> list[str]:
    """Create the audit stream if it is missing; with ``update`` (audit-admin) bring it in line.

    Returns:
        The differences left in place (always empty with ``update``).
    """
    wanted = audit_stream_config(topology)
    try:
        info = await js.stream_info(topology.audit_stream)
    except NotFoundError:
        await js.add_stream(wanted)
        return []
    differences = audit_stream_differences(info.config, wanted)
    if differences and update:
        await js.update_stream(wanted)
        log.info("audit stream updated", stream=topology.audit_stream, changes=differences)
        return []
    if differences:
        log.warning(
            "audit stream differs from the configuration; left unchanged",
            stream=topology.audit_stream,
            differences=differences,
            apply_with=f"{AUDIT_ADMIN_COMMAND} (as audit-admin)",
        )
    return differences


def audit_stream_differs(topology: Topology, differences: list[str]) -> AuditStreamDiffersError:
    """The error ``provision`` ends with when the audit stream was left unlike the configuration."""
    return AuditStreamDiffersError(
        f"audit stream {topology.audit_stream} differs from the configuration "
        f"({'; '.join(differences)}) and was left unchanged: no runtime identity may change "
        f"the audit trail. Everything else is provisioned. Apply the change with "
        f"`{AUDIT_ADMIN_COMMAND}` using the audit-admin identity's credentials (user "
        "audit-admin in `policy nats-config`), or set the topology's audit_* settings back "
        "to the stream's"
    )
