"""Canonical JSON: one byte form per value, so digests agree across languages.

The form is msgspec's compact JSON with object keys sorted (``order="sorted"``):
no insignificant whitespace, UTF-8 output, minimal string escapes. Envelopes
avoid floats because float formatting differs between JSON libraries.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder(order="sorted")

DIGEST_PREFIX = "sha256:"


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` (a Struct, dict, list or scalar) in canonical JSON."""
    return _ENCODER.encode(value)


def sha256_digest(data: bytes) -> str:
    """Return ``sha256:<64 hex>`` of ``data``."""
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def canonical_digest(value: Any) -> str:
    """Digest of the canonical JSON form of ``value``."""
    return sha256_digest(canonical_json(value))
