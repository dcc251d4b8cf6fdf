"""Consumers: the worker runtime — roles, the pull loop, retries, the ledger, dead letters.

At-least-once delivery from JetStream becomes exactly one result per task:
every publish carries a ``Nats-Msg-Id`` (JetStream drops repeats within its
duplicate window), a KV ledger claimed with revision checks stops repeats
beyond it, and a message is settled only after every result it produced has a
PubAck. See ``docs/operations.md`` for the reasoning at each crash point.
"""

from ..config import (
    CATALOG_ENRICH,
    ENRICHER,
    EXTENSION_RUN,
    EXTENSION_RUNNER,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    ROLES,
    Topology,
)
from ._connect import connect, connect_options
from ._dead_letters import (
    DeadLetterEntry,
    DeadLetterNotFoundError,
    DeadLetterWriter,
    RequeueRecord,
    dead_letter_id,
    list_dead_letters,
    read_subject,
    requeue_dead_letter,
)
from ._decision import Decision, Handler, Settle
from ._delivery import Delivery
from ._errors import (
    ContentUnavailableError,
    LedgerUnavailableError,
    PublishFailedError,
    TopologyError,
)
from ._follow_ups import FollowUpSpec, follow_up_tasks
from ._health import HealthServer
from ._ledger import Busy, Claim, Ledger, RunRecord, RunState, Settled, ledger_key
from ._modules import ModuleLoader, upload_reference_modules
from ._observer import DecisionRecord, LogObserver, Observer
from ._planner import PlannerHandler, plan_tasks
from ._publisher import publish_confirmed
from ._replay import ReplayReport, replay_stream
from ._retry import nak_delay_for, retry_delay_s
from ._runtime import Runtime, default_worker_id
from ._stages import (
    Admission,
    BasicAdmission,
    BasicOutputCheck,
    KindAllowance,
    OutputCheck,
    Refusal,
)
from ._status import (
    STATUS_QUEUE_GROUP,
    STATUS_SERVICE,
    STATUS_VERSION,
    TRACE_ID_HEADER,
    EventStatus,
    KeyStatus,
    StatusReader,
    StatusRequestError,
    StatusService,
    StatusUnavailableError,
    TaskStatus,
    ask_status,
    ping_status,
    status_subject,
)
from ._task_handler import TaskHandler, TaskSettings
from ._topology import (
    ConsumerSpec,
    dead_letter_consumer,
    provision,
    provision_buckets,
    provision_consumer,
    provision_streams,
    role_consumer,
    verify,
)
from ._worker import PullWorker, WorkerSettings

__all__ = [
    "CATALOG_ENRICH",
    "ENRICHER",
    "EXTENSION_RUN",
    "EXTENSION_RUNNER",
    "MARKDOWN_COMPILE",
    "MARKDOWN_COMPILER",
    "PLANNER",
    "ROLES",
    "STATUS_QUEUE_GROUP",
    "STATUS_SERVICE",
    "STATUS_VERSION",
    "TRACE_ID_HEADER",
    "Admission",
    "BasicAdmission",
    "BasicOutputCheck",
    "Busy",
    "Claim",
    "ConsumerSpec",
    "ContentUnavailableError",
    "DeadLetterEntry",
    "DeadLetterNotFoundError",
    "DeadLetterWriter",
    "Decision",
    "DecisionRecord",
    "Delivery",
    "EventStatus",
    "FollowUpSpec",
    "Handler",
    "HealthServer",
    "KeyStatus",
    "KindAllowance",
    "Ledger",
    "LedgerUnavailableError",
    "LogObserver",
    "ModuleLoader",
    "Observer",
    "OutputCheck",
    "PlannerHandler",
    "PublishFailedError",
    "PullWorker",
    "Refusal",
    "ReplayReport",
    "RequeueRecord",
    "RunRecord",
    "RunState",
    "Runtime",
    "Settle",
    "Settled",
    "StatusReader",
    "StatusRequestError",
    "StatusService",
    "StatusUnavailableError",
    "TaskHandler",
    "TaskSettings",
    "TaskStatus",
    "Topology",
    "TopologyError",
    "WorkerSettings",
    "ask_status",
    "connect",
    "connect_options",
    "dead_letter_consumer",
    "dead_letter_id",
    "default_worker_id",
    "follow_up_tasks",
    "ledger_key",
    "list_dead_letters",
    "nak_delay_for",
    "ping_status",
    "plan_tasks",
    "provision",
    "provision_buckets",
    "provision_consumer",
    "provision_streams",
    "publish_confirmed",
    "read_subject",
    "replay_stream",
    "requeue_dead_letter",
    "retry_delay_s",
    "role_consumer",
    "status_subject",
    "upload_reference_modules",
    "verify",
]
