"""Runs on a thread pool stay separate: each gets its own outcome, output and clock."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import wasmtime._func

from gitstore_agents.sandbox import Limits, Outcome, RunResult, Sandbox

from .hostile import wasm

# (module, stdin, limits, expected outcome)
_MIX = [
    ("echo", b"alpha", Limits(), Outcome.OK),
    ("exit_code", b"", Limits(), Outcome.EXIT_NONZERO),
    ("stdout_flood", b"", Limits(max_stdout_bytes=70_000), Outcome.OUTPUT_TOO_LARGE),
    ("memory_bomb", b"", Limits(memory_bytes=8 * 1024 * 1024), Outcome.MEMORY_LIMIT),
    ("spin", b"", Limits(fuel=2_000_000), Outcome.FUEL_EXHAUSTED),
    ("recursion", b"", Limits(), Outcome.TRAP),
    ("echo", b"omega", Limits(), Outcome.OK),
    ("time_entropy", b"", Limits(), Outcome.OK),
]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox()
    yield sb
    sb.close()


def test_concurrent_runs_each_get_their_own_outcome(sandbox: Sandbox) -> None:
    modules = {name: sandbox.compile(wasm(name)) for name, *_ in _MIX}
    expected = [
        sandbox.run(modules[name], stdin, limits, seed=index)
        for index, (name, stdin, limits, _) in enumerate(_MIX)
    ]

    def run(index: int) -> tuple[int, RunResult]:
        name, stdin, limits, _ = _MIX[index % len(_MIX)]
        return index, sandbox.run(modules[name], stdin, limits, seed=index % len(_MIX))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(20 * len(_MIX))))
    for index, result in results:
        name, _, _, outcome = _MIX[index % len(_MIX)]
        assert result.outcome is outcome, (name, result.detail)
        reference = expected[index % len(_MIX)]
        assert (result.stdout, result.exit_code, result.fuel_used) == (
            reference.stdout,
            reference.exit_code,
            reference.fuel_used,
        ), name


@pytest.fixture
def foreign_host_exception() -> Iterator[None]:
    """What wasmtime-py leaves behind when a host function on another thread raises."""
    wasmtime._func.LAST_EXCEPTION = RuntimeError("raised by a host function on another thread")
    try:
        yield
    finally:
        wasmtime._func.LAST_EXCEPTION = None


@pytest.mark.usefixtures("foreign_host_exception")
@pytest.mark.parametrize(
    ("name", "limits", "outcome"),
    [
        ("exit_code", Limits(), Outcome.EXIT_NONZERO),
        ("spin", Limits(fuel=1_000_000), Outcome.FUEL_EXHAUSTED),
        ("stdout_flood", Limits(max_stdout_bytes=1000), Outcome.OUTPUT_TOO_LARGE),
    ],
)
def test_outcome_comes_from_the_run_not_from_a_stray_exception(
    sandbox: Sandbox, name: str, limits: Limits, outcome: Outcome
) -> None:
    # wasmtime-py re-raises the stray exception on this run's trap instead of
    # the trap itself; the outcome must still be this run's.
    result = sandbox.run(sandbox.compile(wasm(name)), b"", limits)
    assert result.outcome is outcome
    if outcome is Outcome.EXIT_NONZERO:
        assert result.exit_code == 3
