"""Built-in defaults: ``gitstore-agents worker --role NAME`` works with no file at all.

A configuration file is merged onto these (mappings merge key by key, lists
and scalars replace), so a file only states what differs.
"""

from __future__ import annotations

from typing import Any

from ._names import (
    CATALOG_ENRICH,
    ENRICHER,
    EXTENSION_RUN,
    EXTENSION_RUNNER,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
)

MIB = 1024 * 1024


def builtin_defaults() -> dict[str, Any]:
    """A fresh copy of the built-in configuration (as plain data, before decoding)."""
    return {
        "roles": {
            # The planner does no sandbox work: more in flight, shorter ack wait.
            PLANNER: {"concurrency": 16, "batch": 64, "ack_wait_s": 30.0},
            MARKDOWN_COMPILER: {
                "kinds": {
                    MARKDOWN_COMPILE: {
                        "module": "reference:markdown-compile",
                        # Measured (python -m bench.fuel): at most ~222 fuel and
                        # ~14.5 MiB of memory per input MiB for realistic files; twice
                        # the fuel per MiB, so an 8 MiB product (the sandbox's stdin
                        # limit) fits, while a small one keeps a small budget.
                        "limits": {
                            "fuel": 20_000_000,
                            "timeout_ms": 2_000,
                            "memory_bytes": 64 * MIB,
                            "per_input_mib": {
                                "fuel": 470_000_000,
                                "timeout_ms": 1_000,
                                "memory_bytes": 16 * MIB,
                            },
                            "max_fuel": 2_000_000_000,
                            "max_timeout_ms": 10_000,
                            "max_memory_bytes": 128 * MIB,
                        },
                    }
                },
                "follow_ups": [CATALOG_ENRICH, EXTENSION_RUN],
            },
            # A follow-up's input is the compile output, about 4.4x the product file.
            # Measured: the enricher ~265 fuel per input byte, the sample extension ~75,
            # ~7 and ~5 MiB of memory per input MiB; twice the fuel per MiB, up to the
            # 8 MiB a module reads.
            ENRICHER: {
                "kinds": {
                    CATALOG_ENRICH: {
                        "module": "reference:catalog-enrich",
                        "limits": _grown(fuel_per_mib=560_000_000, max_fuel=2_500_000_000),
                    }
                }
            },
            EXTENSION_RUNNER: {
                "kinds": {
                    EXTENSION_RUN: {
                        "module": "reference:extension-sample",
                        "limits": _grown(fuel_per_mib=160_000_000, max_fuel=1_000_000_000),
                        "extensions": [{"name": "seo-lint", "version": "1.0.0"}],
                    }
                }
            },
        }
    }


def _grown(*, fuel_per_mib: int, max_fuel: int) -> dict[str, Any]:
    """Follow-up limits: today's flat defaults for a small input, grown per MiB of it."""
    return {
        "fuel": 200_000_000,
        "timeout_ms": 2_000,
        "memory_bytes": 64 * MIB,
        "per_input_mib": {"fuel": fuel_per_mib, "timeout_ms": 1_000, "memory_bytes": 8 * MIB},
        "max_fuel": max_fuel,
        "max_timeout_ms": 6_000,
        "max_memory_bytes": 128 * MIB,
    }


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: mappings merge recursively, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged
