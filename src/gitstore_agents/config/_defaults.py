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


def builtin_defaults() -> dict[str, Any]:
    """A fresh copy of the built-in configuration (as plain data, before decoding)."""
    return {
        "roles": {
            # The planner does no sandbox work: more in flight, shorter ack wait.
            PLANNER: {"concurrency": 16, "batch": 64, "ack_wait_s": 30.0},
            MARKDOWN_COMPILER: {
                "kinds": {MARKDOWN_COMPILE: {"module": "reference:markdown-compile"}},
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
