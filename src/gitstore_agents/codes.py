"""Every code the runtime writes, with whether a retry could help and what it means.

A code appears in a ``FailureDiagnostic``, a ``DeadLetter``'s last error, an
audit record, a log line, a metric label or a command's error line; the
control plane and operators branch on it, never on message text. This table
is the one list: the error classes, the sandbox outcomes and the guard
refusals all use codes from it (``tests/test_codes.py`` checks the source),
and docs/codes.md lists exactly these (the same test checks the page).

``retryable`` is the code's *usual* class; where a code can be either (a
content store that is unreachable or holds bad bytes), the raising site
decides and the error carries its own flag.
"""

from __future__ import annotations

import msgspec


class Code(msgspec.Struct, frozen=True):
    """One code.

    Attributes:
        name: The code (kebab-case).
        retryable: Whether the same input could succeed later (``nak`` with
            backoff) or never (``term`` after a diagnostic).
        meaning: One line: what happened.
    """

    name: str
    retryable: bool
    meaning: str


OK = "ok"
DUPLICATE = "duplicate"
SUCCEEDED = "succeeded"
FAILED = "failed"
PLANNED = "planned"

_CODES = (
    # -- outcomes of a delivery ---------------------------------------------------------------
    Code(OK, False, "the task ran and its result is stored (or the event's tasks are)"),
    Code(DUPLICATE, False, "the result was stored before (a redelivery, replay or second copy)"),
    # -- what a duplicate found (the code of a duplicate-skipped record) ----------------------
    Code(SUCCEEDED, False, "the task's validation request was stored before"),
    Code(FAILED, False, "the task's failure diagnostic was stored before"),
    Code(PLANNED, False, "every task the event plans was stored before"),
    # -- sandbox outcomes (sandbox.Outcome) ---------------------------------------------------
    Code("exit-nonzero", False, "the module exited with a code other than 0 or 65"),
    Code("input-rejected", False, "the module exited 65: it refused its input (field errors)"),
    Code("trap", False, "the module trapped (unreachable, stack overflow, bad memory access)"),
    Code("fuel-exhausted", False, "the module used all the fuel (deterministic CPU) it had"),
    Code("deadline-exceeded", True, "the run passed its wall-clock deadline (depends on load)"),
    Code("memory-limit", False, "the module reached its linear memory or table cap"),
    Code("output-too-large", False, "the output is over the size the task or policy allows"),
    Code("input-too-large", False, "the task or its input is over the size the policy allows"),
    Code("invalid-output", False, "the module's stdout is not a JSON document"),
    Code("output-too-deep", False, "the module's output is nested too deeply to read"),
    Code("module-invalid", False, "the module bytes are not a WASI command this sandbox runs"),
    Code("digest-mismatch", False, "the module bytes do not hash to the digest that names them"),
    # -- envelopes and contracts --------------------------------------------------------------
    Code("envelope-invalid", False, "the message is not the envelope its subject promises"),
    Code("envelope-too-large", False, "the message is over max_envelope_bytes"),
    Code("envelope-too-deep", False, "the message is nested too deeply to decode"),
    Code("schema-version-unsupported", False, "the envelope's major schema version is unknown"),
    Code("content-type-unsupported", False, "Content-Type is not application/json"),
    Code("canonical-form", False, "a float, an integer out of range or a bad string"),
    Code("input-digest-mismatch", False, "the task input does not hash to input_digest"),
    Code("blob-oid-mismatch", False, "inline content does not hash to its git blob_oid"),
    Code("subject-invalid", False, "a subject token from the data is not safe to publish on"),
    Code("subject-mismatch", False, "the subject names another key or repository than the data"),
    Code("header-invalid", False, "a header value cannot be carried (control characters)"),
    # -- content store ------------------------------------------------------------------------
    Code("content-missing", False, "a referenced input is not (yet) in the content store"),
    Code("content-store-missing", False, "the input is a reference but no content store is set"),
    Code("content-store-unavailable", True, "the content store could not be reached"),
    Code("content-digest-mismatch", False, "stored content does not hash to its reference"),
    Code("content-too-large", False, "stored content is over max_content_bytes"),
    Code("content-invalid", False, "stored content is not the JSON document it should be"),
    Code("content-unavailable", True, "a module or input file could not be read"),
    Code("ref-invalid", False, "a content reference is not sha256:<64 hex>"),
    # -- modules ------------------------------------------------------------------------------
    Code("module-not-found", True, "no module with the digest is stored (yet)"),
    Code("module-store-unavailable", True, "the module store could not be read"),
    # -- guardrails: admission and output check -----------------------------------------------
    Code("kind-not-allowed", False, "the role (or policy) does not run this task kind"),
    Code("module-not-allowed", False, "the module digest is not one the role may run"),
    Code("path-not-allowed", False, "the task's path matches none of the role's path patterns"),
    Code("limits-over-ceiling", False, "the task asks for more than the role's ceilings"),
    Code("output-not-object", False, "the output is not a JSON object"),
    Code("output-schema-invalid", False, "the output is not the document its kind requires"),
    Code("result-kind-not-allowed", False, "the output's resource kind is not allowed"),
    Code("output-path-not-allowed", False, "the output is about a file outside the role's paths"),
    Code("output-path-mismatch", False, "the output is about another file than its task"),
    Code(
        "output-claims-status", False, "the output claims a decision only the control plane makes"
    ),
    # -- publishing ---------------------------------------------------------------------------
    Code("publish-failed", True, "a result was not confirmed by the server in time"),
    Code("publish-refused", False, "the role's boundary does not allow the subject"),
    Code("publish-permission-denied", False, "the NATS server refused the subject (permissions)"),
    Code("payload-too-large", False, "a message is over the NATS server's max_payload"),
    Code("results-unavailable", True, "a stored result could not be read"),
    Code("audit-failed", True, "the delivery's audit records were not stored; retried"),
    # -- the runtime --------------------------------------------------------------------------
    Code("handler-error", True, "an unexpected error in the runtime (a bug); retried"),
    Code("delivery-invalid", False, "the delivery's JetStream metadata could not be read"),
    Code("deliveries-exhausted", False, "the message ran out of deliveries (a dead letter)"),
    Code("advisory-invalid", False, "a max-deliveries advisory could not be read"),
    Code("stream-unavailable", True, "a stream could not be read"),
    Code("draining", True, "the worker stopped before the work finished; handed back"),
    Code("topology-missing", True, "a stream, consumer or bucket the role needs is missing"),
    Code("consumer-drift", False, "a durable's settings differ from its role's; not started"),
    Code(
        "audit-stream-differs",
        False,
        "the audit stream differs from the configuration; only audit-admin may change it",
    ),
    Code("config-invalid", False, "the configuration is invalid; the process does not start"),
    Code("policy-invalid", False, "the guardrail policy is invalid"),
    Code("sandbox-settings-invalid", False, "a run's limits or logical time are invalid"),
    Code(
        "project-invalid",
        False,
        "a module project is unusable: a bad name, an occupied directory, no module or fixtures",
    ),
    Code("nats-server-failed", False, "the bundled nats-server could not start"),
    Code("nats-unreachable", True, "no NATS server accepted a connection in the connect timeout"),
    Code("health-port-unavailable", False, "the health server cannot listen on health.host/port"),
    # -- operator tools -----------------------------------------------------------------------
    Code("dead-letter-not-found", False, "no dead letter has the requested id"),
    Code("already-requeued", False, "the dead letter was requeued before"),
    Code("rewind-failed", False, "a durable could not be rewound (missing, refused, no reset)"),
    Code("audit-unavailable", True, "the audit stream could not be read"),
    Code("status-request-invalid", False, "a status request names no valid event or key"),
    Code("status-unavailable", True, "no status service answered"),
    Code("parent-task-gone", False, "a compile result's task left the tasks stream (retention)"),
)

CODES: dict[str, Code] = {code.name: code for code in _CODES}
"""Every code by name."""


def code(name: str) -> Code:
    """The entry of ``name``.

    Raises:
        KeyError: ``name`` is not a code of this table.
    """
    return CODES[name]


def retryable(name: str) -> bool:
    """Whether a failure with code ``name`` is usually worth a retry (False for unknown codes)."""
    entry = CODES.get(name)
    return entry.retryable if entry is not None else False
