"""Provisioning: streams (slot streams among them), durable consumers and object stores.

Everything here is idempotent: ``gitstore-agents provision`` (the Helm hook
job), ``dev`` and a worker with ``provision_on_start`` all run the same code,
as often as they like. An existing durable keeps what an operator chose for it
(deliver policy, start sequence: a rewind); only the settings this product owns
(ack wait, backoff, max deliver, max ack pending, filter) are brought in line.
Streams are updated in place to the topology's settings, retention limits
included (``<stream>_max_age_s`` …): a shorter age or a smaller limit on the
events or audit stream removes the messages past it at once; on a slot stream
(discard new) a limit below what it holds removes nothing, the stream refuses
new messages until there is room.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    ObjectStoreConfig,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from ..config import (
    PLANNER,
    ROLES,
    Config,
    Topology,
)
from ..errors import GitStoreAgentsError
from ..sandbox import ModuleStore, upload_reference_modules
from ._audit_stream import provision_audit_stream
from ._errors import TopologyError
from ._migrate import MigrationReport, migrate_to_slots

log = structlog.get_logger(__name__)

DEAD_LETTER_SUFFIX = "-dead-letters"
# The dead-letter writer must never give up on an advisory (it is the last
# record of the failed message): unlimited deliveries, a plain ack wait.
_DEAD_LETTER_ACK_WAIT_S = 30.0


class ConsumerSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A durable pull consumer a role reads from.

    Attributes:
        stream: Stream the consumer reads.
        durable: Durable name, shared by every replica of the role.
        filter_subjects: Subjects this consumer delivers.
        ack_wait_s: Redelivery delay of an unacknowledged message (when no backoff).
        max_deliver: Deliveries before JetStream gives up on a message (-1: never).
        max_ack_pending: Bound on unacknowledged messages across replicas.
        backoff_s: Redelivery delays after ack-wait expiries (replaces ack_wait).
    """

    stream: str
    durable: str
    filter_subjects: tuple[str, ...]
    ack_wait_s: float = 30.0
    max_deliver: int = 5
    max_ack_pending: int = 1000
    backoff_s: tuple[float, ...] = ()

    @property
    def filter_subject(self) -> str:
        """The first (usually only) filter subject."""
        return self.filter_subjects[0]

    def config(self) -> ConsumerConfig:
        """The consumer's JetStream configuration (for a new durable)."""
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
        )
        return self.apply(config)

    def apply(self, config: ConsumerConfig) -> ConsumerConfig:
        """``config`` with this product's settings (keeps deliver policy and start)."""
        config.durable_name = self.durable
        config.name = None
        config.ack_policy = AckPolicy.EXPLICIT
        config.max_deliver = self.max_deliver
        config.max_ack_pending = self.max_ack_pending
        config.backoff = list(self.backoff_s) or None
        # With a backoff JetStream stores backoff[0] as the ack wait anyway.
        config.ack_wait = self.backoff_s[0] if self.backoff_s else self.ack_wait_s
        if len(self.filter_subjects) == 1:
            config.filter_subject, config.filter_subjects = self.filter_subjects[0], None
        else:
            config.filter_subject, config.filter_subjects = None, list(self.filter_subjects)
        return config


def role_consumer(config: Config, role: str) -> ConsumerSpec:
    """The durable consumer role ``role`` pulls its inputs from."""
    topology, settings = config.topology, config.role(role)
    subjects = topology.subjects
    filters: tuple[str, ...]
    if role == PLANNER:
        stream, filters = topology.events_stream, (subjects.git_push_all(),)
    else:
        stream = topology.tasks_stream
        filters = tuple(subjects.tasks_of(kind) for kind in sorted(settings.kinds))
    return ConsumerSpec(
        stream=stream,
        durable=role,
        filter_subjects=filters,
        ack_wait_s=settings.ack_wait_s,
        max_deliver=settings.max_deliver,
        max_ack_pending=settings.max_ack_pending,
        backoff_s=tuple(settings.redelivery_backoff_s()),
    )


def dead_letter_consumer(config: Config, role: str) -> ConsumerSpec:
    """The durable that feeds ``role``'s max-deliveries advisories to its dead-letter writer."""
    topology = config.topology
    inputs = role_consumer(config, role)
    return ConsumerSpec(
        stream=topology.advisories_stream,
        durable=f"{role}{DEAD_LETTER_SUFFIX}",
        filter_subjects=(topology.max_deliveries_advisory(inputs.stream, inputs.durable),),
        ack_wait_s=_DEAD_LETTER_ACK_WAIT_S,
        max_deliver=-1,
        max_ack_pending=1000,
    )


