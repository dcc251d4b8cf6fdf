"""Constrained field types shared by the envelopes.

Every pattern is written for three regex engines at once (Python's ``re``,
ECMA-262 for JSON Schema validators, and Go's RE2): anchored with ``^…$``, no
look-arounds, no ``\\d`` (Unicode digits in Python). Python's ``$`` also matches
before a trailing newline, so decoding re-checks every pattern with
``fullmatch`` (see ``_strict.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

from ._canonical import DIGEST_PATTERN

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# RFC 3339 in UTC with a literal ``Z``; up to nanoseconds (Go's RFC3339Nano).
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z$"
)
OBJECT_ID_PATTERN = r"^([0-9a-f]{40}|[0-9a-f]{64})$"
KIND_PATTERN = r"^[a-z0-9-]+(\.[a-z0-9-]+)*$"
CODE_PATTERN = r"^[a-z0-9]+([._-][a-z0-9]+)*$"
TOKEN_PATTERN = r"^[A-Za-z0-9_-]+$"
SCHEMA_VERSION_PATTERN = r"^[0-9]{1,4}\.[0-9]{1,4}$"
# A path segment is anything but '', '.', '..', '/', NUL and control characters.
_CHAR = r"[^/\x00-\x1f\x7f]"
_NOT_DOT = r"[^/\x00-\x1f\x7f.]"
_SEGMENT = rf"({_NOT_DOT}{_CHAR}*|\.{_NOT_DOT}{_CHAR}*|\.\.{_CHAR}+)"
PATH_PATTERN = rf"^{_SEGMENT}(/{_SEGMENT})*$"
REF_NAME_PATTERN = r"^refs/[^\x00-\x20\x7f~^:?*\[\\]+$"
# Visible ASCII, inner spaces allowed: safe to copy into a NATS header value.
HEADER_VALUE_PATTERN = r"^[!-~]([ -~]*[!-~])?$"

# What each pattern means, so decode errors say it in words as well.
PATTERN_NAMES = {
    UUID_PATTERN: "a lower-case UUID",
    TIMESTAMP_PATTERN: "an RFC 3339 UTC timestamp ending in 'Z'",
    DIGEST_PATTERN: "a digest 'sha256:<64 lower-case hex>'",
    OBJECT_ID_PATTERN: "a git object id (40 or 64 lower-case hex)",
    KIND_PATTERN: "a task kind like 'markdown.compile'",
    CODE_PATTERN: "a kebab-case code",
    TOKEN_PATTERN: "a token of letters, digits, '-' and '_'",
    SCHEMA_VERSION_PATTERN: "a 'MAJOR.MINOR' version",
    PATH_PATTERN: "a repository-relative path without '.', '..' or empty segments",
    REF_NAME_PATTERN: "a git ref name starting with 'refs/'",
    HEADER_VALUE_PATTERN: "visible ASCII safe for a NATS header",
}

SchemaVersion = Annotated[
    str,
    msgspec.Meta(
        pattern=SCHEMA_VERSION_PATTERN,
        description="MAJOR.MINOR of the envelope's contract; a higher MAJOR is refused.",
    ),
]
Uuid = Annotated[
    str,
    msgspec.Meta(
        pattern=UUID_PATTERN,
        description="A UUID in its canonical lower-case 8-4-4-4-12 form (UUIDv7 preferred).",
    ),
]
Timestamp = Annotated[
    str,
    msgspec.Meta(
        pattern=TIMESTAMP_PATTERN,
        description="RFC 3339 time in UTC with 'Z', e.g. 2026-11-29T08:00:00Z "
        "(Go: t.UTC().Format(time.RFC3339Nano)). Kept as sent: never re-formatted.",
    ),
]
Digest = Annotated[
    str,
    msgspec.Meta(
        pattern=DIGEST_PATTERN,
        description="sha256:<64 lower-case hex> of canonical JSON or raw bytes.",
    ),
]
ObjectId = Annotated[
    str,
    msgspec.Meta(
        pattern=OBJECT_ID_PATTERN,
        description="A git object id: 40 (sha1) or 64 (sha256 repositories) lower-case hex.",
    ),
]
Kind = Annotated[
    str,
    msgspec.Meta(
        pattern=KIND_PATTERN,
        max_length=64,
        description="Task kind: dot-separated lower-case tokens, e.g. markdown.compile.",
    ),
]
Code = Annotated[
    str,
    msgspec.Meta(
        pattern=CODE_PATTERN,
        max_length=64,
        description="Stable machine-readable code (kebab-case), e.g. blob-oid-mismatch.",
    ),
]
Token = Annotated[
    str,
    msgspec.Meta(
        pattern=TOKEN_PATTERN,
        max_length=128,
        description="Letters, digits, '-' and '_' (safe as a NATS subject token).",
    ),
]
RepoPath = Annotated[
    str,
    msgspec.Meta(
        pattern=PATH_PATTERN,
        max_length=4096,
        description="Repository-relative file path with '/' separators; "
        "no leading '/', no '.' or '..' segments, no control characters.",
    ),
]
RefName = Annotated[
    str,
    msgspec.Meta(
        pattern=REF_NAME_PATTERN,
        max_length=1024,
        description="Full git ref name, e.g. refs/heads/main.",
    ),
]
HeaderValue = Annotated[
    str,
    msgspec.Meta(
        pattern=HEADER_VALUE_PATTERN,
        max_length=256,
        description="Visible ASCII (inner spaces allowed): copied verbatim into a NATS header.",
    ),
]
Text = Annotated[str, msgspec.Meta(max_length=65536)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
# msgspec bounds must fit int64, so the upper bound is stated for JSON Schema
# here and checked after decoding (``_codec``).
UINT64_MAX = 2**64 - 1
Uint64 = Annotated[
    int,
    msgspec.Meta(ge=0, extra_json_schema={"maximum": UINT64_MAX}, description="uint64"),
]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Positive = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


def format_timestamp(moment: datetime | None = None) -> str:
    """``moment`` (default: now) in the envelopes' timestamp form.

    UTC with ``Z``; fractional seconds only when non-zero, without trailing
    zeros: byte-identical to Go's ``t.UTC().Format(time.RFC3339Nano)`` at
    microsecond precision.

    Raises:
        ValueError: ``moment`` is naive (no time zone), so its UTC time is unknown.
    """
    moment = datetime.now(UTC) if moment is None else moment
    if moment.tzinfo is None:
        raise ValueError("format_timestamp needs an aware datetime (tzinfo set)")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"
