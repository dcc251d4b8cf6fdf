"""Consumers: the JetStream side of the runtime, and nothing else.

How messages come in and go out: connecting (``connect``), provisioning and
verifying the topology (``provision``, ``verify``), keeping a pull request
open and settling every delivery (``PullWorker``), publishing through a role's
boundary and waiting, bounded, for every PubAck (``publish_confirmed``), the
redelivery arithmetic (``retry_delay_s``, ``nak_delay_for``) and the ledger
bucket. What a delivery *means* is the pipeline's business: this package hands
a ``Delivery`` to a handler and settles by the ``Decision`` it returns.
"""

from ._connect import connect, connect_options
from ._decision import Decision, Handler, Settle
from ._delivery import Delivery
from ._errors import (
    ContentUnavailableError,
    LedgerUnavailableError,
    PublishFailedError,
    TopologyError,
)
from ._ledger import Busy, Claim, Ledger, RunRecord, RunState, Settled, ledger_key
from ._publisher import publish_confirmed
from ._retry import nak_delay_for, retry_delay_s
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
    "Busy",
    "Claim",
    "ConsumerSpec",
    "ContentUnavailableError",
    "Decision",
    "Delivery",
    "Handler",
    "Ledger",
    "LedgerUnavailableError",
    "PublishFailedError",
    "PullWorker",
    "RunRecord",
    "RunState",
    "Settle",
    "Settled",
    "TopologyError",
    "WorkerSettings",
    "connect",
    "connect_options",
    "dead_letter_consumer",
    "ledger_key",
    "nak_delay_for",
    "provision",
    "provision_buckets",
    "provision_consumer",
    "provision_streams",
    "publish_confirmed",
    "retry_delay_s",
    "role_consumer",
    "verify",
]
