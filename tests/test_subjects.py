"""Subjects are built from data only through validated tokens."""

from __future__ import annotations

import pytest

from gitstore_agents.envelopes import SubjectError, Subjects
from gitstore_agents.guardrails import subject_matches


@pytest.mark.parametrize("bad", ["a.b", "a b", "*", ">", "", "repo>", "x\ny"])
def test_repository_ids_cannot_inject_tokens(bad: str) -> None:
    with pytest.raises(SubjectError, match="repository_id"):
        Subjects().git_push(bad)


def test_subject_scheme() -> None:
    s = Subjects(prefix="gitstore")
    assert s.git_push("0193f1c2-0000-7000-8000-00000000c0de") == (
        "gitstore.events.git.push.0193f1c2-0000-7000-8000-00000000c0de"
    )
    assert s.task("markdown.compile", "ab" * 32) == f"gitstore.tasks.markdown.compile.{'ab' * 32}"
    assert s.validations_of("markdown.compile") == "gitstore.validation.markdown.compile.*"


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("a.b", "a.c", False),
        ("a.b.c", "a.b", False),
    ],
)
def test_wildcard_matching(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected
