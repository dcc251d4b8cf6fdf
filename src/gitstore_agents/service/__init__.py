"""Service: one worker process, wired — start, serve, drain, stop.

``Runtime`` builds every role from the configuration (connection, topology,
modules, handlers, pull workers), serves ``/healthz``, ``/readyz`` and
``/metrics`` (``HealthServer``) and answers the status micro service
(``StatusService``) while it runs.
"""

from ._collector import YOUNG_THRESHOLD, settle_heap
from ._health import HealthPortError, HealthServer
from ._runtime import AdmissionFactory, Runtime, default_worker_id
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
    TaskStatus,
    status_subject,
)

__all__ = [
    "STATUS_QUEUE_GROUP",
    "STATUS_SERVICE",
    "STATUS_VERSION",
    "TRACE_ID_HEADER",
    "YOUNG_THRESHOLD",
    "AdmissionFactory",
    "EventStatus",
    "HealthPortError",
    "HealthServer",
    "KeyStatus",
    "Runtime",
    "StatusReader",
    "StatusRequestError",
    "StatusService",
    "TaskStatus",
    "default_worker_id",
    "settle_heap",
    "status_subject",
]