async def provision_streams(
    js: JetStreamContext, topology: Topology, *, durables: Sequence[tuple[str, str]] = ()
) -> list[MigrationReport]:
    """Create every stream, or update it in place (subjects, replicas, limits).

    Streams still in the per-kind layout are migrated to slots first
    (``_migrate``); ``durables`` (``(stream, durable)`` of every role) must be
    idle for that.

    Raises:
        TopologyError: a migration is needed while workers consume.
    """
    reports = await migrate_to_slots(js, topology, durables=durables)
    for config in topology.stream_configs():
        assert config.name is not None
        if config.name == topology.audit_stream:
            # Created if missing, never updated here (``_audit_stream``).
            await provision_audit_stream(js, topology)
            continue
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
    return reports


async def provision_buckets(js: JetStreamContext, topology: Topology) -> None:
    """Create the object stores, or bring their replicas and limits in line.

    An existing bucket keeps everything but its replica count and, for the
    content store, its limits (``content_max_age_s``, ``content_max_bytes``):
    moving an install from one server to a cluster (``topology.replicas``
    1 → 3) must replicate the modules too, or they stay the one copy a node
    loss takes away. The modules store has no limits: a module must stay as
    long as a configuration names it.
    """
    content = topology.stream_limits("CONTENT")
    limits: tuple[float, int] | None
    for bucket, description, limits in (
        (topology.modules_bucket, "WASI task modules by sha256 digest", None),
        (
            topology.content_bucket,
            "large task inputs by sha256 digest",
            (content.max_age_s, content.max_bytes),
        ),
    ):
        try:
            await js.object_store(bucket)
        except NotFoundError:
            await js.create_object_store(
                bucket,
                ObjectStoreConfig(
                    description=description,
                    storage=StorageType.FILE,
                    replicas=topology.replicas,
                    ttl=limits[0] if limits else None,
                    max_bytes=(limits[1] or -1) if limits else None,
                ),
            )
        else:
            await _match_bucket(js, f"OBJ_{bucket}", topology.replicas, limits)


async def _match_bucket(
    js: JetStreamContext, stream: str, replicas: int, limits: tuple[float, int] | None
) -> None:
    """Update the bucket's stream to ``replicas`` and ``limits`` (max age, max bytes)."""
    info = await js.stream_info(stream)
    config = copy.deepcopy(info.config)
    config.num_replicas = replicas
    if limits is not None:
        max_age_s, max_bytes = limits
        config.max_age = max_age_s
        config.max_bytes = max_bytes or -1
        if max_age_s and (config.duplicate_window or 0) > max_age_s:
            # JetStream refuses a duplicate window longer than the age limit.
            config.duplicate_window = max_age_s
    if _bucket_settings(config) != _bucket_settings(info.config):
        await js.update_stream(config)


def _bucket_settings(config: StreamConfig) -> tuple[object, ...]:
    # Ages travel as integer nanoseconds: compare them at millisecond precision.
    return (
        config.num_replicas,
        round(config.max_age or 0, 3),
        config.max_bytes if config.max_bytes and config.max_bytes > 0 else -1,
    )


class Drift(msgspec.Struct, frozen=True, kw_only=True):
    """One setting of a durable that differs from what its role's configuration makes.

    Attributes:
        field: The JetStream consumer setting (``ack_wait``, ``backoff`` ...).
        expected: Its value from the role's configuration.
        actual: Its value on the server.
    """

    field: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.field} expected {self.expected}, actual {self.actual}"


class ConsumerDriftError(GitStoreAgentsError):
    """A durable's settings differ from its role's configuration (``on_consumer_drift: refuse``).

    Attributes:
        drifts: ``(stream/durable, differences)`` of each consumer that differs.
    """

    code = "consumer-drift"
    retryable = False

    def __init__(self, drifts: Sequence[tuple[ConsumerSpec, Sequence[Drift]]], roles: str) -> None:
        described = "; ".join(
            f"{spec.stream}/{spec.durable}: " + ", ".join(str(d) for d in found)
            for spec, found in drifts
        )
        super().__init__(
            f"consumer settings differ from the role configuration, refusing to run on them: "
            f"{described}. Restore them with `gitstore-agents provision {roles}` (or set "
            "on_consumer_drift: provision), or change the role's configuration to match"
        )
        self.drifts = [(f"{spec.stream}/{spec.durable}", list(found)) for spec, found in drifts]


def consumer_drift(spec: ConsumerSpec, actual: ConsumerConfig) -> list[Drift]:
    """Every setting the role owns that ``actual`` (a durable's config) has otherwise.

    The deliver policy and start are not among them: they are the operator's
    (a rewind's).
    """
    wanted = _owned(spec.apply(copy.deepcopy(actual)))
    found = _owned(actual)
    return [
        Drift(field=name, expected=wanted[name], actual=found[name])
        for name in wanted
        if wanted[name] != found[name]
    ]


