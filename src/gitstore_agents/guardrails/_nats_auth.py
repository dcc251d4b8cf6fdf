"""The server-side boundary: nats-server permissions generated from the policy.

Each identity gets a user whose publish permissions allow exactly what it needs
and nothing else. The **runtime** identities (what the deployment's pods hold):

* a role: its ``publish_subjects`` (the same list its ``PublishBoundary``
  enforces in-process; audit records only under its own role token), the
  JetStream API calls of its own two consumers (pull, info, acks of their
  deliveries), ``STREAM.INFO`` of the product's streams and buckets, reading
  the original of a dead-lettered message, direct gets of the slot streams and
  the audit stream (stored results, the status service) and reads of the
  module and content object stores; it subscribes to its own inbox prefix
  ``_INBOX_<identity>`` and to the status service's subjects;
* the provisioner: creating and updating the product's streams, consumers and
  buckets, uploading modules, migrating the slot streams from the per-kind
  layout (copies into slots); never deleting or purging anything but a
  replaced module's chunks, and never *updating* the audit stream: it may only
  create it (a create is refused by the server when the stream exists with
  another configuration);
* the status probe: asking the status service.

And three identities no pod of the chart mounts:

* ``audit-admin``: creating and updating the audit stream, nothing else (its
  retention is a decision above the runtime);
* ``operator``: what the runbooks need (stream and consumer info and listing,
  reading any message, ephemeral consumers, rewinding a role's durable,
  dead-letter requeues, replay, backfill, ``trace``, the status service);
  never a stream create, update, delete or purge;
* ``control-plane``: GitStore publishing git events, reading the validation
  and failures streams through its own durable ``control-plane``, asking the
  status service.

Nothing grants ``>``, ``$JS.API.STREAM.DELETE``, ``STREAM.PURGE`` (but the one
above), or an update of the audit stream to any runtime identity.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

import msgspec

from ..config import GIT_PUSH, MAX_DELIVERIES_ADVISORY, PLANNER, ROLES, Topology
from ._policy import Policy, PolicyError

PROVISIONER = "provisioner"
STATUS_PROBE = "status-probe"
OPERATOR = "operator"
CONTROL_PLANE = "control-plane"
AUDIT_ADMIN = "audit-admin"
RUNTIME_IDENTITIES = (*ROLES, PROVISIONER, STATUS_PROBE)
"""The identities the runtime's processes hold: roles, provisioning job, status probe."""
IDENTITIES = (*RUNTIME_IDENTITIES, OPERATOR, CONTROL_PLANE, AUDIT_ADMIN)
"""Every NATS identity of a deployment: the runtime's, people's, the control plane's, the
audit stream's administrator."""

CONTROL_PLANE_DURABLE = "control-plane"
"""The control plane's durable on the validation and on the failures stream."""

DEAD_LETTER_SUFFIX = "-dead-letters"
"""A role's dead-letter writer's durable is ``<role>-dead-letters`` (as provisioning names it)."""

PASSWORD_ENV_PREFIX = "GITSTORE_NATS_PASSWORD_"
"""Variable the generated config reads an identity's password from (``..._MARKDOWN_COMPILER``)."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Permissions(msgspec.Struct, frozen=True, kw_only=True):
    """One user's permissions, as nats-server's ``permissions`` block holds them.

    Attributes:
        publish: Subjects the user may publish to (``publish.allow``).
        subscribe: Subjects the user may subscribe to (``subscribe.allow``).
        allow_responses: May reply to requests it received (the status service).
    """

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False


class NatsUser(msgspec.Struct, frozen=True, kw_only=True):
    """One ``authorization.users`` entry.

    Attributes:
        identity: Which identity this is (a role, ``provisioner``, ``status-probe``).
        user: User name.
        password: A bcrypt hash or plaintext (written quoted), or, when
            ``password_env`` is set, ignored.
        password_env: Name of the environment variable nats-server reads the
            password from (written as an unquoted ``$VARIABLE``).
        permissions: What the user may do.
    """

    identity: str
    user: str
    permissions: Permissions
    password: str = ""
    password_env: str | None = None


def inbox_prefix(identity: str) -> str:
    """The inbox prefix an identity's connection must use (``nats.inbox_prefix``)."""
    return f"_INBOX_{identity}"


