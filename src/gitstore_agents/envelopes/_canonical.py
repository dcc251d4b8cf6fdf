"""Canonical JSON: one byte form per value, so digests agree across languages.

The form (``docs/contracts.md`` spells it out for the Go side):

- UTF-8, no byte order mark, no insignificant whitespace;
- object keys sorted by their code points (the same order as their UTF-8 bytes),
  every key a string, no duplicates;
- strings escape only ``"``, ``\\``, ``\\b \\f \\n \\r \\t`` and the other control
  characters below U+0020 (as ``\\u00XX``, lower-case hex); everything else,
  ``/``, ``<``, ``&``, U+2028 included, is written as raw UTF-8;
- numbers are integers in ``[-2**63, 2**64-1]`` written in decimal without a
  sign for positives or leading zeros. **Floats are rejected**: float formatting
  differs between JSON libraries, and a value that cannot be written one way
  cannot be hashed one way. Decimals travel as strings (``"149.90"``).

msgspec's encoder with ``order="sorted"`` writes exactly this form; the check
in front of it refuses the values that have none.
"""

from __future__ import annotations

import enum
import hashlib
import re
from typing import Any

import msgspec

from ..errors import GitStoreAgentsError

_ENCODER = msgspec.json.Encoder(order="sorted")

DIGEST_PREFIX = "sha256:"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
_DIGEST = re.compile(DIGEST_PATTERN)
# Every digit becomes "0", so a run of 19 digits is one ``find``: ten times
# cheaper than a regex over the bytes (a run inside a string only costs a walk).
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_NUMBER = b"0" * 19

MIN_INT = -(2**63)
MAX_INT = 2**64 - 1


class CanonicalFormError(GitStoreAgentsError):
    """A value has no canonical JSON form (a float, a huge integer, a non-string key)."""

    code = "canonical-form"
    retryable = False


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` (a Struct, dict, list or scalar) in canonical JSON.

    Raises:
        CanonicalFormError: naming the path of the first value without a
            canonical form (floats, integers outside int64/uint64, non-string
            keys, strings that are not valid Unicode).
    """
    problem = _non_canonical(value, "$")
    if problem is not None:
        raise CanonicalFormError(problem)
    try:
        return _ENCODER.encode(value)
    except (UnicodeEncodeError, TypeError, OverflowError) as exc:
        raise CanonicalFormError(f"$: no canonical JSON form: {exc}") from None


def encode_decoded(value: Any) -> bytes:
    """Canonical JSON of a value ``decode`` produced: the encoder alone, no walk.

    ``decode`` refuses floats as it reads them and only ever yields strings,
    integers, booleans, None, lists, string-keyed dicts and Structs, so the
    sorted encoder writes the canonical form directly. Integers outside
    int64/uint64 and strings with lone surrogates are still refused (the
    value is walked only when its encoding holds a number long enough).

    Raises:
        CanonicalFormError: such an integer or string.
    """
    try:
        encoded = _ENCODER.encode(value)
    except (UnicodeEncodeError, TypeError, OverflowError) as exc:
        raise CanonicalFormError(f"$: no canonical JSON form: {exc}") from None
    if encoded.translate(_DIGITS_AS_ZERO).find(_LONG_NUMBER) >= 0:
        # msgspec writes integers of any size; only one of 19 digits or more
        # can be outside int64/uint64, so only then is the value walked.
        return canonical_json(value)
    return encoded


def sha256_digest(data: bytes) -> str:
    """Return ``sha256:<64 lower-case hex>`` of ``data``."""
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def canonical_digest(value: Any) -> str:
    """Digest of the canonical JSON form of ``value``."""
    return sha256_digest(canonical_json(value))


def is_digest(value: str) -> bool:
    """True when ``value`` is a well-formed ``sha256:<64 lower-case hex>`` digest."""
    return _DIGEST.fullmatch(value) is not None


def _non_canonical(value: Any, path: str) -> str | None:  # noqa: PLR0911, PLR0912
    """Path and reason of the first value in ``value`` without a canonical form."""
    kind = type(value)
    # Exact type checks first: they are the hot path (bool is not int here).
    if kind is str or kind is bool or value is None:
        return None
    if kind is int:
        if MIN_INT <= value <= MAX_INT:
            return None
        return f"{path}: integer {value} is outside [-2**63, 2**64-1]"
    if kind is float:
        return f"{path}: float {value!r} has no canonical JSON form (send integers or strings)"
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return f"{path}: object key {key!r} is not a string"
            problem = _non_canonical(item, f"{path}.{key}")
            if problem is not None:
                return problem
        return None
    if kind is list or kind is tuple:
        for index, item in enumerate(value):
            problem = _non_canonical(item, f"{path}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            problem = _non_canonical(getattr(value, name), f"{path}.{name}")
            if problem is not None:
                return problem
        return None
    if isinstance(value, enum.Enum):
        return _non_canonical(value.value, path)
    if isinstance(value, str):
        return None
    if value is msgspec.UNSET or kind is msgspec.Raw:
        # Raw bytes are embedded verbatim: they were produced by canonical_json.
        return None
    return f"{path}: {kind.__name__} has no canonical JSON form"
