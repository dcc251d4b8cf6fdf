"""Golden tests of the reference WASI task modules (sources in ``tasks/``).

Each golden case is a stdin document and the exact bytes the module must
print, with the expected exit code in the file name:

- ``data/tasks/markdown-compile/<case>.md``: the file content; stdin is
  ``{"path": "products/<case>.md", "content": <file>, "parameters": {}}``.
- ``data/tasks/<module>/<case>.input.json``: the whole stdin document
  (catalog-enrich and extension-sample).
- ``<case>.json`` (exit 0) or ``<case>.exit<N>.json`` (exit N): expected stdout.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitstore_agents.sandbox import (
    REFERENCE_MODULES,
    CompiledModule,
    Limits,
    Outcome,
    RunResult,
    Sandbox,
    reference_module_path,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "tasks"
LIMITS = Limits(fuel=500_000_000, timeout_ms=5_000, memory_bytes=64 * 1024 * 1024)
# The budget a 100 KB pathological markdown body must stay within.
PATHOLOGICAL_FUEL_BUDGET = 80_000_000
EXIT_REJECTED = 65

FRONTMATTER = (
    "---\n"
    "apiVersion: catalog.gitstore.dev/v1beta1\n"
    "kind: Product\n"
    "metadata:\n"
    "  name: pathological\n"
    "spec: {}\n"
    "---\n"
)


@dataclass(frozen=True)
class GoldenCase:
    """One stdin document and the output it must produce."""

    module: str
    name: str
    stdin: bytes
    expected: Path
    exit_code: int

    @property
    def id(self) -> str:
        """Test id: ``<module>/<case>``."""
        return f"{self.module}/{self.name}"


def _expected_output(directory: Path, name: str) -> tuple[Path, int]:
    found = sorted(directory.glob(f"{name}.json")) + sorted(directory.glob(f"{name}.exit*.json"))
    if len(found) != 1:
        raise AssertionError(f"{directory.name}/{name}: expected one output file, found {found}")
    path = found[0]
    suffix = path.name.removeprefix(f"{name}.").removesuffix(".json")
    return path, int(suffix.removeprefix("exit")) if suffix.startswith("exit") else 0


def _markdown_stdin(name: str, content: str) -> bytes:
    doc = {"path": f"products/{name}.md", "content": content, "parameters": {}}
    return json.dumps(doc).encode()


def _golden_cases() -> list[GoldenCase]:
    cases = []
    md_dir = DATA / "markdown-compile"
    for source in sorted(md_dir.glob("*.md")):
        expected, code = _expected_output(md_dir, source.stem)
        stdin = _markdown_stdin(source.stem, source.read_bytes().decode("utf-8"))
        cases.append(GoldenCase("markdown-compile", source.stem, stdin, expected, code))
    for module in ("catalog-enrich", "extension-sample"):
        directory = DATA / module
        for source in sorted(directory.glob("*.input.json")):
            name = source.name.removesuffix(".input.json")
            expected, code = _expected_output(directory, name)
            cases.append(GoldenCase(module, name, source.read_bytes(), expected, code))
    return cases


GOLDEN_CASES = _golden_cases()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """One sandbox for the whole module (compiling is the slow part)."""
    box = Sandbox()
    yield box
    box.close()


@pytest.fixture(scope="module")
def modules(sandbox: Sandbox) -> dict[str, CompiledModule]:
    """The packaged reference modules, compiled once."""
    return {
        name: sandbox.compile(reference_module_path(name).read_bytes())
        for name in REFERENCE_MODULES
    }


def _run(sandbox: Sandbox, module: CompiledModule, stdin: bytes) -> RunResult:
    return sandbox.run(module, stdin=stdin, limits=LIMITS)


def _canonical(value: object) -> bytes:
    """Python's rendering of the canonical JSON form the modules must emit."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def test_golden_data_is_present() -> None:
    counts = {m: sum(1 for c in GOLDEN_CASES if c.module == m) for m in REFERENCE_MODULES}
    assert counts["markdown-compile"] >= 12
    assert counts["catalog-enrich"] >= 5
    assert counts["extension-sample"] >= 3


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=[c.id for c in GOLDEN_CASES])
def test_golden(case: GoldenCase, sandbox: Sandbox, modules: dict[str, CompiledModule]) -> None:
    result = _run(sandbox, modules[case.module], case.stdin)
    expected_outcome = Outcome.OK if case.exit_code == 0 else Outcome.EXIT_NONZERO
    assert (result.outcome, result.exit_code) == (expected_outcome, case.exit_code), result.stderr
    assert result.stdout == case.expected.read_bytes()
    assert result.stderr == b""


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=[c.id for c in GOLDEN_CASES])
def test_golden_output_is_canonical_json(case: GoldenCase) -> None:
    expected = case.expected.read_bytes()
    document = json.loads(expected)
    assert _canonical(document) == expected
    if case.exit_code == EXIT_REJECTED:
        assert document["errors"], "a rejection carries at least one error"
        for error in document["errors"]:
            assert sorted(error) == ["constraint", "field", "file_path", "message"]


