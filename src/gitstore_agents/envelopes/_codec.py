"""Decoding at the trust boundary: bounded, exact, and failing with one error type.

``decode`` is the only way bytes from the network become envelopes. In order it
bounds the size, parses with a per-type decoder created once (msgspec is
fastest when reused) that refuses floats, re-checks every string pattern
exactly, checks the payload-specific rules (the mdast body), and checks the
``schema_version`` major. Whatever is wrong surfaces as an ``EnvelopeError``
naming the field path (``$.blobs[0].path``) and what was expected.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

import msgspec

from ..errors import GitStoreAgentsError
from ._canonical import canonical_json, sha256_digest
from ._catalog import CompiledResource, MdastNode
from ._strict import strict_check
from ._task import TaskRequest, ValidationRequest
from ._types import PATTERN_NAMES, UINT64_MAX

T = TypeVar("T")

MAX_ENVELOPE_BYTES = 8 * 1024 * 1024
# The major version of every envelope this code reads; a higher one is refused.
SUPPORTED_MAJOR = 1

_AT = re.compile(r"^(?P<what>.*) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`")


class EnvelopeError(GitStoreAgentsError):
    """An envelope (or module output) could not be decoded; never worth a retry.

    Attributes:
        field: JSON path of the offending value (``$.blobs[0].path``), when known.
    """

    code = "envelope-invalid"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, code=code, retryable=retryable)
        self.field = field


class SchemaVersionError(EnvelopeError):
    """The envelope's ``schema_version`` has a major version this code cannot read."""

    code = "schema-version-unsupported"


class _Versioned(msgspec.Struct):
    """Just enough of any envelope to read its version when the rest does not decode."""

    schema_version: str = "1.0"


def _reject_float(literal: str) -> Any:
    # Raised inside msgspec, which reports it with the value's path.
    raise ValueError(f"float {literal} has no canonical form; send an integer or a string")


@functools.cache
def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(type_, float_hook=_reject_float)


def _check_compiled(value: CompiledResource) -> tuple[str, str] | None:
    try:
        msgspec.convert(value.body, MdastNode)
    except msgspec.ValidationError as exc:
        what, path = _split(str(exc))
        return "$.body" + (path or "$")[1:], what
    if value.body.get("type") != "root":
        return "$.body.type", "Expected `root` as the type of the body's root node"
    return None


def _check_task(value: TaskRequest) -> tuple[str, str] | None:
    if value.seed > UINT64_MAX:
        return "$.seed", f"Expected `int` <= {UINT64_MAX} (uint64)"
    return None


def _check_validation(value: ValidationRequest) -> tuple[str, str] | None:
    if (value.output is msgspec.UNSET) == (value.output_ref is msgspec.UNSET):
        return "$.output", "Expected exactly one of `output` and `output_ref`"
    if value.output is msgspec.UNSET:
        if value.output_ref != value.output_digest:
            return "$.output_ref", "Expected the output's digest, `output_digest`"
        return None
    # ``output`` is embedded verbatim (not parsed by the envelope decoder), so
    # its canonical form and its digest are checked here.
    try:
        output = canonicalize(bytes(value.output), what="output")
    except EnvelopeError as exc:
        return "$.output", exc.message
    actual = sha256_digest(output)
    if actual != value.output_digest:
        return "$.output_digest", f"Expected the sha256 of the canonical output, {actual}"
    return None


# Rules a JSON Schema states but msgspec's types do not, per payload type.
_EXTRA_CHECKS: dict[type, Callable[[Any], tuple[str, str] | None]] = {
    CompiledResource: _check_compiled,
    TaskRequest: _check_task,
    ValidationRequest: _check_validation,
}


def decode(data: bytes, type_: type[T], *, max_bytes: int = MAX_ENVELOPE_BYTES) -> T:
    """Decode ``data`` as ``type_``, bounding the size before parsing.

    Unknown fields are ignored (newer publishers may add them); a missing
    ``schema_version`` reads as ``1.0``.

    Raises:
        EnvelopeError: naming the field path and what was expected
            (``code`` ``envelope-too-large`` past ``max_bytes``).
        SchemaVersionError: ``schema_version`` has a major other than 1.
    """
    name = getattr(type_, "__name__", str(type_))
    value = cast(T, _parse(data, type_, name, max_bytes))
    found = strict_check(value, type_)
    if found is None and type(value) in _EXTRA_CHECKS:
        found = _EXTRA_CHECKS[type(value)](value)
    if found is not None:
        path, what = found
        raise EnvelopeError(f"{name}: {_explain(what)} - at `{path}`", field=path)
    version = getattr(value, "schema_version", None)
    if isinstance(version, str):
        check_schema_version(version, name)
    return value


