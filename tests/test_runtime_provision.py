"""Provisioning is idempotent and keeps what an operator chose for a durable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest
from bench._cluster import NatsCluster
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from gitstore_agents.config import PLANNER, ROLES, Topology
from gitstore_agents.consumers import dead_letter_consumer, provision_buckets, role_consumer

from .runtime_support import cli, runtime_config, write_config
from .support import eventually


async def test_provision_twice_then_keep_an_operators_rewind(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    for _ in range(2):
        code, out = await cli("provision", "--config", str(config_file))
        assert code == 0, out
    js = nc.jetstream()
    for stream in topology.stream_configs():
        assert stream.name is not None
        await js.stream_info(stream.name)
    await js.key_value(topology.ledger_bucket)
    await js.object_store(topology.modules_bucket)
    for role in ROLES:
        for spec in (role_consumer(config, role), dead_letter_consumer(config, role)):
            info = await js.consumer_info(spec.stream, spec.durable)
            assert info.config.max_deliver == spec.max_deliver

    # An operator rewinds the planner (`nats consumer rm` + `nats consumer add
    # --deliver 5 --wait 30s`); provisioning restores our settings, not the start.
    spec = role_consumer(config, PLANNER)
    await js.delete_consumer(spec.stream, spec.durable)
    await js.add_consumer(
        spec.stream,
        ConsumerConfig(
            durable_name=spec.durable,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=5,
            ack_wait=30,
            filter_subject=spec.filter_subject,
        ),
    )
    code, out = await cli("provision", "--config", str(config_file))
    assert code == 0, out
    info = await js.consumer_info(spec.stream, spec.durable)
    assert (info.config.deliver_policy, info.config.opt_start_seq) == (
        DeliverPolicy.BY_START_SEQUENCE,
        5,
    )
    assert info.config.backoff == pytest.approx(list(spec.backoff_s))
    assert info.config.ack_wait == pytest.approx(spec.backoff_s[0])


async def test_provisioning_raises_the_replicas_of_existing_buckets(tmp_path: Path) -> None:
    # An install moved from one server to a cluster re-provisions with
    # replicas: 3; the ledger and the object stores must follow the streams.
    with NatsCluster(tmp_path) as cluster:
        nc = await nats.connect(servers=cluster.url.split(","))
        try:
            js = nc.jetstream(timeout=10)
            await eventually(_jetstream_ready(js), bool, timeout_s=30, what="a meta leader")
            single = Topology()
            await provision_buckets(js, single)
            await provision_buckets(js, msgspec.structs.replace(single, replicas=3))
            for stream in (
                f"KV_{single.ledger_bucket}",
                f"OBJ_{single.modules_bucket}",
                f"OBJ_{single.content_bucket}",
            ):
                info = await js.stream_info(stream)
                assert info.config.num_replicas == 3, stream
        finally:
            await nc.close()


def _jetstream_ready(js: JetStreamContext) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        try:
            await js.account_info()
        except (nats.errors.Error, TimeoutError):
            return False
        return True

    return probe
