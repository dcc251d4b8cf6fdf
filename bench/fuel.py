"""Fuel, time and memory of the markdown-compile reference module per input byte.

Run from the repository root::

    python -m bench.fuel [--shapes realistic,links] [--max-bytes 1000000]

Builds product files of 1 KB to 4 MB (stdin bytes, the canonical
``MarkdownInput`` document as the planner sends it) in several shapes, each
made of realistic pieces (``bench/_products.py``) repeated and scaled, and
runs the packaged module on each through :class:`Sandbox` with limits far
above any policy, so nothing but the module's own work shows. A linear
compiler has a flat fuel per byte for every shape; the table ends with the
ratio of fuel per byte at the largest size to that at 100 KB and at the
smallest size (where the fixed start-up cost dominates, so that ratio is
below 1 when all is well), and a ``fuel = base + per_byte * stdin_bytes``
budget with 2x headroom over the worst product shape. The ``adv-*`` shapes
are the pathological bodies of the golden tests scaled up: measured for
linearity, left out of the budget.

Fuel prices every wasm instruction alike: one bulk ``memory.copy`` costs one
unit whatever it copies, so a quadratic amount of copying shows only in the
``ns/byte`` column. Peak memory is the linear memory's final size (it never
shrinks), to compare with the sandbox's default ``memory_bytes`` and the
policy's ceilings.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import msgspec

from gitstore_agents.envelopes import MarkdownInput, canonical_json
from gitstore_agents.sandbox import (
    CompiledModule,
    RunResult,
    Sandbox,
    SandboxLimits,
    reference_module_path,
)

from ._products import _FEATURES, _SUB_FEATURES, _paragraph, product_markdown

MIB = 1024 * 1024
SIZES = (1_000, 10_000, 100_000, 500_000, 1_000_000, 2_000_000, 4_000_000)
# Far above any policy ceiling: the module's own cost is what is measured.
LIMITS = SandboxLimits(
    fuel=10**13,
    timeout_ms=600_000,
    memory_bytes=1024 * MIB,
    max_input_bytes=8 * MIB,
    max_stdout_bytes=512 * MIB,
)
# Headroom of the recommended budget over the worst measurement.
HEADROOM = 2
# What the default SandboxLimits and the example policy's markdown-compiler allow.
DEFAULT_MEMORY_BYTES = SandboxLimits().memory_bytes
POLICY_MEMORY_BYTES = 128 * MIB

_WORDS = ("trail", "grip", "comfort", "weather", "stable", "light", "tested", "mile", "summit")


def _split(content: str) -> tuple[str, str]:
    """(frontmatter with both markers, body) of a generated product file."""
    end = content.index("\n---\n", 4) + len("\n---\n")
    return content[:end], content[end:]


def _frontmatter() -> str:
    return _split(product_markdown(0)[1])[0]


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."


# ---- shapes: an opening and an endless stream of pieces ----------------------

Pieces = Iterator[str]


def _realistic(rng: random.Random) -> Pieces:
    """Bodies of many generated products, one after the other."""
    number = 1
    while True:
        yield _split(product_markdown(number)[1])[1] + "\n"
        number += 1


def _paragraphs(rng: random.Random) -> Pieces:
    """Long body paragraphs with a little inline markup."""
    while True:
        text = _paragraph(rng)
        if rng.random() < 0.3:
            text += f" **{rng.choice(_WORDS)}** and `{rng.choice(_WORDS)}`."
        yield text + " " + _paragraph(rng) + "\n\n"


def _big_paragraph(rng: random.Random) -> Pieces:
    """One paragraph of short lines (soft breaks) with some markup: a single inline subject."""
    count = 0
    while True:
        count += 1
        line = _sentence(rng)
        if count % 7 == 0:
            line += f" See the [{rng.choice(_WORDS)} guide](https://shop.example/g/{count})."
        elif count % 5 == 0:
            line += f" **{rng.choice(_WORDS)}** and _{rng.choice(_WORDS)}_."
        yield line + "\n"


def _long_line(rng: random.Random) -> Pieces:
    """The whole body on one line."""
    while True:
        yield _sentence(rng) + " "


def _list_items(rng: random.Random) -> Pieces:
    """One long bullet list with nested items and an occasional numbered list."""
    yield "## Highlights\n\n"
    count = 0
    while True:
        count += 1
        yield f"- {rng.choice(_FEATURES)} ({count})\n"
        if rng.random() < 0.3:
            yield "".join(f"  - {s}\n" for s in rng.sample(_SUB_FEATURES, 2))
        if rng.random() < 0.05:
            yield "  1. Order your usual size.\n  2. Between sizes? Go up.\n"


def _frontmatter_maps(rng: random.Random) -> Pieces:
    """Labels and annotations mappings that grow with the file (the body stays small)."""
    count = 0
    while True:
        count += 1
        yield f"    label-{count}: {rng.choice(_WORDS)}-{count}\n"
        yield f'    gitstore.dev/note-{count}: "{_sentence(rng)}"\n'


def _frontmatter_flow(rng: random.Random) -> Pieces:
    """A flow mapping and a flow sequence that grow with the file, over many lines."""
    count = 0
    while True:
        count += 1
        yield f"    key-{count}: {rng.choice(_WORDS)} {count}, tag-{count},\n"


def _headings(rng: random.Random) -> Pieces:
    """Many headings (ATX and setext) with a one-line paragraph now and then."""
    count = 0
    while True:
        count += 1
        level = rng.randint(1, 6)
        yield f"{'#' * level} {rng.choice(_WORDS).capitalize()} {count}\n"
        if rng.random() < 0.3:
            yield f"{_sentence(rng)}\n{'=' if rng.random() < 0.5 else '-' * 8}\n"
        if rng.random() < 0.3:
            yield f"\n{_sentence(rng)}\n\n"


def _code_blocks(rng: random.Random) -> Pieces:
    """Fenced and indented code blocks between short paragraphs."""
    while True:
        lines = [f"{rng.choice(_WORDS)}: {rng.randint(0, 1800)}" for _ in range(rng.randint(3, 30))]
        if rng.random() < 0.7:
            yield "```yaml\n" + "\n".join(lines) + "\n```\n\n"
        else:
            yield "".join(f"    {line}\n" for line in lines) + "\n"
        yield _sentence(rng) + "\n\n"


def _nesting(rng: random.Random) -> Pieces:
    """Block quotes, lists and emphasis nested close to the caps (16 levels)."""
    while True:
        depth = rng.randint(4, 12)
        yield "".join("> " * d + f"{_sentence(rng)}\n" for d in range(1, depth + 1)) + "\n"
        yield "".join("  " * d + f"- {rng.choice(_FEATURES)}\n" for d in range(depth)) + "\n"
        words = [rng.choice(_WORDS) for _ in range(depth)]
        marks = ["*" if k % 2 else "**" for k in range(depth)]
        inner = " ".join(f"{m}{w}" for m, w in zip(marks, words, strict=True))
        yield inner + " core" + "".join(reversed(marks)) + ".\n\n"


def _emphasis(rng: random.Random) -> Pieces:
    """Paragraphs dense with emphasis, strong, intraword and unmatched delimiters."""
    forms = (
        "*{w}*",
        "**{w}**",
        "_{w}_",
        "__{w}__",
        "***{w}***",
        "{w}*{w}*{w}",
        "snake_{w}_case",
        "2 * {n}",
        "*{w}",
        "**{w} *{w}* {w}**",
        "`{w}`",
    )
    while True:
        parts = []
        for _ in range(rng.randint(10, 40)):
            form = rng.choice(forms)
            parts.append(form.format(w=rng.choice(_WORDS), n=rng.randint(1, 99)))
        yield " ".join(parts) + ".\n\n"


def _links(rng: random.Random) -> Pieces:
    """Inline links and images, reference links with their definitions, autolinks."""
    count = 0
    while True:
        count += 1
        word = rng.choice(_WORDS)
        yield (
            f'See the [{word} guide](https://shop.example/{word}/{count} "{word.title()}"), '
            f"the [spec sheet][ref-{count}], [ref-{count - 1}] and "
            f"<https://cdn.example/{count}.pdf> or <team-{count}@example.com>.\n"
            f"![{word}, side view](https://cdn.example/img/{count}.jpg)\n\n"
            f'[ref-{count}]: https://docs.example/{word}/{count} "Sheet {count}"\n\n'
        )


def _repeat(unit: str) -> Callable[[random.Random], Pieces]:
    """One paragraph: ``unit`` over and over (the pathological bodies of the golden tests)."""

    def pieces(rng: random.Random) -> Pieces:
        while True:
            yield unit

    return pieces


@dataclass(frozen=True)
class Shape:
    """How to fill a product file: pieces that go into the frontmatter or the body.

    ``adversarial`` shapes are crafted worst cases (no product looks like
    them): measured for linearity, kept out of the recommended budget.
    """

    name: str
    pieces: Callable[[random.Random], Pieces]
    where: str = "body"  # "body", "labels" (metadata.labels) or "flow" (spec.attributes)
    adversarial: bool = False


SHAPES = (
    Shape("realistic", _realistic),
    Shape("paragraphs", _paragraphs),
    Shape("big-paragraph", _big_paragraph),
    Shape("long-line", _long_line),
    Shape("list-items", _list_items),
    Shape("frontmatter", _frontmatter_maps, where="labels"),
    Shape("frontmatter-flow", _frontmatter_flow, where="flow"),
    Shape("headings", _headings),
    Shape("code-blocks", _code_blocks),
    Shape("nesting", _nesting),
    Shape("emphasis", _emphasis),
    Shape("links", _links),
    Shape("adv-unclosed-links", _repeat("[a](b"), adversarial=True),
    Shape("adv-unclosed-titles", _repeat('[a]("'), adversarial=True),
    Shape("adv-unclosed-emphasis", _repeat("*a "), adversarial=True),
    Shape("adv-delimiters", _repeat("*a_ "), adversarial=True),
    Shape("adv-open-brackets", _repeat("["), adversarial=True),
    Shape("adv-entities", _repeat("&#"), adversarial=True),
)


def _escaped_len(text: str) -> int:
    return len(msgspec.json.encode(text)) - 2


def _stdin(path: str, content: str) -> bytes:
    return canonical_json(msgspec.to_builtins(MarkdownInput(path=path, content=content)))


def product_stdin(shape: Shape, size: int, *, seed: int = 13) -> bytes:
    """The markdown-compile stdin of a ``shape`` product file of about ``size`` bytes."""
    rng = random.Random(seed)
    frontmatter = _frontmatter()
    base_body = _split(product_markdown(0)[1])[1]
    path = f"products/fuel-{shape.name}.md"
    if shape.where == "labels":
        head, tail = frontmatter.split("  annotations:\n", 1)
        fixed = head + "  annotations:\n" + tail + base_body
    elif shape.where == "flow":
        head, tail = frontmatter[: -len("---\n")], "---\n"
        fixed = head + "  attributes: {\n" + "  }\n" + tail + base_body
    else:
        head, tail = frontmatter, "# Title\n\n"
        fixed = head + tail
    budget = size - len(_stdin(path, fixed))
    chunks: list[str] = []
    for piece in shape.pieces(rng):
        cost = _escaped_len(piece)
        if cost > budget:
            break
        chunks.append(piece)
        budget -= cost
    grown = "".join(chunks)
    if shape.where == "labels":
        # Alternate lines: labels first, then annotations, both growing.
        lines = grown.splitlines(keepends=True)
        labels = "".join(line for line in lines if line.startswith("    label-"))
        notes = "".join(line for line in lines if not line.startswith("    label-"))
        content = head + labels + "  annotations:\n" + notes + tail + base_body
    elif shape.where == "flow":
        content = head + "  attributes: {\n" + grown + "  }\n" + tail + base_body
    else:
        content = head + tail + grown
    return _stdin(path, content)


# ---- measuring ---------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One run: a shape at one size."""

    shape: str
    stdin_bytes: int
    result: RunResult

    @property
    def fuel_per_byte(self) -> float:
        """Fuel used per stdin byte."""
        return self.result.fuel_used / self.stdin_bytes

    @property
    def ns_per_byte(self) -> float:
        """Wall time per stdin byte."""
        return self.result.wall_time_us * 1000 / self.stdin_bytes

    @property
    def outcome(self) -> str:
        """Outcome, with the exit code when it is not ok."""
        r = self.result
        return r.outcome.value if r.ok else f"{r.outcome.value} ({r.exit_code}) {r.detail[:40]}"


