"""Telemetry: logs, traces, metrics and the audit trail.

* logs: structlog, JSON lines (``worker``) or console (``dev`` and the operator
  commands), each line with
  the current ``trace_id``/``span_id`` and the delivery's bound fields;
* traces: OpenTelemetry spans after the messaging conventions, W3C trace
  context extracted from every delivery and injected into every publish;
* metrics: OpenTelemetry instruments, scraped from ``/metrics``;
* audit: every decision as an ``AuditRecord`` on ``<prefix>.audit.<event_id>``,
  read back as an event's story (``gitstore-agents trace``).

Its one job is to observe: the pipeline reports each decision as a
``DecisionRecord`` to an ``Observer``; this package turns it into logs, spans,
metrics and audit records, and reads the trail back. It sits below
``consumers``: it uses the OpenTelemetry API, the envelopes and the publish
boundary's ``Outbound``, never the runtime.
``docs/observability.md`` is the reference.
"""

from ._audit import (
    RECORDS_HEADER,
    audit_message,
    audit_msg_id,
    audit_record,
    encode_batch,
    encode_record,
)
from ._decisions import DecisionRecord, Observer
from ._logging import LOG_LEVEL_ENV, add_trace_context, configure_logging
from ._metrics import (
    INSTRUMENTS,
    PRESET_OUTCOMES,
    PRESET_RETRY_CODES,
    Distribution,
    Instruments,
    Tally,
)
from ._observer import SPAN_STAGES, LogObserver, TelemetryObserver, log_decision
from ._prometheus import ScrapeReader, metric_name, render
from ._render import render_story
from ._setup import PeriodicReader, metrics_text, setup_telemetry
from ._story import (
    FOLLOW_UP_REF,
    PLANNED_REF,
    Attempt,
    EventStory,
    TaskStory,
    build_story,
    planned_ref,
)
from ._tracing import (
    ReceiveBatch,
    annotate,
    batch_destination,
    continue_trace,
    current_ids,
    destination,
    error_type,
    extract,
    inject,
    light_spans,
    message_ids,
    process_span,
    record_outcome,
    record_run,
    send_span,
    server_attributes,
    settle_span,
    stage_span,
    tracer,
    use_light_spans,
)
from ._trail import AuditTrailUnavailableError, TrailEntry, read_event_trail, read_trail

__all__ = [
    "FOLLOW_UP_REF",
    "INSTRUMENTS",
    "LOG_LEVEL_ENV",
    "PLANNED_REF",
    "PRESET_OUTCOMES",
    "PRESET_RETRY_CODES",
    "RECORDS_HEADER",
    "SPAN_STAGES",
    "Attempt",
    "AuditTrailUnavailableError",
    "DecisionRecord",
    "Distribution",
    "EventStory",
    "Instruments",
    "LogObserver",
    "Observer",
    "PeriodicReader",
    "ReceiveBatch",
    "ScrapeReader",
    "Tally",
    "TaskStory",
    "TelemetryObserver",
    "TrailEntry",
    "add_trace_context",
    "annotate",
    "audit_message",
    "audit_msg_id",
    "audit_record",
    "batch_destination",
    "build_story",
    "configure_logging",
    "continue_trace",
    "current_ids",
    "destination",
    "encode_batch",
    "encode_record",
    "error_type",
    "extract",
    "inject",
    "light_spans",
    "log_decision",
    "message_ids",
    "metric_name",
    "metrics_text",
    "planned_ref",
    "process_span",
    "read_event_trail",
    "read_trail",
    "record_outcome",
    "record_run",
    "render",
    "render_story",
    "send_span",
    "server_attributes",
    "settle_span",
    "setup_telemetry",
    "stage_span",
    "tracer",
    "use_light_spans",
]
