"""The markdown-compile reference module costs fuel and memory in proportion to its input.

The pipeline budgets a compile task ``base + per_byte * stdin_bytes`` fuel,
with the per-byte figure measured by ``python -m bench.fuel`` (which prints
the whole table, 1 KB to 4 MB). These checks are the CI-sized part of it: a
parser that rescans (quadratic time) or copies per append fails them long
before a product of a few hundred KB runs out of fuel in production.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bench import fuel as fuel_bench
from bench.fuel import SHAPES, Row, Shape, measure, product_stdin

from gitstore_agents.config import MARKDOWN_COMPILE, load_config
from gitstore_agents.sandbox import (
    CompiledModule,
    Outcome,
    Sandbox,
    SandboxLimits,
    reference_module_path,
)

SHAPE = {shape.name: shape for shape in SHAPES}
# The costliest shape for each part of the compiler: inlines, YAML (n log n:
# keys are sorted for the output), blocks, and a crafted link-destination
# pattern that would be quadratic without its memo.
LINEARITY_SHAPES = ("emphasis", "frontmatter-flow", "list-items", "adv-unclosed-links")
SMALL, SIZES = 4_096, (65_536, 1_000_000)
# Fuel per byte at a size may exceed the 4 KB figure by this factor at most.
LINEARITY = 1.5
# Every product shape stays below this: the recommended per-byte budget is
# twice the worst measured (2 x ~222 fuel a byte), so this keeps headroom.
MAX_FUEL_PER_BYTE = 300
# The largest stdin the module (and the sandbox) accepts is 8 MiB; a product file that size.
LARGEST = 8 * 1024 * 1024 - 4_096


@pytest.fixture(scope="module")
def compiler() -> Iterator[tuple[Sandbox, CompiledModule]]:
    """A sandbox and the packaged markdown-compile module (compiled once)."""
    sandbox = Sandbox()
    module = sandbox.compile(reference_module_path("markdown-compile").read_bytes())
    yield sandbox, module
    sandbox.close()


def _measure(
    compiler: tuple[Sandbox, CompiledModule],
    shape: Shape,
    size: int,
    limits: SandboxLimits = fuel_bench.LIMITS,
) -> Row:
    sandbox, module = compiler
    row = measure(sandbox, module, shape, size, limits)
    assert row.result.ok, f"{shape.name} at {size} B: {row.outcome}"
    return row


@pytest.mark.parametrize("name", LINEARITY_SHAPES)
def test_fuel_per_byte_stays_flat_as_input_grows(
    name: str, compiler: tuple[Sandbox, CompiledModule]
) -> None:
    small = _measure(compiler, SHAPE[name], SMALL).fuel_per_byte
    for size in SIZES:
        row = _measure(compiler, SHAPE[name], size)
        assert row.fuel_per_byte <= LINEARITY * small, (
            f"{name}: {row.fuel_per_byte:.0f} fuel/byte at {row.stdin_bytes:,} B, "
            f"{small:.0f} at {SMALL:,} B"
        )


def test_every_product_shape_stays_within_the_per_byte_budget(
    compiler: tuple[Sandbox, CompiledModule],
) -> None:
    for shape in SHAPES:
        if not shape.adversarial:
            row = _measure(compiler, shape, 256_000)
            assert row.fuel_per_byte <= MAX_FUEL_PER_BYTE, (shape.name, row.fuel_per_byte)


@pytest.mark.parametrize("name", ["realistic", "list-items", "frontmatter-flow"])
def test_the_largest_product_compiles_within_the_built_in_limits(
    name: str, compiler: tuple[Sandbox, CompiledModule]
) -> None:
    # The compile kind's built-in fuel and memory for a product of this size; the
    # deadline and the output cap are not what is checked here.
    stdin_bytes = len(product_stdin(SHAPE[name], LARGEST))
    task = load_config(env={}).kind(MARKDOWN_COMPILE)[1].limits.task_limits(stdin_bytes)
    limits = SandboxLimits(
        fuel=task.fuel,
        timeout_ms=60_000,
        memory_bytes=task.memory_bytes,
        # A list-heavy 8 MB file compiles to more than the 40 MiB output cap (which
        # refuses it, output-too-large); the fuel and memory are what is checked.
        max_stdout_bytes=128 * 1024 * 1024,
    )
    row = _measure(compiler, SHAPE[name], LARGEST, limits)
    assert row.stdin_bytes > 8_000_000
    assert row.result.outcome == Outcome.OK, row.result.detail


def test_the_benchmark_prints_its_table_and_budget(capsys: pytest.CaptureFixture[str]) -> None:
    assert fuel_bench.main(["--max-bytes", "10000", "--shapes", "realistic,adv-entities"]) == 0
    out = capsys.readouterr().out
    assert "realistic" in out
    assert "fuel = " in out
    assert "adversarial shapes (not in the budget)" in out
