"""One worker process: start → serve → drain → stop, for one or several roles.

* **start**: health server up (``/healthz`` answers at once), connect with
  unlimited reconnects, provision or verify the topology, resolve module
  digests and compile (warm) every module the roles may run, bind consumers,
  register the status micro service (``<prefix>.status.*``).
* **serve**: one ``PullWorker`` per role plus a dead-letter writer per role.
  ``/readyz`` is 200 only while connected, every consumer is bound and the
  process is not draining. Disconnects and server restarts are ridden out:
  the client reconnects, pull requests are re-sent, nothing restarts.
* **drain** (``stop`` set, e.g. by SIGTERM): stop pulling, let in-flight work
  finish within ``drain_grace_s``, nak (without delay) what is left, flush.
* **stop**: close the connection, the thread pools and the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import nats
import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg

from ..config import (
    EXTENSION_RUN,
    GIT_PUSH,
    MARKDOWN_COMPILE,
    PLANNER,
    ROLES,
    Config,
    LimitsConfig,
    validate_config,
)
from ..consumers import (
    ConsumerSpec,
    Handler,
    JetStreamPublisher,
    JetStreamResults,
    NatsUnreachableError,
    PullWorker,
    TopologyError,
    WorkerSettings,
    connect,
    dead_letter_consumer,
    provision,
    role_consumer,
    verify,
)
from ..envelopes import ContentStore
from ..errors import ConfigError
from ..guardrails import (
    Admission,
    KindAllowance,
    OutputCheck,
    PermissionViolations,
    Policy,
    PolicyAdmission,
    PolicyOutputCheck,
    PublishBoundary,
    default_policy,
    load_policy,
    publish_subjects,
)
from ..pipeline import (
    AuditLog,
    DeadLetterWriter,
    FollowUpSpec,
    ModuleLoader,
    PlannerHandler,
    Reporter,
    SandboxOffload,
    TaskHandler,
    TaskSettings,
)
from ..sandbox import ModuleRegistry, ModuleStore, Sandbox, default_cache_dir
from ..telemetry import (
    INSTRUMENTS,
    Observer,
    TelemetryObserver,
    TrailEntry,
    metrics_text,
    read_trail,
    setup_telemetry,
)
from ._health import HealthServer
from ._status import StatusReader, StatusService

log = structlog.get_logger(__name__)

# Dead-letter writers are light: a couple of advisories at a time is plenty.
_DEAD_LETTER_CONCURRENCY = 2
# Time kept back from the drain grace for flushing and closing the connection;
# with the worker's abort reserve it makes up config.DRAIN_RESERVE_S.
_CLOSE_RESERVE_S = 1.0
# Pause between attempts while the topology is missing or NATS is unreachable.
_START_RETRY_S = 2.0

AdmissionFactory = Callable[[str, dict[str, KindAllowance]], Admission]
"""Builds a role's admission stage from its name and what its configuration allows."""


