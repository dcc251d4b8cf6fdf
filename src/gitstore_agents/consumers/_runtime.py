"""Assemble roles into a running worker process."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import nats
import structlog
from nats.aio.client import Client

from ..envelopes import ContentStore
from ..errors import ConfigError
from ..guardrails import PublishBoundary
from ..sandbox import ModuleRegistry, Sandbox, default_cache_dir, provision_module_store
from ._decision import Handler
from ._planner import MARKDOWN_COMPILE, PlannerHandler
from ._task_handler import TaskHandler
from ._topology import ConsumerSpec, Topology, provision_consumer, provision_streams
from ._worker import PullWorker

log = structlog.get_logger(__name__)

PLANNER = "planner"
MARKDOWN_COMPILER = "markdown-compiler"
ROLES = (PLANNER, MARKDOWN_COMPILER)


class Runtime:
    """One worker process: a NATS connection, a sandbox, and a pull worker per role.

    Args:
        nats_url: Server(s) to connect to.
        topology: Stream and subject names.
        roles: Role names to run in this process.
        sandbox_threads: Threads for concurrent sandbox runs.
    """

    def __init__(
        self,
        nats_url: str,
        topology: Topology,
        roles: tuple[str, ...] = ROLES,
        *,
        sandbox_threads: int = 4,
    ) -> None:
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ConfigError(f"roles={unknown} are not known roles; known: {list(ROLES)}")
        self.nats_url = nats_url
        self.topology = topology
        self.roles = roles
        self._sandbox_threads = sandbox_threads
        self._nc: Client | None = None
        self._sandbox: Sandbox | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.workers: list[PullWorker] = []

    @property
    def nc(self) -> Client:
        """The live NATS connection (after ``start``)."""
        assert self._nc is not None, "Runtime.start() first"
        return self._nc

    async def start(self) -> None:
        """Connect, provision the topology, compile modules, bind consumers."""
        self._nc = await nats.connect(self.nats_url, name="gitstore-agents")
        js = self._nc.jetstream()
        await provision_streams(js, self.topology)
        content = await ContentStore.open(js)
        self._sandbox = Sandbox(cache_dir=default_cache_dir())
        registry = ModuleRegistry(self._sandbox, await provision_module_store(js))
        digests = registry.register_reference_modules()
        modules = {MARKDOWN_COMPILE: digests["markdown-compile"]}
        self._executor = ThreadPoolExecutor(self._sandbox_threads, thread_name_prefix="sandbox")
        subjects = self.topology.subjects
        for role in self.roles:
            handler: Handler
            if role == PLANNER:
                spec = ConsumerSpec(
                    stream=self.topology.events_stream,
                    durable=PLANNER,
                    filter_subject=subjects.git_push_all(),
                )
                handler = PlannerHandler(subjects, modules, content)
                allowed = [subjects.tasks_all()]
            else:
                spec = ConsumerSpec(
                    stream=self.topology.tasks_stream,
                    durable=MARKDOWN_COMPILER,
                    filter_subject=subjects.task(MARKDOWN_COMPILE),
                )
                handler = TaskHandler(self._sandbox, registry, subjects, self._executor)
                allowed = [subjects.validation(MARKDOWN_COMPILE)]
            await provision_consumer(js, spec)
            self.workers.append(PullWorker(js, spec, handler, PublishBoundary(js, allowed)))
        log.info("runtime started", roles=list(self.roles), nats_url=self.nats_url)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve every role until ``stop`` is set."""
        await asyncio.gather(*(w.run(stop) for w in self.workers))

    async def close(self) -> None:
        """Flush and close the connection, stop the sandbox."""
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.drain()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._sandbox is not None:
            self._sandbox.close()
