"""Pipeline: what each delivery means, from decode to the decision that settles it.

The roles' handlers live here: the planner turns a git event into tasks, a
task handler runs one task in the sandbox and proposes its output for
validation, the dead-letter writer records messages whose deliveries ran out.
Each handler receives a ``consumers.Delivery``, publishes only through its
role's ``guardrails.PublishBoundary`` and returns a ``consumers.Decision``;
the JetStream side settles the message by it.
"""

from ._dead_letters import DeadLetterWriter, MaxDeliveriesAdvisory, dead_letter_id
from ._derive import derive_task
from ._follow_ups import FollowUpSpec, follow_up_tasks
from ._modules import ModuleLoader
from ._offload import SandboxOffload
from ._planner import PlannerHandler, plan_tasks
from ._task import INPUT_REJECTED_EXIT_CODE, Execution, TaskHandler, TaskSettings

__all__ = [
    "INPUT_REJECTED_EXIT_CODE",
    "DeadLetterWriter",
    "Execution",
    "FollowUpSpec",
    "MaxDeliveriesAdvisory",
    "ModuleLoader",
    "PlannerHandler",
    "SandboxOffload",
    "TaskHandler",
    "TaskSettings",
    "dead_letter_id",
    "derive_task",
    "follow_up_tasks",
    "plan_tasks",
]