def password_env(identity: str) -> str:
    """``GITSTORE_NATS_PASSWORD_<IDENTITY>``: where the server reads a password from by default."""
    return PASSWORD_ENV_PREFIX + identity.upper().replace("-", "_")


def publish_subjects(policy: Policy, role: str) -> tuple[str, ...]:
    """The product subjects role ``role`` may publish to (its boundary and its NATS user).

    Task roles: the ``validation``, ``failures`` and ``dlq`` slots of the kinds
    they run; the planner: the ``failures`` and ``dlq`` slots of ``git.push``.
    Both: the task slots of the kinds the policy lets them publish, and audit
    records in their own name only (``<prefix>.audit.<role>.*``).
    """
    rules, subjects = policy.role(role), policy.subjects
    out: list[str] = []
    if role == PLANNER:
        out += [subjects.failures_of(GIT_PUSH), subjects.dead_letters_of(GIT_PUSH)]
    else:
        for kind in rules.kinds:
            out += [
                subjects.validations_of(kind),
                subjects.failures_of(kind),
                subjects.dead_letters_of(kind),
            ]
    out += [subjects.tasks_of(kind) for kind in rules.publishes_tasks]
    out.append(subjects.audit_of_role(role))
    return tuple(dict.fromkeys(out))


def nats_permissions(
    policy: Policy, topology: Topology, roles: Iterable[str] | None = None
) -> dict[str, Permissions]:
    """Permissions of every identity: ``roles`` (default: the policy's), then the others
    of ``IDENTITIES`` (provisioner, probe, operator, control plane, audit admin).

    Raises:
        PolicyError: the topology's prefix is not the policy's, or a role is not in it.
    """
    if topology.prefix != policy.subject_prefix:
        raise PolicyError(
            f"topology.prefix={topology.prefix!r} differs from the policy's "
            f"subject_prefix={policy.subject_prefix!r}"
        )
    wanted = list(roles) if roles is not None else [r for r in ROLES if r in policy.roles]
    permissions = {role: _role_permissions(policy, topology, role) for role in wanted}
    permissions[PROVISIONER] = _provisioner_permissions(topology)
    permissions[STATUS_PROBE] = _status_probe_permissions(policy)
    permissions[OPERATOR] = _operator_permissions(topology)
    permissions[CONTROL_PLANE] = _control_plane_permissions(topology)
    permissions[AUDIT_ADMIN] = _audit_admin_permissions(topology)
    return permissions


def nats_users(
    policy: Policy,
    topology: Topology,
    *,
    roles: Iterable[str] | None = None,
    users: Mapping[str, str] | None = None,
    passwords: Mapping[str, str] | None = None,
) -> list[NatsUser]:
    """The ``authorization.users`` entries.

    Args:
        policy: The resolved policy.
        topology: Stream and bucket names (its prefix must be the policy's).
        roles: Roles to create users for (default: every role of the policy).
        users: User name per identity (default: the identity's name).
        passwords: Password or bcrypt hash per identity; an identity without
            one reads it from ``$GITSTORE_NATS_PASSWORD_<IDENTITY>`` in the
            server's environment.
    """
    users, passwords = users or {}, passwords or {}
    out = []
    for identity, permissions in nats_permissions(policy, topology, roles).items():
        password = passwords.get(identity)
        out.append(
            NatsUser(
                identity=identity,
                user=users.get(identity, identity),
                permissions=permissions,
                password=password or "",
                password_env=None if password else password_env(identity),
            )
        )
    return out


def authorization_config(users: Iterable[NatsUser]) -> str:
    """The nats-server ``authorization { users: [...] }`` block for ``users``."""
    lines = ["authorization {", "  users: ["]
    for user in users:
        if user.password_env is not None:
            if not _ENV_NAME.match(user.password_env):
                raise ValueError(f"password_env={user.password_env!r} is not a variable name")
            # Unquoted: nats-server resolves $NAME from its environment at start.
            password = f"${user.password_env}"
        else:
            password = json.dumps(user.password)
        lines.append(f"    # {user.identity}")
        lines.append(
            f"    {{user: {json.dumps(user.user)}, password: {password}, "
            f"permissions: {json.dumps(permissions_block(user.permissions))}}}"
        )
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def permissions_block(permissions: Permissions) -> dict[str, object]:
    """``permissions`` as nats-server reads it (publish/subscribe allow lists)."""
    block: dict[str, object] = {
        "publish": {"allow": list(permissions.publish)},
        "subscribe": {"allow": list(permissions.subscribe)},
    }
    if permissions.allow_responses:
        block["allow_responses"] = True
    return block