def measure(
    sandbox: Sandbox,
    module: CompiledModule,
    shape: Shape,
    size: int,
    limits: SandboxLimits = LIMITS,
) -> Row:
    """Run the module once on a ``shape`` product of about ``size`` stdin bytes."""
    stdin = product_stdin(shape, size)
    return Row(shape.name, len(stdin), sandbox.run(module, stdin, limits))


def _print_table(rows: Sequence[Row]) -> None:
    header = (
        f"{'shape':<22} {'stdin bytes':>11} {'fuel used':>14} {'fuel/B':>7} "
        f"{'output bytes':>12} {'wall ms':>9} {'ns/B':>6} {'peak mem MiB':>12}  outcome"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        r = row.result
        print(
            f"{row.shape:<22} {row.stdin_bytes:>11,} {r.fuel_used:>14,} {row.fuel_per_byte:>7.1f} "
            f"{len(r.stdout):>12,} {r.wall_time_us / 1000:>9.1f} {row.ns_per_byte:>6.1f} "
            f"{r.peak_memory_bytes / MIB:>12.1f}  {row.outcome}"
        )


def _print_linearity(rows: Sequence[Row]) -> None:
    print("\nlinearity: fuel/byte (and ns/byte) at the largest size over that at 100 KB and 1 KB")
    for name in dict.fromkeys(row.shape for row in rows):
        mine = sorted((r for r in rows if r.shape == name), key=lambda r: r.stdin_bytes)
        first, last = mine[0], mine[-1]
        mid = min(mine, key=lambda r: abs(r.stdin_bytes - 100_000))
        print(
            f"  {name:<22} fuel {last.fuel_per_byte / mid.fuel_per_byte:5.2f}x (/100KB) "
            f"{last.fuel_per_byte / first.fuel_per_byte:5.2f}x (/1KB)   "
            f"time {last.ns_per_byte / mid.ns_per_byte:5.2f}x (/100KB)"
        )


@dataclass(frozen=True)
class Budget:
    """``fuel = base + per_byte * stdin_bytes`` from measurements, before headroom."""

    base: int
    per_byte: float
    worst: Row


def budget(rows: Sequence[Row]) -> Budget:
    """Worst fuel per byte at the largest size (or between the two largest sizes of a shape).

    ``base`` is the most fuel any input of the smallest size used.
    """
    ok = [r for r in rows if r.result.ok]
    largest = max(r.stdin_bytes for r in ok)
    worst = max((r for r in ok if r.stdin_bytes >= largest * 0.9), key=lambda r: r.fuel_per_byte)
    per_byte = worst.fuel_per_byte
    for name in dict.fromkeys(r.shape for r in ok):
        mine = sorted((r for r in ok if r.shape == name), key=lambda r: r.stdin_bytes)
        if len(mine) >= 2 and mine[-1].stdin_bytes > mine[-2].stdin_bytes:
            a, b = mine[-2], mine[-1]
            slope = (b.result.fuel_used - a.result.fuel_used) / (b.stdin_bytes - a.stdin_bytes)
            per_byte = max(per_byte, slope)
    smallest = min(r.stdin_bytes for r in ok)
    base = max(r.result.fuel_used for r in ok if r.stdin_bytes <= smallest * 1.5)
    return Budget(base, per_byte, worst)


def _print_summary(rows: Sequence[Row], adversarial: set[str]) -> None:
    realistic = [r for r in rows if r.shape not in adversarial and r.result.ok]
    if realistic:
        b = budget(realistic)
        print(
            f"\nproduct shapes: worst fuel/byte {b.worst.fuel_per_byte:.1f} ({b.worst.shape}, "
            f"{b.worst.stdin_bytes:,} B), {b.per_byte:.1f} counting the slope between the two "
            f"largest sizes; most fuel at the smallest size {b.base:,}"
        )
        print(
            f"budget with {HEADROOM}x headroom: fuel = {HEADROOM * b.base:,} + "
            f"{HEADROOM * b.per_byte:.0f} * stdin_bytes"
        )
        peak = max(realistic, key=lambda r: r.result.peak_memory_bytes)
        print(
            f"peak memory: {peak.result.peak_memory_bytes / MIB:.1f} MiB ({peak.shape}, "
            f"{peak.stdin_bytes:,} B); default memory_bytes {DEFAULT_MEMORY_BYTES / MIB:.0f} MiB, "
            f"example policy ceiling {POLICY_MEMORY_BYTES / MIB:.0f} MiB"
        )
        output = max(realistic, key=lambda r: len(r.result.stdout))
        print(
            f"largest output: {len(output.result.stdout):,} B ({output.shape}, "
            f"{output.stdin_bytes:,} B); default max_stdout_bytes "
            f"{SandboxLimits().max_stdout_bytes:,}"
        )
    crafted = [r for r in rows if r.shape in adversarial]
    if crafted:
        worst = max(crafted, key=lambda r: r.fuel_per_byte)
        peak = max(crafted, key=lambda r: r.result.peak_memory_bytes)
        print(
            f"adversarial shapes (not in the budget): worst fuel/byte {worst.fuel_per_byte:.1f} "
            f"({worst.shape}, {worst.stdin_bytes:,} B); peak memory "
            f"{peak.result.peak_memory_bytes / MIB:.1f} MiB ({peak.shape}, {peak.stdin_bytes:,} B)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every shape at every size and print the table; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuel", description=__doc__)
    parser.add_argument(
        "--shapes", default=",".join(s.name for s in SHAPES), help="comma-separated shape names"
    )
    parser.add_argument(
        "--max-bytes", type=int, default=SIZES[-1], help="largest size measured (%(default)s)"
    )
    args = parser.parse_args(argv)
    wanted = args.shapes.split(",")
    unknown = set(wanted) - {s.name for s in SHAPES}
    if unknown:
        parser.error(f"unknown shapes: {', '.join(sorted(unknown))}")
    shapes = [s for s in SHAPES if s.name in wanted]
    sizes = [size for size in SIZES if size <= args.max_bytes]

    sandbox = Sandbox()
    try:
        wasm = reference_module_path("markdown-compile").read_bytes()
        module = sandbox.compile(wasm)
        print(f"module: markdown-compile ({module.digest}, {len(wasm):,} bytes)\n")
        rows = [measure(sandbox, module, shape, size) for shape in shapes for size in sizes]
    finally:
        sandbox.close()
    _print_table(rows)
    _print_linearity(rows)
    _print_summary(rows, {shape.name for shape in shapes if shape.adversarial})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
