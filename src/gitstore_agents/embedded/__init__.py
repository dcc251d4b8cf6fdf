"""Embedded: the default that needs nothing else, a bundled nats-server and the ``dev`` command."""

from ._dev import (
    Outcome,
    expected_task_count,
    publish_git_event,
    run_dev,
    sample_event,
    task_outcomes,
    wait_for_validation,
)
from ._nats_server import NatsServer, NatsServerError, nats_server_binary

__all__ = [
    "NatsServer",
    "NatsServerError",
    "Outcome",
    "expected_task_count",
    "nats_server_binary",
    "publish_git_event",
    "run_dev",
    "sample_event",
    "task_outcomes",
    "wait_for_validation",
]
