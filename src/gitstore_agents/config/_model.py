"""The configuration Structs: one YAML file, decoded by msgspec, frozen."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ..envelopes import Limits
from ._names import PLANNER
from ._topology import Topology

DRAIN_RESERVE_S = 3.0
"""Part of the drain grace a worker keeps for handing back unfinished work and closing."""

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]

INLINE_FUEL = 2_000_000
"""Default fuel cap of runs tried on the event loop thread (about 0.5-2 ms of guest work)."""


class NatsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to reach NATS.

    Attributes:
        url: Server URL(s), comma-separated for a cluster.
        creds_file: A ``.creds`` file (JWT + nkey seed), for decentralized auth.
        user: User name, for user/password auth.
        password: Password, for user/password auth.
        inbox_prefix: Prefix of this process's reply inboxes (lets the server
            narrow a role's subscribe permissions).
        tls_ca_file: CA certificate(s) (PEM) that sign the server's certificate;
            without it the system's trust store is used. With any ``tls_*``
            file set (or a ``tls://`` URL) a server that does not use TLS is
            refused.
        tls_cert_file: Client certificate (PEM), for servers that verify
            clients (``verify: true``); needs ``tls_key_file``.
        tls_key_file: The client certificate's private key (PEM).
        tls_server_name: Name expected in the server's certificate, when it
            differs from the URL's host (an IP address, a load balancer).
        tls_verify: Verify the server's certificate and name; ``false`` only
            for a throwaway development server.
        connect_timeout_s: Timeout of one connection attempt.
        reconnect_wait_s: Pause between reconnection attempts.
        request_timeout_s: Timeout of JetStream API and KV requests.
    """

    url: str = "nats://127.0.0.1:4222"
    creds_file: str | None = None
    user: str | None = None
    password: str | None = None
    inbox_prefix: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_server_name: str | None = None
    tls_verify: bool = True
    connect_timeout_s: PositiveSeconds = 5.0
    reconnect_wait_s: PositiveSeconds = 1.0
    request_timeout_s: PositiveSeconds = 5.0


class HealthSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The HTTP health server (``/healthz``, ``/readyz``).

    Attributes:
        port: TCP port; ``0`` picks a free one, ``null`` disables the server.
        host: Interface to listen on.
    """

    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = 8080
    # Probes come from the kubelet, not from localhost.
    host: str = "0.0.0.0"


class ExtensionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A third-party extension run on every compiled resource.

    Attributes:
        name: Extension name (part of the task input, so of its idempotency key).
        version: Extension version.
        module: Module reference; defaults to the ``extension.run`` kind's module.
        parameters: Settings passed to the extension in its input.
    """

    name: str
    version: str
    module: str | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)


MIB = 1024 * 1024


