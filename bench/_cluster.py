"""A 3-node nats-server cluster on loopback ports, JetStream in each node.

Each node is a ``gitstore_agents.embedded.NatsServer`` (its own store dir,
``sync_interval: always``) with a ``server_name`` and a ``cluster`` block whose
routes name every node, so R3 streams (``topology.replicas: 3``) keep working
while any one node is down. Route ports are picked up front (every node must
know them); client ports are picked by the servers and kept across restarts.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import TracebackType

from gitstore_agents.embedded import NatsServer

CLUSTER_NAME = "gitstore-bench"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class NatsCluster:
    """Three (or ``size``) clustered nats-server processes under ``folder``.

    Args:
        folder: One sub-folder per node (store, config, log).
        size: Number of nodes.
    """

    def __init__(self, folder: Path, size: int = 3) -> None:
        route_ports = _free_ports(size)
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route_ports)
        self.nodes: list[NatsServer] = []
        for number, port in enumerate(route_ports, start=1):
            name = f"n{number}"
            extra = (
                f"server_name: {name}\n"
                f"cluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:{port}\n"
                f"  routes: [{routes}]\n}}\n"
            )
            self.nodes.append(NatsServer(folder / name, extra_config=extra))

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (the ``nats.url`` form)."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> NatsServer:
        """The node whose ``server_name`` is ``name`` (``n1``, ``n2``...)."""
        return self.nodes[int(name.removeprefix("n")) - 1]

    def start(self) -> NatsCluster:
        """Start every node (JetStream becomes usable once a meta leader is elected)."""
        for node in self.nodes:
            node.start()
        return self

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