async def provision_consumer(js: JetStreamContext, spec: ConsumerSpec) -> list[Drift]:
    """Create the durable, or bring an existing one's owned settings in line.

    Returns:
        What was brought in line (nothing for a new or unchanged durable).
    """
    try:
        info = await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        await js.add_consumer(spec.stream, spec.config())
        return []
    drifts = consumer_drift(spec, info.config)
    if drifts:
        await js.add_consumer(spec.stream, spec.apply(copy.deepcopy(info.config)))
        log.warning(
            "consumer settings restored",
            stream=spec.stream,
            durable=spec.durable,
            drifts=[str(d) for d in drifts],
        )
    return drifts


def _owned(config: ConsumerConfig) -> dict[str, str]:
    """The settings a role owns, as text (what a drift message shows)."""
    filters = list(config.filter_subjects or ()) or [config.filter_subject or ""]
    backoff = [_seconds(b) for b in config.backoff or ()]
    # The server's answer holds plain strings where nats-py's own configs hold enums.
    ack_policy = AckPolicy(config.ack_policy).value if config.ack_policy else "none"
    return {
        "ack_policy": ack_policy,
        "ack_wait": _seconds(config.ack_wait or 0),
        "backoff": f"[{', '.join(backoff)}]" if backoff else "none",
        "max_deliver": str(config.max_deliver if config.max_deliver is not None else -1),
        "max_ack_pending": str(config.max_ack_pending),
        "filter_subjects": ", ".join(sorted(filters)),
    }


def _seconds(value: float) -> str:
    # Durations travel as integer nanoseconds (nats-py truncates: 8.2 s comes
    # back as 8.199999999 s), so compare them at millisecond precision.
    return f"{round(value, 3):.3f}".rstrip("0").rstrip(".") + "s"


async def provision(
    js: JetStreamContext,
    config: Config,
    roles: tuple[str, ...] = ROLES,
    *,
    upload_modules: bool = True,
) -> dict[str, str]:
    """Provision everything ``roles`` need (idempotent).

    Returns:
        Name to digest of the reference modules uploaded to the modules store.
    """
    durables = [
        (spec.stream, spec.durable) for spec in (role_consumer(config, r) for r in config.roles)
    ]
    await provision_streams(js, config.topology, durables=durables)
    await provision_buckets(js, config.topology)
    for role in roles:
        if role not in config.roles:
            continue
        await provision_consumer(js, role_consumer(config, role))
        await provision_consumer(js, dead_letter_consumer(config, role))
    uploaded = (
        await upload_reference_modules(await ModuleStore.open(js, config.topology.modules_bucket))
        if upload_modules
        else {}
    )
    log.info("topology provisioned", roles=list(roles), modules=sorted(uploaded))
    return uploaded


async def verify(js: JetStreamContext, config: Config, roles: tuple[str, ...]) -> None:
    """Check that everything ``roles`` need exists and their durables have their settings.

    For workers that may not provision. A durable whose owned settings differ
    from the role's (a rewind that recreated it otherwise, a hand edit) is
    refused, or brought in line with ``on_consumer_drift: provision``.

    Raises:
        TopologyError: listing what is missing.
        ConsumerDriftError: naming each durable and setting that differs
            (``on_consumer_drift: refuse``).
    """
    topology = config.topology
    missing: list[str] = []
    drifted: list[tuple[ConsumerSpec, list[Drift]]] = []
    slots = set(topology.slot_streams())
    for stream_config in topology.stream_configs():
        assert stream_config.name is not None
        try:
            info = await js.stream_info(stream_config.name)
        except NotFoundError:
            missing.append(f"stream {stream_config.name}")
            continue
        if stream_config.name in slots and info.config.max_msgs_per_subject != 1:
            # Without one message per subject nothing stops a second result.
            missing.append(f"stream {stream_config.name} in the slot layout")
    for role in roles:
        for spec in (role_consumer(config, role), dead_letter_consumer(config, role)):
            try:
                info = await js.consumer_info(spec.stream, spec.durable)
            except NotFoundError:
                missing.append(f"consumer {spec.stream}/{spec.durable}")
                continue
            drifts = consumer_drift(spec, info.config)
            if drifts:
                drifted.append((spec, drifts))
    if missing:
        raise TopologyError("missing (run `gitstore-agents provision`): " + ", ".join(missing))
    if not drifted:
        return
    if config.on_consumer_drift != "provision":
        raise ConsumerDriftError(drifted, " ".join(f"--role {role}" for role in roles))
    for spec, _ in drifted:
        await provision_consumer(js, spec)
