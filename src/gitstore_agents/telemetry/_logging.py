"""structlog configuration: JSON lines in production, console in ``dev``.

Every line carries the ids of the span it was written in (``trace_id``,
``span_id``) and whatever the pipeline bound for the delivery being handled
(``role``, ``event_id``, ``idempotency_key``, ...: see ``annotate``), so a
log line found in an aggregator leads to its trace and audit records.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import msgspec
import structlog
from opentelemetry import trace

LOG_LEVEL_ENV = "GITSTORE_LOG_LEVEL"
"""Environment variable naming the default log level of every command."""


class StderrLogger:
    """Writes each rendered line to whatever ``sys.stderr`` is *now*.

    structlog's ``PrintLoggerFactory(sys.stderr)`` keeps the stream it was given:
    when the CLI runs in-process under pytest (which swaps ``sys.stderr`` per
    test and closes the old one) the next line goes to a closed file. Looking the
    stream up on every write costs one attribute read.
    """

    def msg(self, message: str) -> None:
        """Write one line."""
        stream: TextIO = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warn = warning = msg
    error = critical = exception = fatal = msg


def _stderr_logger(*_args: Any) -> StderrLogger:
    return StderrLogger()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stdlib handler that, like ``StderrLogger``, follows ``sys.stderr``."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def add_trace_context(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: top-level ``trace_id`` (32 hex) and ``span_id`` (16 hex).

    Taken from the OpenTelemetry span current where the line is written; lines
    written outside any span carry neither.
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _fallback(value: Any) -> str:
    # What structlog's own JSON fallback writes for a value JSON has no form for.
    return repr(value)


_JSON = msgspec.json.Encoder(enc_hook=_fallback)


def _json_line(value: Any, **_options: Any) -> str:
    """structlog's JSON serializer, through msgspec (about 9x faster than ``json.dumps``)."""
    return _JSON.encode(value).decode()


def configure_logging(*, json: bool, level: str = "INFO") -> None:
    """Configure structlog (and stdlib logging) for this process.

    Logs go to stderr so stdout stays free for command output. Loggers are not
    cached: calling this again (another command in the same process, a test)
    takes effect for every logger, and output follows ``sys.stderr``.

    Args:
        json: Render JSON lines (production) instead of the console format.
        level: Minimum level name, e.g. ``"INFO"``.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_context,
    ]
    if json:
        # Frames without their locals: a local may hold a payload or a credential.
        processors.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=numeric,
        handlers=[_StderrHandler()],
        format="%(levelname)s %(name)s: %(message)s",
    )
