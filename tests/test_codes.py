"""The code registry: one list, the docs list exactly it, and the source writes only its codes."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import gitstore_agents
from gitstore_agents import codes
from gitstore_agents.errors import GitStoreAgentsError
from gitstore_agents.sandbox import Outcome

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "gitstore_agents"
# Literal codes in the source: keyword arguments, class attributes and refusals.
_LITERAL = re.compile(
    r"""\bcode\s*=\s*"([a-z0-9-]+)"|_refused\(\s*"([a-z0-9-]+)"|Refusal\(\s*"([a-z0-9-]+)\""""
)
_ROW = re.compile(r"^\| `([a-z0-9-]+)` \| (yes|no) \| (.+) \|$")


def _documented() -> dict[str, bool]:
    rows = {}
    for line in (ROOT / "docs" / "codes.md").read_text().splitlines():
        match = _ROW.match(line)
        if match:
            assert match[1] not in rows, f"docs/codes.md lists {match[1]} twice"
            rows[match[1]] = match[2] == "yes"
    return rows


def _error_classes() -> list[type[GitStoreAgentsError]]:
    for module in pkgutil.walk_packages(gitstore_agents.__path__, "gitstore_agents."):
        if not module.name.endswith("__main__"):  # runs the command line
            importlib.import_module(module.name)
    found: list[type[GitStoreAgentsError]] = []
    stack = [GitStoreAgentsError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def test_the_docs_list_every_code_with_its_flag_and_nothing_else() -> None:
    documented = _documented()
    registered = {name: entry.retryable for name, entry in codes.CODES.items()}
    assert set(documented) - set(registered) == set(), "documented but not in codes.py"
    assert set(registered) - set(documented) == set(), "in codes.py but not in docs/codes.md"
    assert documented == registered, "retryable flags differ between docs and codes.py"


def test_every_code_the_source_writes_is_registered() -> None:
    written: dict[str, str] = {}
    for path in SOURCE.rglob("*.py"):
        for match in _LITERAL.finditer(path.read_text()):
            name = next(group for group in match.groups() if group)
            written.setdefault(name, str(path.relative_to(ROOT)))
    assert len(written) > 30, "the scan found the codes it should"
    unknown = {name: where for name, where in written.items() if name not in codes.CODES}
    assert unknown == {}


def test_error_classes_and_sandbox_outcomes_use_registered_codes() -> None:
    classes = [c for c in _error_classes() if c is not GitStoreAgentsError]
    assert len(classes) > 20
    for cls in classes:
        assert cls.code in codes.CODES, f"{cls.__qualname__}.code = {cls.code!r}"
    for outcome in Outcome:
        if outcome is not Outcome.OK:
            assert str(outcome) in codes.CODES, f"sandbox outcome {outcome}"


def test_a_code_says_whether_a_retry_can_help() -> None:
    assert codes.retryable("deadline-exceeded")
    assert not codes.retryable("fuel-exhausted")
    assert not codes.retryable("no-such-code")
    assert codes.code("payload-too-large").meaning
