"""Kit: what an extension author needs, shipped in the wheel.

* ``scaffold``: a module project (``gitstore-agents tasks new``): source, a
  build script using the ``ziglang`` package, fixtures with expected outputs,
  a README, and a copy of the helper library.
* The helper library: ``kit/c`` (C, ``gitstore.h``; the reference modules are
  built on it) and ``kit/zig/gitstore.zig`` (Zig, over the same C code).
* ``WorkerChecks`` / ``run_fixtures``: run inputs through exactly the checks
  a worker applies (the kind's limits, admission, ``run_task``, the policy's
  output check) without NATS (``gitstore-agents sandbox test`` and
  ``sandbox run --kind``).
"""

from ._fixtures import (
    EXPECTED_SUFFIXES,
    Fixture,
    FixtureResult,
    FixtureSuite,
    WorkerChecks,
    find_fixtures,
    find_module,
    run_fixtures,
)
from ._scaffold import LANGUAGES, helper_files, scaffold

__all__ = [
    "EXPECTED_SUFFIXES",
    "LANGUAGES",
    "Fixture",
    "FixtureResult",
    "FixtureSuite",
    "WorkerChecks",
    "find_fixtures",
    "find_module",
    "helper_files",
    "run_fixtures",
    "scaffold",
]
