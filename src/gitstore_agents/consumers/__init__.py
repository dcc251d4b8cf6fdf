"""Consumers: the JetStream side of the runtime, and nothing else.

How messages come in and go out: connecting (``connect``), provisioning and
verifying the topology (``provision``, ``verify``: a durable whose settings
drifted from its role's is refused or restored), rewinding a role's durable
(``rewind_consumer``), keeping a pull request
open and settling every delivery (``PullWorker``), publishing through a role's
boundary and learning what became of each message (``JetStreamPublisher``:
stored, already stored, or failed), reading what a slot holds
(``JetStreamResults``) and the redelivery arithmetic (``retry_delay_s``,
``nak_delay_for``). What a delivery *means* is the pipeline's business: this package hands
a ``Delivery`` to a handler and settles by the ``Decision`` it returns.
"""

from ._audit_stream import (
    AUDIT_ADMIN_COMMAND,
    audit_stream_differs,
    audit_stream_drift,
    provision_audit_stream,
)
from ._connect import NatsUnreachableError, connect, connect_options, tls_context
from ._decision import Decision, Handler, Settle
from ._delivery import Delivery
from ._errors import (
    AuditStreamDiffersError,
    ContentUnavailableError,
    PublishFailedError,
    ResultsUnavailableError,
    TopologyError,
)
from ._migrate import MIGRATED_FROM, MigrationReport, migrate_to_slots, needs_migration
from ._publisher import (
    SLOT_TAKEN,
    JetStreamPublisher,
    PayloadTooLargeError,
    Published,
    Publisher,
    slot_taken,
)
from ._results import JetStreamResults, ResultStore, StoredMessage
from ._retry import nak_delay_for, retry_delay_s
from ._rewind import RewindError, Rewound, rewind_consumer, sequence_at
from ._topology import (
    ConsumerDriftError,
    ConsumerSpec,
    Drift,
    consumer_drift,
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
    "AUDIT_ADMIN_COMMAND",
    "MIGRATED_FROM",
    "SLOT_TAKEN",
    "AuditStreamDiffersError",
    "ConsumerDriftError",
    "ConsumerSpec",
    "ContentUnavailableError",
    "Decision",
    "Delivery",
    "Drift",
    "Handler",
    "JetStreamPublisher",
    "JetStreamResults",
    "MigrationReport",
    "NatsUnreachableError",
    "PayloadTooLargeError",
    "PublishFailedError",
    "Published",
    "Publisher",
    "PullWorker",
    "ResultStore",
    "ResultsUnavailableError",
    "RewindError",
    "Rewound",
    "Settle",
    "StoredMessage",
    "TopologyError",
    "WorkerSettings",
    "audit_stream_differs",
    "audit_stream_drift",
    "connect",
    "connect_options",
    "consumer_drift",
    "dead_letter_consumer",
    "migrate_to_slots",
    "nak_delay_for",
    "needs_migration",
    "provision",
    "provision_audit_stream",
    "provision_buckets",
    "provision_consumer",
    "provision_streams",
    "retry_delay_s",
    "rewind_consumer",
    "role_consumer",
    "sequence_at",
    "slot_taken",
    "tls_context",
    "verify",
]
