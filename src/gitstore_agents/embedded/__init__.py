"""Embedded: the default that needs nothing else, a bundled nats-server and the ``dev`` command."""

from ._dev import expected_task_count, publish_git_event, run_dev, wait_for_validation
from ._nats_server import NatsServer, NatsServerError, nats_server_binary

__all__ = [
    "NatsServer",
    "NatsServerError",
    "expected_task_count",
    "nats_server_binary",
    "publish_git_event",
    "run_dev",
    "wait_for_validation",
]
