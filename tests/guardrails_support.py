"""Helpers for guardrail tests: policies, and a nats-server running the generated permissions.

``SecureNats`` starts the bundled nats-server with the ``authorization`` block
that ``gitstore-agents policy nats-config`` generates for a policy, plus one
test-only ``admin`` user standing in for the control plane (it publishes git
events and reads every stream). Workers connect as their role's user with
their role's inbox prefix, as in a deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from gitstore_agents.config import (
    CATALOG_ENRICH,
    EXTENSION_RUN,
    MARKDOWN_COMPILE,
    Config,
    Topology,
    load_config,
)
from gitstore_agents.consumers import provision
from gitstore_agents.embedded import NatsServer
from gitstore_agents.guardrails import (
    IDENTITIES,
    PROVISIONER,
    NatsUser,
    Permissions,
    Policy,
    authorization_config,
    inbox_prefix,
    nats_users,
)
from gitstore_agents.service import Runtime

ADMIN = "admin"
TASK_TIMEOUT_MS = 2000
# ack wait >= deadline + publish_timeout_s + 2 x request_timeout_s (the config rule).
ACK_WAIT_S = 5.0

# The reference modules, allowed by name; every role may touch products/ only.
BASE_POLICY = """\
version: 1
subject_prefix: gitstore
roles:
  planner:
    publishes_tasks: [markdown.compile]
  markdown-compiler:
    kinds: [markdown.compile]
    modules: {reference: [markdown-compile]}
    ceilings: {fuel: 1000000000, timeout_ms: 2000}
    paths: ["products/**/*.md"]
    publishes_tasks: [catalog.enrich, extension.run]
  enricher:
    kinds: [catalog.enrich]
    modules: {reference: [catalog-enrich]}
    ceilings: {fuel: 1000000000, timeout_ms: 2000}
    paths: ["products/**/*.md"]
  extension-runner:
    kinds: [extension.run]
    modules: {reference: [extension-sample]}
    ceilings: {fuel: 1000000000, timeout_ms: 2000}
    paths: ["products/**/*.md"]