class PerInputMiB(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a task's limits grow by for each MiB of its input (0: they do not).

    Attributes:
        fuel: Fuel added per MiB of input.
        timeout_ms: Milliseconds of deadline added per MiB of input.
        memory_bytes: Linear memory added per MiB of input.
    """

    fuel: NonNegativeInt = 0
    timeout_ms: NonNegativeInt = 0
    memory_bytes: NonNegativeInt = 0


class LimitsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Sandbox limits of a task kind (a typo here must fail, not be ignored).

    A task's limits are the base values plus ``per_input_mib`` for each MiB of
    its input, up to the ``max_*`` values: a small input gets a small budget
    (a runaway module stops early), the largest input the policy admits gets
    what it needs. Without ``per_input_mib`` every task gets the base values.

    Attributes:
        fuel: Deterministic CPU budget in wasmtime fuel units, for an empty input.
        timeout_ms: Wall-clock deadline of one run, for an empty input.
        memory_bytes: Cap on the module's linear memory, for an empty input.
        per_input_mib: What each MiB of input adds.
        max_fuel: The most fuel a task of this kind gets (default: ``fuel``);
            never more than the policy's ceiling, whatever is configured.
        max_timeout_ms: The longest deadline (default: ``timeout_ms``), within
            the policy's ceiling.
        max_memory_bytes: The most memory (default: ``memory_bytes``), within
            the policy's ceiling.
    """

    fuel: PositiveInt = Limits().fuel
    timeout_ms: PositiveInt = Limits().timeout_ms
    memory_bytes: PositiveInt = Limits().memory_bytes
    per_input_mib: PerInputMiB = msgspec.field(default_factory=PerInputMiB)
    max_fuel: PositiveInt | None = None
    max_timeout_ms: PositiveInt | None = None
    max_memory_bytes: PositiveInt | None = None

    def ceilings(self) -> Limits:
        """The most a task of this kind may ask for (admission's configured ceiling)."""
        return Limits(
            fuel=max(self.fuel, self.max_fuel or 0),
            timeout_ms=max(self.timeout_ms, self.max_timeout_ms or 0),
            memory_bytes=max(self.memory_bytes, self.max_memory_bytes or 0),
        )

    def capped(self, ceilings: Limits) -> LimitsConfig:
        """These limits with ``max_*`` no higher than ``ceilings`` (a policy's).

        The base values must fit the policy (``Policy.check_config`` refuses
        them otherwise); how far they may grow is bounded by it.
        """
        most = self.ceilings()
        return msgspec.structs.replace(
            self,
            max_fuel=max(self.fuel, min(most.fuel, ceilings.fuel)),
            max_timeout_ms=max(self.timeout_ms, min(most.timeout_ms, ceilings.timeout_ms)),
            max_memory_bytes=max(self.memory_bytes, min(most.memory_bytes, ceilings.memory_bytes)),
        )

    def task_limits(self, input_bytes: int = 0) -> Limits:
        """The limits of a task whose canonical input is ``input_bytes`` long.

        Integer arithmetic only: the limits are part of the task, which must
        be the same bytes on every machine that derives it.
        """
        most, grow = self.ceilings(), self.per_input_mib

        def scaled(base: int, per_mib: int, ceiling: int) -> int:
            return min(ceiling, base + per_mib * input_bytes // MIB)

        return Limits(
            fuel=scaled(self.fuel, grow.fuel, most.fuel),
            timeout_ms=scaled(self.timeout_ms, grow.timeout_ms, most.timeout_ms),
            memory_bytes=scaled(self.memory_bytes, grow.memory_bytes, most.memory_bytes),
        )


class KindConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a role runs one task kind.

    Attributes:
        module: ``reference:<name>`` (a packaged module), ``sha256:<hex>`` (from
            the modules object store) or ``file:<path>`` (a local file).
        limits: Limits planned tasks get (scaled by input size); their
            ``ceilings()`` are the role's configured ceilings at admission.
        extensions: For ``extension.run``: one follow-up task per extension.
    """

    module: str
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    extensions: tuple[ExtensionConfig, ...] = ()


class RoleConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One role: its consumer, retry policy, concurrency and task kinds.

    Attributes:
        concurrency: Most messages in flight at once (sandbox threads for task roles).
        batch: Most messages one pull request asks for.
        ack_wait_s: How long a delivery may stay unacknowledged before
            JetStream redelivers it (after a crash); running work sends
            in-progress acks every third of it.
        max_deliver: Deliveries before the message is dead-lettered.
        backoff_s: Redelivery delay after the n-th failed attempt (last repeats).
        max_ack_pending: Unacknowledged messages allowed across all replicas.
        fetch_expires_s: Lifetime of one pull request.
        fetch_heartbeat_s: Idle heartbeat of a pull request (at most half its expiry).
        kinds: Task kinds this role runs.
        follow_ups: Task kinds published after each successful task of this role.
        inline_fuel: Fuel a run may use on the event loop's own thread before
            it starts over on a sandbox thread (0: every run on a thread).
            Short runs cost less inline than the thread hand-off
            (docs/performance.md); the fuel bounds how long NATS I/O waits.
    """

    concurrency: PositiveInt = 4
    batch: PositiveInt = 32
    ack_wait_s: PositiveSeconds = 60.0
    max_deliver: PositiveInt = 5
    backoff_s: tuple[NonNegativeSeconds, ...] = (1.0, 5.0, 30.0)
    max_ack_pending: PositiveInt = 1000
    fetch_expires_s: PositiveSeconds = 5.0
    fetch_heartbeat_s: PositiveSeconds = 1.0
    kinds: dict[str, KindConfig] = msgspec.field(default_factory=dict)
    follow_ups: tuple[str, ...] = ()
    inline_fuel: NonNegativeInt = INLINE_FUEL

    def max_deadline_s(self) -> float:
        """The longest wall-clock deadline of this role's task kinds (0 for none)."""
        return max(
            (k.limits.ceilings().timeout_ms / 1000 for k in self.kinds.values()), default=0.0
        )

    def redelivery_backoff_s(self) -> list[float]:
        """The consumer's ``backoff``: the ack wait, then each retry delay on top.

        JetStream replaces a consumer's ``ack_wait`` with ``backoff[0]`` and times
        the n-th redelivery after an ack-wait expiry by ``backoff[n-1]``, so each
        entry must leave a live worker its full ack wait.
        """
        return [self.ack_wait_s + delay for delay in self.backoff_s]


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a worker process needs, from one YAML file plus ``GITSTORE_*`` variables.

    Attributes:
        nats: Connection settings.
        topology: Stream, bucket and subject names.
        health: The health server.
        drain_grace_s: Time a draining worker gives in-flight work before it
            naks what is left and exits.
        publish_timeout_s: Bound on waiting for PubAcks (nats-py has none).
        policy_file: Guardrails policy (enforced once the policy lands).
        provision_on_start: Create or update the topology at start; otherwise
            only verify it (when a provisioning job owns it).
        on_consumer_drift: What a worker that only verifies does when a durable's
            settings (ack wait, backoff, max deliver, max ack pending, filter)
            differ from its role's: ``refuse`` to start, naming each difference,
            or ``provision`` the durable back to them (its NATS user must be
            allowed to update it).
        worker_id: This process's name in logs and audit records (default: host and pid).
        roles: Role name to its configuration.
    """

    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    topology: Topology = msgspec.field(default_factory=Topology)
    health: HealthSettings = msgspec.field(default_factory=HealthSettings)
    drain_grace_s: PositiveSeconds = 20.0
    publish_timeout_s: PositiveSeconds = 5.0
    policy_file: str | None = None
    provision_on_start: bool = True
    on_consumer_drift: Literal["refuse", "provision"] = "refuse"
    worker_id: str | None = None
    roles: dict[str, RoleConfig] = msgspec.field(default_factory=dict)

    def role(self, name: str) -> RoleConfig:
        """The configuration of role ``name`` (KeyError if it has none)."""
        return self.roles[name]

    def kind(self, kind: str) -> tuple[str, KindConfig]:
        """The role that runs ``kind`` and its configuration for it.

        Raises:
            KeyError: no role runs ``kind``.
        """
        for name, role in self.roles.items():
            if kind in role.kinds:
                return name, role.kinds[kind]
        raise KeyError(kind)

    def task_roles(self) -> list[str]:
        """Roles that run task kinds (everything but the planner)."""
        return [name for name in self.roles if name != PLANNER]
