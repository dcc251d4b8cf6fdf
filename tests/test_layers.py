"""The folders are the design: data flows one way, and each package says what it is for.

Every module of ``gitstore_agents`` is parsed (not imported) and each of its
``from ..x import`` / ``import gitstore_agents.x`` statements is checked
against the layer order below: a module may import its own package and any
lower layer, never a higher one (``TYPE_CHECKING`` imports included, so a type
cannot smuggle a dependency upwards). Packages on the same layer do not
import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "gitstore_agents"

# Lowest first. Modules at the package root (errors, codes, clock) are layer 0.
LAYERS: dict[str, int] = {
    "errors": 0,
    "codes": 0,
    "clock": 0,
    "envelopes": 1,
    "sandbox": 1,
    "config": 2,
    "guardrails": 3,
    "telemetry": 4,
    "consumers": 5,
    "pipeline": 6,
    "service": 7,
    "ops": 8,
    "kit": 8,
    "embedded": 9,
    "cli": 10,
}
ROOT_MODULES = {"__init__", "__main__", "errors", "codes", "clock"}


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imported_parts(path: Path) -> set[tuple[str, int]]:
    """(top-level part of gitstore_agents, line) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    depth = len(path.relative_to(PACKAGE).parts) - 1
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                module = node.module or ""
                if module.startswith("gitstore_agents."):
                    found.add((module.split(".")[1], node.lineno))
                continue
            if node.level <= depth:
                continue  # inside the module's own package
            # ``from ..x import y`` (package module) or ``from . import y`` (root module)
            if node.module:
                found.add((node.module.split(".")[0], node.lineno))
            else:
                found.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("gitstore_agents."):
                    found.add((alias.name.split(".")[1], node.lineno))
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_top_level_part_has_a_layer() -> None:
    parts = {_part(p) for p in _modules()} - {"__init__", "__main__"}
    assert parts <= set(LAYERS), f"give these a layer in LAYERS: {sorted(parts - set(LAYERS))}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_or_sibling_layer(path: Path) -> None:
    own = _part(path)
    if own in ("__init__", "__main__"):
        return
    rank = LAYERS[own]
    wrong = sorted(
        f"line {line}: {part} (layer {LAYERS[part]})"
        for part, line in _imported_parts(path)
        if part in LAYERS and part != own and LAYERS[part] >= rank
    )
    assert not wrong, f"{own} (layer {rank}) reaches up or sideways: {wrong}"


@pytest.mark.parametrize(
    "package",
    sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()),
)
def test_every_package_states_its_one_job(package: str) -> None:
    docstring = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))
    assert docstring, f"{package}/__init__.py has no docstring"
    first = docstring.splitlines()[0]
    # "Name: what it is for." -- the first line names the package and its job.
    assert first.lower().startswith(package.lower()), first
    assert ":" in first, first


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The walker sees relative and absolute imports alike (guards the test itself)."""
    module = PACKAGE / "consumers" / "_layer_probe.py"
    module.write_text("from ..pipeline import TaskHandler\nimport gitstore_agents.cli\n")
    try:
        assert {part for part, _ in _imported_parts(module)} == {"pipeline", "cli"}
    finally:
        module.unlink()
