"""Role and task-kind names: the vocabulary the configuration is written in."""

from __future__ import annotations

PLANNER = "planner"
MARKDOWN_COMPILER = "markdown-compiler"
ENRICHER = "enricher"
EXTENSION_RUNNER = "extension-runner"

ROLES = (PLANNER, MARKDOWN_COMPILER, ENRICHER, EXTENSION_RUNNER)
"""Every role a worker process can run."""

MARKDOWN_COMPILE = "markdown.compile"
CATALOG_ENRICH = "catalog.enrich"
EXTENSION_RUN = "extension.run"

GIT_PUSH = "git.push"
"""The kind the planner's inputs (git events) go by in diagnostics and dead letters."""
