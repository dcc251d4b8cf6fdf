"""Consumers: JetStream topology, roles and the worker loop.

Durable pull consumers feed workers; a message is settled only after every
result it produced has a PubAck.
"""

from ._decision import Decision, Handler, Settle
from ._planner import MARKDOWN_COMPILE, PlannerHandler, plan_tasks
from ._runtime import MARKDOWN_COMPILER, PLANNER, ROLES, Runtime
from ._task_handler import TaskHandler
from ._topology import ConsumerSpec, Topology, provision_consumer, provision_streams
from ._worker import PullWorker

__all__ = [
    "MARKDOWN_COMPILE",
    "MARKDOWN_COMPILER",
    "PLANNER",
    "ROLES",
    "ConsumerSpec",
    "Decision",
    "Handler",
    "PlannerHandler",
    "PullWorker",
    "Runtime",
    "Settle",
    "TaskHandler",
    "Topology",
    "plan_tasks",
    "provision_consumer",
    "provision_streams",
]
