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
                        # ~14.5 MiB of memory per input byte-MiB for realistic files;
                        # twice that per MiB, so a 4 MiB product (the compiler's
                        # stdin limit) fits, while a small one keeps a small budget.
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
            ENRICHER: {"kinds": {CATALOG_ENRICH: {"module": "reference:catalog-enrich"}}},
            EXTENSION_RUNNER: {
                "kinds": {
                    EXTENSION_RUN: {
                        "module": "reference:extension-sample",
                        "extensions": [{"name": "seo-lint", "version": "1.0.0"}],
                    }
                }
            },
        }
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