# -- per identity ----------------------------------------------------------------------------


def _role_permissions(policy: Policy, topology: Topology, role: str) -> Permissions:
    api = "$JS.API"
    stream = topology.events_stream if role == PLANNER else topology.tasks_stream
    modules, content = f"OBJ_{topology.modules_bucket}", f"OBJ_{topology.content_bucket}"
    publish = list(publish_subjects(policy, role))
    for consumer_stream, durable in (
        (stream, role),
        (topology.advisories_stream, f"{role}{DEAD_LETTER_SUFFIX}"),
    ):
        publish += [
            f"{api}.CONSUMER.MSG.NEXT.{consumer_stream}.{durable}",
            f"{api}.CONSUMER.INFO.{consumer_stream}.{durable}",
            # Acks, naks, terms and in-progress acks of this consumer's deliveries only,
            # in both reply-subject forms: $JS.ACK.<stream>.<consumer>.<counters...> (what
            # nats-server 2.15 sends without a domain) and the v2 form with a domain and
            # an account hash in front, $JS.ACK.<domain>.<hash>.<stream>.<consumer>....
            f"$JS.ACK.{consumer_stream}.{durable}.>",
            f"$JS.ACK.*.*.{consumer_stream}.{durable}.>",
        ]
    # Start-up verifies that every stream and bucket exists (read-only metadata).
    streams = [c.name for c in topology.stream_configs() if c.name] + [modules, content]
    publish += [f"{api}.STREAM.INFO.{name}" for name in streams]
    publish += [
        # The dead-letter writer reads the original of a message that ran out of deliveries.
        f"{api}.STREAM.MSG.GET.{stream}",
        # Reading modules and large inputs: nats-py looks the object stream up by
        # subject, reads the object's info, then its chunks through an ordered consumer.
        f"{api}.STREAM.NAMES",
        # The status service every worker serves reads an event's audit trail with
        # batched direct gets; the dead-letter writer reads it for the last failure.
        f"{api}.DIRECT.GET.{topology.audit_stream}",
    ]
    # Reading slots (a long task's stored result, what the status service
    # reports): direct gets of one subject, ``DIRECT.GET.<stream>.<subject>``.
    publish += [f"{api}.DIRECT.GET.{name}.>" for name in topology.slot_streams()]
    for name in (modules, content):
        publish += [
            f"{api}.STREAM.MSG.GET.{name}",
            # The ordered consumer reading an object's chunks, and its flow-control replies.
            f"{api}.CONSUMER.CREATE.{name}",
            f"$JS.FC.{name}.>",
        ]
    publish += content_writes(topology)
    subscribe = [
        f"{inbox_prefix(role)}.>",
        # The status micro service every worker serves: discovery and its endpoints.
        "$SRV.>",
        f"{policy.subject_prefix}.status.>",
    ]
    return Permissions(
        publish=tuple(dict.fromkeys(publish)),
        subscribe=tuple(subscribe),
        allow_responses=True,
    )


def content_writes(topology: Topology) -> list[str]:
    """Putting an object into the content store: its chunks, then its meta record.

    Every role carries what does not fit one message by ref (a large task
    input, a large result, its follow-ups' inputs), and so does the operator's
    backfill. Not purge: an object is stored once under its digest and never
    replaced, and a reader checks every object against the digest it is named by.
    """
    bucket = topology.content_bucket
    return [f"$O.{bucket}.C.>", f"$O.{bucket}.M.>"]