def decode_json(data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES, what: str = "JSON") -> Any:
    """Decode any JSON document that has a canonical form (no floats).

    Raises:
        EnvelopeError: the bytes are too large, malformed, or hold a float.
    """
    return _parse(data, Any, what, max_bytes)


def canonicalize(
    data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES, what: str = "output"
) -> bytes:
    """Re-encode a JSON document (a module's stdout) in canonical form.

    Raises:
        EnvelopeError: the bytes are too large, malformed, hold a float or an
            integer outside int64/uint64.
    """
    value = decode_json(data, max_bytes=max_bytes, what=what)
    try:
        return canonical_json(value)
    except GitStoreAgentsError as exc:
        raise EnvelopeError(f"{what}: {exc.message}", code=exc.code) from None


def _parse(data: bytes, type_: Any, name: str, max_bytes: int) -> Any:
    if len(data) > max_bytes:
        raise EnvelopeError(
            f"{name} is {len(data)} bytes, over the limit max_envelope_bytes={max_bytes}",
            code="envelope-too-large",
        )
    try:
        return _decoder(type_).decode(data)
    except msgspec.ValidationError as exc:
        _raise_version_first(data, name)
        what, path = _split(str(exc))
        where = f" - at `{path}`" if path else ""
        raise EnvelopeError(f"{name}: {_explain(what)}{where}", field=path) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec reports invalid UTF-8 differently from one release to the
        # next (a UnicodeDecodeError up to 0.22, a DecodeError since 0.23), so
        # find the bad byte ourselves: the error then reads the same everywhere.
        try:
            bytes(data).decode("utf-8")
        except UnicodeDecodeError as bad:
            raise EnvelopeError(f"{name}: invalid UTF-8 at byte {bad.start}") from None
        surrogate = lone_surrogate(data)
        if surrogate is not None:
            raise EnvelopeError(f"{name}: {surrogate}") from None
        raise EnvelopeError(f"{name}: malformed JSON: {exc}") from None
    except RecursionError:
        raise EnvelopeError(
            f"{name}: nested too deeply to decode", code="envelope-too-deep"
        ) from None


# A high surrogate escape (and the low one after it, if any), or a low one alone.
_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
    rb"|\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def lone_surrogate(data: bytes) -> str | None:
    """What is wrong when ``data`` escapes half of a UTF-16 surrogate pair, else None.

    JSON's grammar allows ``\\ud800`` alone, but it is not a Unicode character:
    msgspec refuses it with the misleading "Input data was truncated".
    """
    for match in _SURROGATE.finditer(data):
        high = match.group(0)[:6].lower()
        if high < b"\\udc00" and match.group(1) is not None:
            continue  # a proper pair
        return (
            f"the string escape {match.group(0)[:6].decode()} at byte {match.start()} is half "
            "of a surrogate pair: not a Unicode character, so no canonical form"
        )
    return None


def _split(message: str) -> tuple[str, str | None]:
    """(what was expected, JSON path) of a msgspec error message."""
    match = _AT.match(message)
    what, path = (match["what"], match["path"]) if match else (message, None)
    missing = _MISSING.match(what)
    if missing:
        path = f"{path or '$'}.{missing['name']}"
    return what, path


def _explain(what: str) -> str:
    """Name a pattern in words: a Go developer should not have to read the regex."""
    for pattern, meaning in PATTERN_NAMES.items():
        quoted = f"matching regex {pattern!r}"
        if quoted in what:
            return what.replace(quoted, f"holding {meaning} (regex {pattern!r})")
    return what


def _raise_version_first(data: bytes, name: str) -> None:
    """A newer major explains any type error better than the type error does."""
    try:
        versioned = msgspec.json.decode(data, type=_Versioned)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return
    check_schema_version(versioned.schema_version, name)


def check_schema_version(version: str, envelope: str, *, field: str = "$.schema_version") -> None:
    """Refuse a ``schema_version`` whose major this worker does not read.

    Raises:
        SchemaVersionError: naming the envelope and the version found.
    """
    major, _, _ = version.partition(".")
    if not (major.isascii() and major.isdigit()) or int(major) != SUPPORTED_MAJOR:
        raise SchemaVersionError(
            f"{envelope}: schema_version={version!r} at {field}; this worker reads major version "
            f"{SUPPORTED_MAJOR} only (a minor above {SUPPORTED_MAJOR}.0 is fine; "
            "a new major needs a newer worker)",
            field=field,
        )