def test_content_digest_matches_python_canonical_json() -> None:
    cases = [c for c in GOLDEN_CASES if c.module == "catalog-enrich" and c.exit_code == 0]
    assert cases
    for case in cases:
        compiled = json.loads(case.stdin)["compiled"]
        output = json.loads(case.expected.read_bytes())
        digest = hashlib.sha256(_canonical(compiled)).hexdigest()
        assert output["enrichment"]["content_digest"] == f"sha256:{digest}", case.id


@pytest.mark.parametrize(
    "case",
    [c for c in GOLDEN_CASES if c.name in {"product-realistic", "product", "issues"}],
    ids=lambda c: c.id,
)
def test_deterministic(
    case: GoldenCase, sandbox: Sandbox, modules: dict[str, CompiledModule]
) -> None:
    first = _run(sandbox, modules[case.module], case.stdin)
    second = _run(sandbox, modules[case.module], case.stdin)
    assert first.outcome == second.outcome == Outcome.OK
    assert first.stdout == second.stdout
    assert first.fuel_used == second.fuel_used


def _malformed_inputs() -> list[tuple[str, bytes]]:
    rng = random.Random(20260101)
    inputs = [
        ("empty", b""),
        ("whitespace", b" \n\t "),
        ("null", b"null"),
        ("array", b"[1, 2, 3]"),
        ("truncated", b'{"path": "p.md", "content": "---\\nkind'),
        ("invalid-utf8", b'{"path": "p.md", "content": "caf\xe9"}'),
        ("lone-surrogate", b'{"path": "p.md", "content": "\\ud83d"}'),
        ("deep-arrays", b"[" * 100_000),
        ("deep-objects", b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
        ("float-everywhere", b'{"path": 1.5, "content": 2e9, "compiled": 0.1}'),
        ("duplicate-keys", b'{"path": "a", "path": "b"}'),
        ("nul-bytes", b'{"path": "p.md", "content": "---\\u0000\\n---\\n\\u0000"}'),
    ]
    for index in range(8):
        size = rng.randrange(1, 4096)
        inputs.append((f"random-{index}", bytes(rng.randrange(256) for _ in range(size))))
    deep_yaml = "---\nspec:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)) + "---\n"
    inputs.append(("deep-yaml", _markdown_stdin("deep-yaml", deep_yaml)))
    deep_flow = "---\nspec: " + "[" * 5000 + "\n---\n"
    inputs.append(("deep-flow", _markdown_stdin("deep-flow", deep_flow)))
    return inputs


MALFORMED = _malformed_inputs()


@pytest.mark.parametrize("module_name", REFERENCE_MODULES)
@pytest.mark.parametrize("payload", [p for _, p in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_input_is_rejected_not_trapped(
    module_name: str,
    payload: bytes,
    sandbox: Sandbox,
    modules: dict[str, CompiledModule],
) -> None:
    result = _run(sandbox, modules[module_name], payload)
    assert result.outcome is Outcome.EXIT_NONZERO, result.detail
    assert result.exit_code in (1, EXIT_REJECTED)
    if result.exit_code == EXIT_REJECTED:
        errors = json.loads(result.stdout)["errors"]
        assert errors
        assert _canonical({"errors": errors}) == result.stdout


PATHOLOGICAL_BODIES = {
    "stars": "*" * 100_000,
    "unclosed-emphasis": "*a " * 33_000,
    "nested-emphasis": "*" * 50_000 + "a" + "*" * 50_000,
    "open-brackets": "[" * 100_000,
    "nested-brackets": "[" * 50_000 + "a" + "]" * 50_000,
    "unclosed-links-angle": "[a](<b" * 16_000,
    "unclosed-links-bare": "[a](b" * 20_000,
    "unclosed-link-titles": '[a]("' * 20_000,
    "backtick-runs": " ".join("`" * i for i in range(1, 440)),
    "link-closers": "a]" * 50_000,
    "mismatched-delimiters": "*a_ " * 25_000,
    "link-emphasis": "[ a_" * 25_000,
    "nested-block-quotes": ">" * 100_000,
    "dash-runs": "- " * 50_000,
    "nested-ordered-lists": "1. " * 33_000,
    "entities": "&#" * 50_000,
    "autolinks": "<a:" * 33_000,
}


@pytest.mark.parametrize("body", PATHOLOGICAL_BODIES.values(), ids=PATHOLOGICAL_BODIES.keys())
def test_pathological_markdown_stays_within_fuel(
    body: str, sandbox: Sandbox, modules: dict[str, CompiledModule]
) -> None:
    stdin = _markdown_stdin("pathological", FRONTMATTER + body)
    result = _run(sandbox, modules["markdown-compile"], stdin)
    assert result.exit_code in (0, EXIT_REJECTED), result.detail
    assert result.fuel_used < PATHOLOGICAL_FUEL_BUDGET


@pytest.mark.skipif(importlib.util.find_spec("ziglang") is None, reason="ziglang is not installed")
def test_committed_modules_are_reproducible() -> None:
    build = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tasks" / "build.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