def _provisioner_permissions(topology: Topology) -> Permissions:
    api = "$JS.API"
    streams = [c.name for c in topology.stream_configs() if c.name]
    buckets = [f"OBJ_{topology.modules_bucket}", f"OBJ_{topology.content_bucket}"]
    publish: list[str] = []
    for name in streams:
        publish += [f"{api}.STREAM.CREATE.{name}"]
        # The audit stream is created (first provision) but never updated: an
        # update could shorten, divert or seal the trail. Only audit-admin may.
        if name != topology.audit_stream:
            publish += [f"{api}.STREAM.UPDATE.{name}"]
        publish += [f"{api}.STREAM.INFO.{name}"]
    for name in buckets:
        # UPDATE: provisioning raises an existing bucket's replicas (1 -> 3).
        publish += [
            f"{api}.STREAM.CREATE.{name}",
            f"{api}.STREAM.UPDATE.{name}",
            f"{api}.STREAM.INFO.{name}",
        ]
    for name in (topology.events_stream, topology.tasks_stream, topology.advisories_stream):
        publish += [
            f"{api}.CONSUMER.DURABLE.CREATE.{name}.>",
            f"{api}.CONSUMER.INFO.{name}.>",
        ]
    subjects = topology.subjects
    for name in topology.slot_streams():
        publish += [
            # Migrating from the per-kind layout: read every message (an ordered
            # consumer) and copy it into its slot.
            f"{api}.CONSUMER.CREATE.{name}",
            f"{api}.CONSUMER.CREATE.{name}.>",
            f"$JS.FC.{name}.>",
        ]
    publish += [
        subjects.tasks_all(),
        subjects.validation_all(),
        subjects.failures_all(),
        subjects.dead_letters_all(),
    ]
    modules = f"OBJ_{topology.modules_bucket}"
    publish += [
        # Uploading the reference modules: chunks and meta, the object's info; a
        # replaced object's old chunks are purged (by subject, in this bucket only).
        f"$O.{topology.modules_bucket}.>",
        f"{api}.STREAM.MSG.GET.{modules}",
        f"{api}.STREAM.PURGE.{modules}",
        # `modules list`: nats-py finds the bucket's stream by subject, then
        # reads its metadata through an ordered (ephemeral, flow-controlled) consumer.
        f"{api}.STREAM.NAMES",
        f"{api}.CONSUMER.CREATE.{modules}",
        f"{api}.CONSUMER.CREATE.{modules}.>",
        f"$JS.FC.{modules}.>",
    ]
    return Permissions(
        publish=tuple(dict.fromkeys(publish)),
        subscribe=(f"{inbox_prefix(PROVISIONER)}.>",),
    )


def _status_probe_permissions(policy: Policy) -> Permissions:
    return Permissions(
        publish=(
            "$SRV.PING",
            "$SRV.PING.>",
            "$SRV.INFO",
            "$SRV.INFO.>",
            f"{policy.subject_prefix}.status.>",
        ),
        subscribe=(f"{inbox_prefix(STATUS_PROBE)}.>",),
    )


