"""Publication: the only publisher a task path can reach sends where the policy says.

Handlers receive a ``Delivery`` (plain data, no message or connection) and everything they can
reach that holds a NATS connection is one of four gatekeepers: the role's ``PublishBoundary``
(the policy's subjects only), the ``JetStreamResults`` (direct gets of slots: reads only),
the ``ModuleStore`` and the ``ContentStore`` (their object stores). The boundary refuses every
other subject before anything is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from gitstore_agents.config import ROLES, Topology
from gitstore_agents.consumers import Delivery, JetStreamPublisher, JetStreamResults
from gitstore_agents.envelopes import ContentStore
from gitstore_agents.guardrails import (
    Outbound,
    PublishBoundary,
    PublishRefusedError,
    publish_subjects,
    subject_matches,
)
from gitstore_agents.sandbox import ModuleStore

from .runtime_support import running, runtime_config

NATS_TYPES = (Client, JetStreamContext, KeyValue, ObjectStore)
GATEKEEPERS = (PublishBoundary, JetStreamResults, ModuleStore, ContentStore)


async def test_the_boundary_refuses_other_subjects_before_sending(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="EVERYTHING", subjects=["x.>"]))
    boundary = PublishBoundary(js, ["x.validation.markdown.compile", "x.audit.>"])
    for subject in ("x.validation.catalog.enrich", "x.events.git.push.r", "x.audit", "x.>"):
        with pytest.raises(PublishRefusedError, match="outside this role's allowed subjects"):
            await boundary.publish_async(Outbound(subject=subject, payload=b"forged"))
    ack = await (await boundary.publish_async(Outbound(subject="x.audit.e", payload=b"{}")))
    assert ack.seq == 1
    assert (await js.stream_info("EVERYTHING")).state.messages == 1


def test_a_delivery_is_plain_data() -> None:
    # What a handler is given cannot publish, ack or reach the connection.
    types = {field.name: field.type for field in msgspec.structs.fields(Delivery)}
    assert set(types) == {
        "subject",
        "data",
        "headers",
        "stream",
        "stream_seq",
        "consumer",
        "num_delivered",
        "num_pending",
    }
    assert all(t in (str, bytes, int, dict[str, str]) for t in types.values()), types


def _holders(root: Any) -> dict[str, str]:
    """Path -> the package class that directly holds a NATS object, for everything ``root``
    reaches through attributes and containers (stopping at foreign objects)."""
    found: dict[str, str] = {}
    seen: set[int] = set()
    stack: list[tuple[str, Any, str]] = [("handler", root, type(root).__name__)]
    while stack:
        path, obj, owner = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, NATS_TYPES):
            found[path] = owner
            continue
        if isinstance(obj, dict):
            stack += [(f"{path}[{k!r}]", v, owner) for k, v in obj.items()]
            continue
        if isinstance(obj, list | tuple | set | frozenset):
            stack += [(f"{path}[{i}]", v, owner) for i, v in enumerate(obj)]
            continue
        if not type(obj).__module__.startswith("gitstore_agents"):
            continue
        attributes = dict(getattr(obj, "__dict__", {}))
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                attributes[slot] = getattr(obj, slot)
        stack += [(f"{path}.{k}", v, type(obj).__name__) for k, v in attributes.items()]
    return found


def _attributes(path: str) -> list[str]:
    return [segment.split("[")[0] for segment in path.split(".")[1:]]


async def test_handlers_reach_nats_only_through_gatekeepers(
    nats_url: str, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    async with running(config) as runtime:
        for role, handler in runtime.handlers.items():
            holders = _holders(handler)
            assert holders, role  # it does publish: through something
            assert set(holders.values()) <= {g.__name__ for g in GATEKEEPERS}, holders
            # No chain of public attributes leads to a connection: only private state does.
            public = [p for p in holders if not any(a.startswith("_") for a in _attributes(p))]
            assert public == [], public


async def test_each_boundary_allows_exactly_the_policys_subjects(
    nats_url: str, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    async with running(config) as runtime:
        for role in ROLES:
            publisher = runtime.reporters[role].publisher
            assert isinstance(publisher, JetStreamPublisher)
            boundary = publisher.boundary
            expected = publish_subjects(runtime.policy, role)
            assert boundary.allowed == expected
            s = topology.subjects
            # What a role may never reach, whatever its handler does.
            for forbidden in (s.git_push("r1"), "catalog.products", s.validation_all()):
                assert not any(subject_matches(p, forbidden) for p in boundary.allowed)
            if role != "planner":
                assert s.tasks_of("markdown.compile") not in boundary.allowed
            # Audit records in its own name only.
            assert [p for p in boundary.allowed if ".audit." in p] == [s.audit_of_role(role)]