"""


def write_policy(tmp_path: Path, text: str = BASE_POLICY, name: str = "policy.yaml") -> Path:
    """Write a policy file and return its path."""
    path = tmp_path / name
    path.write_text(text)
    return path


def role_settings(**overrides: Any) -> dict[str, Any]:
    """Short timings for a role's configuration (retries within a test's lifetime)."""
    return {
        "ack_wait_s": ACK_WAIT_S,
        "backoff_s": [0.2],
        "max_deliver": 2,
        "fetch_expires_s": 1.0,
        "fetch_heartbeat_s": 0.25,
        **overrides,
    }


def worker_config(
    url: str,
    policy_file: Path,
    *,
    identity: str | None = None,
    password: str | None = None,
    modules: Mapping[str, str] | None = None,
    roles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """A worker configuration for every role, connecting as ``identity`` (if given).

    Modules default to the reference modules; limits stay within ``BASE_POLICY``.
    """
    modules = {
        MARKDOWN_COMPILE: "reference:markdown-compile",
        CATALOG_ENRICH: "reference:catalog-enrich",
        EXTENSION_RUN: "reference:extension-sample",
        **(modules or {}),
    }
    # Flat limits (no growth with the input): within BASE_POLICY, timed by the tests.
    limits = {
        "fuel": 1_000_000_000,
        "timeout_ms": TASK_TIMEOUT_MS,
        "per_input_mib": {"fuel": 0, "timeout_ms": 0, "memory_bytes": 0},
        "max_fuel": None,
        "max_timeout_ms": None,
        "max_memory_bytes": None,
    }
    role_data: dict[str, Any] = {
        "planner": role_settings(),
        "markdown-compiler": role_settings(
            kinds={MARKDOWN_COMPILE: {"module": modules[MARKDOWN_COMPILE], "limits": limits}},
            follow_ups=[CATALOG_ENRICH, EXTENSION_RUN],
        ),
        "enricher": role_settings(
            kinds={CATALOG_ENRICH: {"module": modules[CATALOG_ENRICH], "limits": limits}}
        ),
        "extension-runner": role_settings(
            kinds={
                EXTENSION_RUN: {
                    "module": modules[EXTENSION_RUN],
                    "limits": limits,
                    "extensions": [{"name": "seo-lint", "version": "1.0.0"}],
                }
            }
        ),
    }
    for role, extra in (roles or {}).items():
        role_data[role] = {**role_data[role], **extra}
    nats_settings: dict[str, Any] = {"url": url, "request_timeout_s": 1.0, "reconnect_wait_s": 0.1}
    if identity is not None:
        nats_settings.update(user=identity, password=password, inbox_prefix=inbox_prefix(identity))
    return load_config(
        env={},
        overrides={
            "nats": nats_settings,
            "health": {"port": None},
            "publish_timeout_s": 1.0,
            "drain_grace_s": 8.0,
            "provision_on_start": False,
            "policy_file": str(policy_file),
            "worker_id": identity or "test",
            "roles": role_data,
        },
    )


class SecureNats:
    """A nats-server running the permissions generated from ``policy``.

    Args:
        store_dir: Where the server keeps its data and config.
        policy: The policy to generate permissions from.
        topology: Stream and bucket names.
        edit: Changes the generated users before the server starts (to
            simulate a server whose permissions disagree with the policy).
    """

    def __init__(
        self,
        store_dir: Path,
        policy: Policy,
        topology: Topology | None = None,
        *,
        edit: Callable[[list[NatsUser]], list[NatsUser]] | None = None,
    ) -> None:
        self.policy = policy
        self.topology = topology or Topology()
        self.passwords = {identity: f"secret-{identity}" for identity in (*IDENTITIES, ADMIN)}
        users = nats_users(policy, self.topology, passwords=self.passwords)
        if edit is not None:
            users = edit(users)
        self.users = users
        admin = NatsUser(
            identity=ADMIN,
            user=ADMIN,
            password=self.passwords[ADMIN],
            permissions=Permissions(publish=(">",), subscribe=(">",)),
        )
        self.config_text = authorization_config([*users, admin])
        self.server = NatsServer(store_dir, extra_config=self.config_text)
        self._clients: list[Client] = []

    @property
    def url(self) -> str:
        """The server's URL."""
        return self.server.url

    def start(self) -> SecureNats:
        """Start the server."""
        self.server.start()
        return self

    async def close(self) -> None:
        """Close every connection opened here and stop the server."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.close()
        self.server.stop()

    async def connect(self, identity: str, errors: list[str] | None = None) -> Client:
        """A connection as ``identity`` (its user, password and inbox prefix)."""

        async def error_cb(exc: Exception) -> None:
            if errors is not None:
                errors.append(str(exc))

        client = await nats.connect(
            self.url,
            user=identity,
            password=self.passwords[identity],
            inbox_prefix=inbox_prefix(identity) if identity != ADMIN else "_INBOX",
            error_cb=error_cb,
            allow_reconnect=False,
        )
        self._clients.append(client)
        return client

    async def admin_js(self) -> JetStreamContext:
        """JetStream as the control plane (the test's own view of every stream)."""
        return (await self.connect(ADMIN)).jetstream(timeout=2.0)

    async def provision(self, config: Config) -> None:
        """Create the topology as the provisioning job does, with its credentials."""
        client = await self.connect(PROVISIONER)
        await provision(client.jetstream(timeout=2.0), config)

    def config_for(self, policy_file: Path, identity: str, **kwargs: Any) -> Config:
        """``worker_config`` connecting as ``identity``."""
        return worker_config(
            self.url, policy_file, identity=identity, password=self.passwords[identity], **kwargs
        )


@contextlib.asynccontextmanager
async def serving(
    configs: Iterable[tuple[Config, Sequence[str]]], **kwargs: Any
) -> AsyncIterator[list[Runtime]]:
    """Started runtimes (one per ``(config, roles)``) serving until the block ends."""
    runtimes: list[Runtime] = []
    stops: list[asyncio.Event] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for config, roles in configs:
            runtime = Runtime(config, roles, **kwargs)
            stop = asyncio.Event()
            runtimes.append(runtime)
            await runtime.start(stop)
            stops.append(stop)
            tasks.append(asyncio.create_task(runtime.run(stop)))
        yield runtimes
    finally:
        for stop in stops:
            stop.set()
        for task in tasks:
            await task
        for runtime in runtimes:
            await runtime.close()