def _operator_permissions(topology: Topology) -> Permissions:
    api = "$JS.API"
    subjects = topology.subjects
    streams = [c.name for c in topology.stream_configs() if c.name]
    buckets = [f"OBJ_{topology.modules_bucket}", f"OBJ_{topology.content_bucket}"]
    publish = [f"{api}.INFO", f"{api}.STREAM.NAMES", f"{api}.STREAM.LIST"]
    publish += content_writes(topology)
    for name in [*streams, *buckets]:
        publish += [
            # Looking inside: stream info (and its subjects), one message by
            # sequence or by subject, consumers listed and inspected.
            f"{api}.STREAM.INFO.{name}",
            f"{api}.STREAM.MSG.GET.{name}",
            f"{api}.DIRECT.GET.{name}",
            f"{api}.DIRECT.GET.{name}.>",
            f"{api}.CONSUMER.NAMES.{name}",
            f"{api}.CONSUMER.LIST.{name}",
            f"{api}.CONSUMER.INFO.{name}.>",
            # Reading a stream through an ephemeral ordered consumer (stream view,
            # dlq list, replay, preview, backfill, object listings).
            f"{api}.CONSUMER.CREATE.{name}",
            f"{api}.CONSUMER.CREATE.{name}.>",
            f"$JS.FC.{name}.>",
        ]
    for name in (topology.events_stream, topology.tasks_stream):
        publish += [
            # Rewinding a role's durable: reset it to a stream sequence (its
            # settings stay), pause and resume it; recreate one (durable create).
            f"{api}.CONSUMER.RESET.{name}.*",
            f"{api}.CONSUMER.PAUSE.{name}.*",
            f"{api}.CONSUMER.DURABLE.CREATE.{name}.*",
            f"{api}.CONSUMER.DELETE.{name}.*",
        ]
    publish += [
        # Making one task run again on purpose: remove its result (and diagnostic).
        f"{api}.STREAM.MSG.DELETE.{topology.validation_stream}",
        f"{api}.STREAM.MSG.DELETE.{topology.failures_stream}",
        # dlq requeue: the original back on its subject (a git event) or into a
        # slot of its own (a task), the requeue record, its audit record.
        subjects.git_push_all(),
        subjects.tasks_all(),
        subjects.requeue_records(),
        subjects.audit_of_role(OPERATOR),
        # replay (re-executing history, as the roles would: results, diagnostics,
        # dead letters; its audit records are filed under the operator's name).
        subjects.validation_all(),
        subjects.failures_all(),
        subjects.dead_letters_all(),
        # status: the status service.
        "$SRV.PING",
        "$SRV.PING.>",
        "$SRV.INFO",
        "$SRV.INFO.>",
        f"{subjects.prefix}.status.>",
    ]
    return Permissions(
        publish=tuple(dict.fromkeys(publish)),
        subscribe=(
            f"{inbox_prefix(OPERATOR)}.>",
            # Watching dead letters happen.
            f"{MAX_DELIVERIES_ADVISORY}.>",
            # A tool run (replay, preview, backfill) serves the status service too.
            "$SRV.>",
            f"{subjects.prefix}.status.>",
        ),
        allow_responses=True,
    )


def _control_plane_permissions(topology: Topology) -> Permissions:
    api = "$JS.API"
    subjects = topology.subjects
    content = f"OBJ_{topology.content_bucket}"
    durable = CONTROL_PLANE_DURABLE
    publish = [
        # Git events; JetStream answers each with a PubAck on the inbox.
        subjects.git_push_all(),
        f"{api}.STREAM.NAMES",
        f"{api}.STREAM.INFO.{topology.events_stream}",
    ]
    for name in (topology.validation_stream, topology.failures_stream):
        publish += [
            f"{api}.STREAM.INFO.{name}",
            # Its own durable, created (or updated) by itself, pulled and acked.
            f"{api}.CONSUMER.CREATE.{name}.{durable}",
            f"{api}.CONSUMER.CREATE.{name}.{durable}.>",
            f"{api}.CONSUMER.DURABLE.CREATE.{name}.{durable}",
            f"{api}.CONSUMER.INFO.{name}.{durable}",
            f"{api}.CONSUMER.MSG.NEXT.{name}.{durable}",
            f"$JS.ACK.{name}.{durable}.>",
            f"$JS.ACK.*.*.{name}.{durable}.>",
        ]
    publish += [
        # An output too large to travel inline is in the content store (output_ref).
        f"{api}.STREAM.INFO.{content}",
        f"{api}.STREAM.MSG.GET.{content}",
        f"{api}.CONSUMER.CREATE.{content}",
        f"$JS.FC.{content}.>",
        "$SRV.PING",
        "$SRV.PING.>",
        "$SRV.INFO",
        "$SRV.INFO.>",
        f"{subjects.prefix}.status.>",
    ]
    return Permissions(
        publish=tuple(dict.fromkeys(publish)),
        subscribe=(f"{inbox_prefix(CONTROL_PLANE)}.>",),
    )


def _audit_admin_permissions(topology: Topology) -> Permissions:
    api, audit = "$JS.API", topology.audit_stream
    return Permissions(
        publish=(
            f"{api}.STREAM.CREATE.{audit}",
            f"{api}.STREAM.UPDATE.{audit}",
            f"{api}.STREAM.INFO.{audit}",
        ),
        subscribe=(f"{inbox_prefix(AUDIT_ADMIN)}.>",),
    )
