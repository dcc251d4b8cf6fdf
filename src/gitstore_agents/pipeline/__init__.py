"""Pipeline: what each delivery means, from decode to the decision that settles it.

The roles' handlers live here: the planner turns a git event into tasks, a
task handler runs one task in the sandbox and proposes its output for
validation, the dead-letter writer records messages whose deliveries ran out.
Each handler receives a ``consumers.Delivery``, publishes only through its
role's ``consumers.Publisher`` (behind the role's publish boundary), ends
every failure on the one report path (``Reporter``) and returns a
``consumers.Decision``; the JetStream side settles the message by it.
``run_task``/``judge`` decide what a run means for workers, ``replay
--verify`` and ``sandbox run`` alike.
"""

from ._audit import AuditLog
from ._carry import Carrier
from ._dead_letters import (
    DeadLetterWriter,
    MaxDeliveriesAdvisory,
    StreamReader,
    TrailReader,
    dead_letter_id,
)
from ._derive import Derived, derive_task, with_module
from ._execute import INPUT_REJECTED_EXIT_CODE, Execution, Runner, field_errors, judge, run_task
from ._follow_ups import FollowUpSpec, follow_up_tasks
from ._modules import ModuleLoader, configured_digests, reference_digest
from ._offload import SandboxOffload
from ._planner import PlannerHandler, plan_tasks
from ._report import About, Failure, Reporter, classify, envelope_headers, stderr_tail
from ._task import LOOKUP_FUEL, TaskHandler, TaskSettings

__all__ = [
    "INPUT_REJECTED_EXIT_CODE",
    "LOOKUP_FUEL",
    "About",
    "AuditLog",
    "Carrier",
    "DeadLetterWriter",
    "Derived",
    "Execution",
    "Failure",
    "FollowUpSpec",
    "MaxDeliveriesAdvisory",
    "ModuleLoader",
    "PlannerHandler",
    "Reporter",
    "Runner",
    "SandboxOffload",
    "StreamReader",
    "TaskHandler",
    "TaskSettings",
    "TrailReader",
    "classify",
    "configured_digests",
    "dead_letter_id",
    "derive_task",
    "envelope_headers",
    "field_errors",
    "follow_up_tasks",
    "judge",
    "plan_tasks",
    "reference_digest",
    "run_task",
    "stderr_tail",
    "with_module",
]