def default_worker_id() -> str:
    """``<host>-<pid>``: unique per process (pods set ``GITSTORE_WORKER_ID`` instead)."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Runtime:
    """A worker process running ``roles`` with ``config``.

    Args:
        config: The validated configuration.
        roles: Roles to run (default: every configured role).
        observer: Receives every decision (default: ``TelemetryObserver``: logs,
            metrics, span events and audit records).
        admission: Builds each role's admission stage (default: ``PolicyAdmission``).
        output_check: The output check (default: ``PolicyOutputCheck``).
        policy: The guardrail policy (default: ``config.policy_file``, else the
            built-in default policy, which allows exactly what the config runs).
        audit_as: Files every role's audit records under this name
            (``<prefix>.audit.<audit_as>.<event_id>``) instead of the role's: a
            tool such as ``replay`` decides as the roles but writes the trail in
            its operator's name, the only audit subject its identity may use.

    Raises:
        ConfigError: unknown roles, or a policy that is invalid or grants less
            than the configuration asks for (``PolicyError``).
    """

    def __init__(
        self,
        config: Config,
        roles: Sequence[str] | None = None,
        *,
        observer: Observer | None = None,
        admission: AdmissionFactory | None = None,
        output_check: OutputCheck | None = None,
        policy: Policy | None = None,
        audit_as: str | None = None,
    ) -> None:
        self.config = validate_config(config)
        self.roles = tuple(roles) if roles else tuple(r for r in ROLES if r in config.roles)
        unknown = sorted(set(self.roles) - set(ROLES))
        if unknown:
            raise ConfigError(f"roles={unknown} are not known roles; known: {list(ROLES)}")
        missing = sorted(set(self.roles) - set(config.roles))
        if missing:
            raise ConfigError(f"roles={missing} have no configuration under roles:")
        self.worker_id = config.worker_id or default_worker_id()
        # Real trace ids for every delivery; exporters only if OTEL_* asks.
        setup_telemetry()
        self.observer: Observer = observer or TelemetryObserver()
        if policy is None:
            policy = (
                load_policy(config.policy_file) if config.policy_file else default_policy(config)
            )
        policy.check_config(self.config, self.roles)
        self.policy = policy
        self._audit_as = audit_as
        self._admission = admission or (
            lambda role, allowed: PolicyAdmission(policy, role, allowed)
        )
        self._output_check = output_check or PolicyOutputCheck(policy)
        # Publishes the server refused (its async permission errors), so a refused
        # publish is reported as such instead of as a timeout.
        self.violations = PermissionViolations()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._sandbox: Sandbox | None = None
        self._executors: list[ThreadPoolExecutor] = []
        self._health: HealthServer | None = None
        self._status: StatusService | None = None
        self._connected = False
        self._draining = False
        self._closing = False
        self._started = False
        self.handlers: dict[str, Handler] = {}
        self.workers: list[PullWorker] = []
        self.modules: ModuleLoader | None = None
        self.content: ContentStore | None = None
        self.results: JetStreamResults | None = None
        self.reporters: dict[str, Reporter] = {}

    @property
    def nc(self) -> Client:
        """The live NATS connection (after ``start``)."""
        assert self._nc is not None, "Runtime.start() first"
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context (after ``start``)."""
        assert self._js is not None, "Runtime.start() first"
        return self._js

    @property
    def health_port(self) -> int | None:
        """Port the health server listens on (None when disabled or not started)."""
        return self._health.port if self._health is not None else None

    def readiness(self) -> tuple[bool, str]:
        """(ready?, why not): connected, started, every consumer bound, not draining."""
        if self._draining:
            return False, "draining"
        if not self._started:
            return False, "starting"
        if not self._connected or self._nc is None or not self._nc.is_connected:
            return False, "not connected to NATS"
        unbound = [w.settings.durable for w in self.workers if not w.bound]
        if unbound:
            return False, f"consumers not bound: {', '.join(unbound)}"
        return True, ""

    @property
    def ready(self) -> bool:
        """True when ``/readyz`` answers 200."""
        return self.readiness()[0]

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox every role of this process runs modules in (after ``build``)."""
        assert self._sandbox is not None, "build() creates the sandbox"
        return self._sandbox

    async def start(
        self, stop: asyncio.Event | None = None, *, retry: bool = True, tool: bool = False
    ) -> None:
        """Connect, provision or verify, warm modules, build every role's worker.

        Retries while NATS is unreachable or the topology is missing (readiness
        says why) until ``stop`` is set; setting ``stop`` interrupts even a
        connection attempt. With ``retry=False`` (a tool run such as ``replay``)
        the first failure is raised instead. With ``tool=True`` (``replay``,
        ``preview``, ``backfill``) the topology is only checked, whatever
        ``provision_on_start`` says, and no durable is looked at: a tool consumes
        from none, and the operator who runs it may change none.

        Raises:
            ConfigError: a module reference cannot be resolved (permanent).
            HealthPortError: the health server cannot listen on its port.
            NatsUnreachableError: NATS could not be reached (``retry=False``,
                or ``stop`` set before it was).
            TopologyError: the topology is missing (``retry=False``).
        """
        stop = stop or asyncio.Event()
        # Every series an alert watches reports 0 from the first scrape, and the
        # connection and readiness gauges read this runtime.
        INSTRUMENTS.preset(
            self.config,
            self.roles,
            durables=[
                spec(self.config, role).durable
                for role in self.roles
                for spec in (role_consumer, dead_letter_consumer)
            ],
            ready=lambda: self.ready,
            connection=lambda: self._nc,
        )
        health = self.config.health
        try:
            if health.port is not None and self._health is None:
                self._health = HealthServer(self.readiness, host=health.host, port=health.port)
                self._health.route("/metrics", metrics_text)
                await self._health.start()
            await self._connect(stop, retry=retry)
            if tool:
                await verify(self.js, self.config, ())
            else:
                await self._ensure_topology(stop, retry=retry)
            await self.build()
            await self._start_status()
        except BaseException:
            # Leave nothing open behind a failed start (connection, threads, port).
            await self.close()
            raise
        self._started = True
        log.info(
            "runtime started",
            roles=list(self.roles),
            worker_id=self.worker_id,
            nats_url=self.config.nats.url,
            health_port=self.health_port,
        )

    async def build(self) -> None:
        """Resolve modules and create each role's handler and worker (no serving yet)."""
        js = self.js
        self.results = JetStreamResults(js)
        self._sandbox = self._sandbox or Sandbox(cache_dir=default_cache_dir())
        store = await ModuleStore.open(js, self.config.topology.modules_bucket)
        self.modules = ModuleLoader(ModuleRegistry(self._sandbox, store))
        self.content = await ContentStore.open(
            js, bucket=self.config.topology.content_bucket, create=False
        )
        for role in self.roles:
            reporter = self._reporter(role)
            self.reporters[role] = reporter
            handler = await self._handler(role, reporter)
            self.handlers[role] = handler
            self.workers.append(self._worker(role, handler))
            self.workers.append(self._dead_letter_worker(role, reporter))

    async def run(self, stop: asyncio.Event) -> None:
        """Serve every role until ``stop`` is set, then drain within ``drain_grace_s``."""
        grace = max(self.config.drain_grace_s - _CLOSE_RESERVE_S, 0.5)
        serving = [
            asyncio.create_task(w.run(stop, drain_grace_s=grace), name=f"worker:{w.settings.name}")
            for w in self.workers
        ]
        try:
            await stop.wait()
            self._draining = True
            log.info("draining", roles=list(self.roles), grace_s=self.config.drain_grace_s)
            await asyncio.gather(*serving)
        finally:
            for task in serving:
                task.cancel()
            await asyncio.gather(*serving, return_exceptions=True)
            if self._nc is not None and self._nc.is_connected:
                # Acks and naks are plain publishes: push them out before we go.
                with contextlib.suppress(Exception):
                    await self._nc.flush(timeout=int(_CLOSE_RESERVE_S))
            settled = {
                w.settings.name: {str(k): v for k, v in w.settled.items()} for w in self.workers
            }
            log.info("drained", settled=settled)

    async def close(self) -> None:
        """Stop the status service and connection, wait for sandbox threads, stop the rest."""
        self._draining = True
        self._closing = True
        if self._status is not None:
            await self._status.stop()
            self._status = None
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.close()
        for executor in self._executors:
            # Runs end by their own deadline; the epoch ticker must outlive them.
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        if self._health is not None:
            await self._health.close()
            self._health = None

    # -- start ---------------------------------------------------------------

    async def _start_status(self) -> None:
        # Every worker answers status queries (one queue group), so the API is
        # up whenever any worker is.
        assert self.results is not None
        reader = StatusReader(
            self.nc,
            self.config.topology,
            self.results,
            kinds=tuple(kind for role in self.config.roles.values() for kind in role.kinds),
            timeout_s=self.config.nats.request_timeout_s,
        )
        self._status = StatusService(self.nc, reader, self.config.topology, self.worker_id)
        await self._status.start()

    async def _connect(self, stop: asyncio.Event, *, retry: bool) -> None:
        settings = self.config.nats
        # One warning per failed attempt, at most every few seconds: a worker
        # started before its server must not flood the log while it waits.
        pause = max(settings.reconnect_wait_s, _START_RETRY_S)
        while self._nc is None:
            attempt = asyncio.ensure_future(
                connect(
                    settings,
                    name=f"gitstore-agents/{self.worker_id}",
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    error_cb=self._on_error,
                    closed_cb=self._on_closed,
                )
            )
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({attempt, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                if not attempt.done():
                    # Stopped mid-attempt: cancelling closes the half-made client.
                    attempt.cancel()
                    with contextlib.suppress(BaseException):
                        await attempt
            if not attempt.cancelled() and attempt.exception() is None:
                self._nc = attempt.result()  # close() closes it, even when stopping now
            if stop.is_set():
                raise NatsUnreachableError(
                    f"stopped while connecting to NATS at {settings.url}", cause="stopped"
                )
            if self._nc is not None:
                break
            error = attempt.exception()
            assert error is not None
            if not retry or not isinstance(error, NatsUnreachableError):
                raise error
            log.warning(
                "cannot connect to NATS; retrying",
                url=settings.url,
                error=error.cause,
                retry_in_s=pause,
            )
            await _sleep_unless(stop, pause)
            if stop.is_set():
                raise error
        self._connected = True
        self._js = self._nc.jetstream(timeout=settings.request_timeout_s)

    async def _ensure_topology(self, stop: asyncio.Event, *, retry: bool) -> None:
        while True:
            try:
                if self.config.provision_on_start:
                    await provision(self.js, self.config, self.roles)
                else:
                    await verify(self.js, self.config, self.roles)
            except (TopologyError, nats.errors.Error, TimeoutError) as exc:
                if stop.is_set() or not retry:
                    raise
                log.warning("topology not ready; retrying", error=str(exc))
                await _sleep_unless(stop, _START_RETRY_S)
            else:
                return

    async def _on_disconnected(self) -> None:
        self._connected = False
        if self._closing:
            return
        log.warning("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        self._connected = True
        url = self._nc.connected_url.netloc if self._nc and self._nc.connected_url else "?"
        log.info("reconnected to NATS", server=url)
        # The server may have lost our pull requests (a restart): ask again now.
        for worker in self.workers:
            worker.pull.forget_request()

    async def _on_error(self, exc: Exception) -> None:
        violation = self.violations.observe(exc)
        if violation is not None:
            # The server-side boundary refused something this process tried:
            # its permissions and this role's subjects disagree (or the process
            # misbehaves). The task that tried gets a diagnostic (its publish
            # fails as publish-permission-denied); this line is for operators.
            log.error(
                "NATS refused: permissions violation",
                code="publish-permission-denied"
                if violation.operation == "publish"
                else "subscribe-permission-denied",
                operation=violation.operation,
                subject=violation.subject,
                violations=self.violations.total,
            )
            return
        log.error("NATS error", error=repr(exc))

    async def _on_closed(self) -> None:
        self._connected = False
        log.info("NATS connection closed")

    # -- roles ---------------------------------------------------------------

    def _reporter(self, role: str) -> Reporter:
        """The role's one way out (boundary, publisher) and its one report path."""
        config = self.config
        # The same subjects the role's NATS user is granted (policy nats-config).
        allowed = list(publish_subjects(self.policy, role))
        subjects = config.topology.subjects
        if self._audit_as is not None:
            allowed = [s for s in allowed if s != subjects.audit_of_role(role)]
            allowed.append(subjects.audit_of_role(self._audit_as))
        boundary = PublishBoundary(self.js, allowed, violations=self.violations)
        publisher = JetStreamPublisher(boundary, timeout_s=config.publish_timeout_s)
        return Reporter(
            role=role,
            worker_id=self.worker_id,
            subjects=subjects,
            publisher=publisher,
            audit=AuditLog(publisher, subjects, self._audit_as or role),
            observer=self.observer,
            backoff_s=config.role(role).backoff_s,
        )

    async def _handler(self, role: str, reporter: Reporter) -> Handler:
        assert self.modules is not None
        config, settings = self.config, self.config.role(role)
        topology = config.topology
        if role == PLANNER:
            _, compile_kind = config.kind(MARKDOWN_COMPILE)
            return PlannerHandler(
                topology.subjects,
                {MARKDOWN_COMPILE: await self.modules.digest(compile_kind.module)},
                reporter.publisher,
                reporter,
                limits={MARKDOWN_COMPILE: self._limits(MARKDOWN_COMPILE, compile_kind.limits)},
                content=self.content,
            )
        kinds = tuple(sorted(settings.kinds))
        allowed: dict[str, KindAllowance] = {}
        for kind in kinds:
            kind_config = settings.kinds[kind]
            refs = [kind_config.module] + [
                e.module for e in kind_config.extensions if e.module is not None
            ]
            digests = set()
            for ref in refs:
                # Warm the cache: every module this role may run is compiled now.
                await self.modules.load(ref)
                digests.add(await self.modules.digest(ref))
            allowed[kind] = KindAllowance(
                modules=frozenset(digests),
                ceilings=self._limits(kind, kind_config.limits).ceilings(),
            )
        follow_ups = tuple([await self._follow_up(kind) for kind in settings.follow_ups])
        executor = ThreadPoolExecutor(settings.concurrency, thread_name_prefix=f"sandbox-{role}")
        self._executors.append(executor)
        assert self._sandbox is not None
        return TaskHandler(
            settings=TaskSettings(
                role=role,
                kinds=kinds,
                follow_ups=follow_ups,
                validation_stream=topology.validation_stream,
                failures_stream=topology.failures_stream,
            ),
            offload=SandboxOffload(self._sandbox, executor, inline_fuel=settings.inline_fuel),
            modules=self.modules,
            publisher=reporter.publisher,
            reporter=reporter,
            subjects=topology.subjects,
            admission=self._admission(role, allowed),
            output_check=self._output_check,
            results=self.results,
            content=self.content,
        )

    def _limits(self, kind: str, limits: LimitsConfig) -> LimitsConfig:
        """``limits`` with their growth capped by the policy's ceilings for ``kind``."""
        return self.policy.kind_limits(kind, limits)

    async def _follow_up(self, kind: str) -> FollowUpSpec:
        assert self.modules is not None
        _, kind_config = self.config.kind(kind)
        digest = await self.modules.digest(kind_config.module)
        extensions = []
        if kind == EXTENSION_RUN:
            for extension in kind_config.extensions:
                ref = extension.module or kind_config.module
                extensions.append((extension, await self.modules.digest(ref)))
        return FollowUpSpec(
            kind=kind,
            module_digest=digest,
            limits=self._limits(kind, kind_config.limits),
            extensions=tuple(extensions),
        )

    def _worker(self, role: str, handler: Handler) -> PullWorker:
        settings = self.config.role(role)
        spec = role_consumer(self.config, role)
        return PullWorker(
            self.nc,
            WorkerSettings(
                name=role,
                stream=spec.stream,
                durable=spec.durable,
                concurrency=settings.concurrency,
                batch=settings.batch,
                ack_wait_s=settings.ack_wait_s,
                consumer_backoff_s=spec.backoff_s,
                fetch_expires_s=settings.fetch_expires_s,
                fetch_heartbeat_s=settings.fetch_heartbeat_s,
            ),
            handler,
            ensure_consumer=self._check_consumer(spec),
        )

    def _dead_letter_worker(self, role: str, reporter: Reporter) -> PullWorker:
        settings = self.config.role(role)
        spec = dead_letter_consumer(self.config, role)
        topology = self.config.topology
        kinds = (GIT_PUSH,) if role == PLANNER else tuple(sorted(settings.kinds))
        js, nc, timeout_s = self.js, self.nc, self.config.nats.request_timeout_s

        async def read(stream: str, seq: int) -> RawStreamMsg:
            return await js.get_msg(stream, seq)

        async def trail(event_id: str) -> list[TrailEntry]:
            return await read_trail(
                nc,
                topology.audit_stream,
                topology.subjects.audit_of_event(event_id),
                timeout_s=timeout_s,
            )

        writer = DeadLetterWriter(
            read=read, trail=trail, reporter=reporter, topology=topology, kinds=kinds
        )
        return PullWorker(
            self.nc,
            WorkerSettings(
                name=f"{role}-dead-letters",
                stream=spec.stream,
                durable=spec.durable,
                concurrency=_DEAD_LETTER_CONCURRENCY,
                batch=_DEAD_LETTER_CONCURRENCY,
                ack_wait_s=spec.ack_wait_s,
                fetch_expires_s=settings.fetch_expires_s,
                fetch_heartbeat_s=settings.fetch_heartbeat_s,
            ),
            writer,
            ensure_consumer=self._check_consumer(spec),
        )

    def _check_consumer(self, spec: ConsumerSpec) -> Callable[[], Awaitable[None]]:
        # A durable that disappears is not recreated here: an operator may be
        # rewinding it (`nats consumer rm` then `nats consumer add --deliver
        # <seq>`), and recreating it with deliver-all would race them. The
        # worker stays unready until the durable is back (or a restart's
        # provisioning recreates it).
        async def check() -> None:
            await self.js.consumer_info(spec.stream, spec.durable)

        return check


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
