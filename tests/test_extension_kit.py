"""The extension kit: ``tasks new``, ``sandbox test`` and ``sandbox run --kind``.

Small WAT modules stand in for built extensions here (no toolchain needed);
``test_extension_wheel.py`` builds real C and Zig projects from the wheel.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitstore_agents.cli import main
from gitstore_agents.kit import LANGUAGES, helper_files, scaffold
from gitstore_agents.kit._scaffold import ProjectError
from gitstore_agents.sandbox import module_digest

from .wasm_modules import REJECTION, echo_module, rejecting_module, text_module

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_FIXTURES = ROOT / "src" / "gitstore_agents" / "kit" / "templates" / "common" / "fixtures"


def _project(tmp_path: Path, wasm: bytes, fixtures: dict[str, object]) -> Path:
    """A project dir with ``module.wasm`` and ``fixtures/<name>`` JSON files."""
    project = tmp_path / "project"
    (project / "fixtures").mkdir(parents=True)
    (project / "module.wasm").write_bytes(wasm)
    for name, document in fixtures.items():
        text = document if isinstance(document, str) else json.dumps(document)
        (project / "fixtures" / name).write_text(text)
    return project


def _test(project: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["sandbox", "test", str(project), *extra])
    return code, capsys.readouterr().out


ECHO_INPUT = {"path": "products/a.md", "title": "A"}


def test_sandbox_test_passes_fixtures_whose_result_is_the_expected_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(
        tmp_path,
        echo_module(),
        {
            "good.input.json": ECHO_INPUT,
            # Formatting does not matter: results are compared in canonical form.
            "good.output.json": json.dumps({"echo": ECHO_INPUT}, indent=4),
        },
    )
    code, out = _test(project, capsys)
    lines = out.splitlines()
    assert code == 0, out
    assert lines[0].startswith("PASS good")
    assert " ok fuel=" in lines[0]
    assert lines[-1].startswith("1 fixtures: 1 passed, 0 failed (module.wasm ")
    assert module_digest(echo_module()) in lines[-1]
    assert "kind extension.run, built-in default policy" in lines[-1]


def test_sandbox_test_fails_a_differing_or_missing_result_with_a_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(
        tmp_path,
        echo_module(),
        {
            "differs.input.json": ECHO_INPUT,
            "differs.output.json": {"echo": {**ECHO_INPUT, "title": "B"}},
            "missing.input.json": ECHO_INPUT,
            "wrong-outcome.input.json": ECHO_INPUT,
            "wrong-outcome.rejected.json": json.loads(REJECTION),
        },
    )
    code, out = _test(project, capsys)
    assert code == 1
    assert "FAIL differs" in out
    assert "the result differs from the expected one" in out
    assert '-    "title": "B"' in out
    assert '+    "title": "A"' in out
    assert "FAIL missing" in out
    assert "no expected result: write missing.output.json" in out
    assert "expected input-rejected, the worker says ok" in out
    assert out.splitlines()[-1].startswith("3 fixtures: 0 passed, 3 failed")

    # --update writes what the worker says; the run then passes.
    code, out = _test(project, capsys, "--update")
    assert code == 0, out
    assert not (project / "fixtures" / "wrong-outcome.rejected.json").exists()
    written = json.loads((project / "fixtures" / "missing.output.json").read_text())
    assert written == {"echo": ECHO_INPUT}


def test_sandbox_test_judges_like_the_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Exit 65 is input-rejected, compared with the errors document.
    project = _project(
        tmp_path / "rejects",
        rejecting_module(),
        {"bad.input.json": ECHO_INPUT, "bad.rejected.json": json.loads(REJECTION)},
    )
    code, out = _test(project, capsys)
    assert code == 0, out
    assert "PASS bad  input-rejected" in out

    # A float has no canonical form: refused at the output check, as in a worker.
    project = _project(
        tmp_path / "float",
        text_module('{"score":1.5}'),
        {"f.input.json": ECHO_INPUT, "f.output.json": '{"score": 1}'},
    )
    code, out = _test(project, capsys)
    assert code == 1
    assert "FAIL f  canonical-form at output-check" in out

    # An output that is not an object is refused by the policy's output check.
    project = _project(
        tmp_path / "array",
        text_module("[1]"),
        {"a.input.json": ECHO_INPUT, "a.output.json": "[1]"},
    )
    code, out = _test(project, capsys)
    assert code == 1
    assert "FAIL a  output-not-object at output-check" in out


def test_sandbox_test_applies_the_policy_paths_and_modules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wasm = echo_module()
    policy = (ROOT / "examples" / "policy.yaml").read_text()
    allowed = policy.replace(
        "      reference: [extension-sample]\n",
        f'      reference: [extension-sample]\n      digests: ["{module_digest(wasm)}"]\n',
    )
    assert allowed != policy
    (tmp_path / "policy.yaml").write_text(allowed)
    project = _project(
        tmp_path,
        wasm,
        {
            "inside.input.json": ECHO_INPUT,
            "inside.output.json": {"echo": ECHO_INPUT},
            "outside.input.json": {"path": "secrets/a.md"},
            "outside.output.json": {"echo": {"path": "secrets/a.md"}},
        },
    )
    code, out = _test(project, capsys, "--policy", str(tmp_path / "policy.yaml"))
    assert code == 1
    assert "PASS inside" in out
    assert "FAIL outside  path-not-allowed at admission" in out

    # A policy that does not allow the module: what a worker refuses at start.
    (tmp_path / "strict.yaml").write_text(policy)
    code = main(["sandbox", "test", str(project), "--policy", str(tmp_path / "strict.yaml")])
    assert code == 1
    assert "is not allowed by the policy" in capsys.readouterr().err


def test_sandbox_run_with_a_kind_applies_the_worker_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task_input = tmp_path / "input.json"
    task_input.write_text(json.dumps(ECHO_INPUT))

    def run(wasm: bytes, *extra: str) -> tuple[int, dict[str, object]]:
        module = tmp_path / "m.wasm"
        module.write_bytes(wasm)
        code = main(["sandbox", "run", str(module), "--input", str(task_input), *extra])
        report: dict[str, object] = json.loads(capsys.readouterr().out)
        return code, report

    code, report = run(text_module('{"score":1.5}'), "--kind", "extension.run")
    assert (code, report["outcome"], report["stage"]) == (1, "canonical-form", "output-check")
    code, report = run(rejecting_module(), "--kind", "extension.run")
    assert (code, report["outcome"], report["exit_code"]) == (1, "input-rejected", 65)
    code, report = run(echo_module(), "--kind", "extension.run")
    assert (code, report["outcome"]) == (0, "ok")
    task = report["task"]
    assert isinstance(task, dict)
    report_fuel, report_memory = task["limits"]["fuel"], task["limits"]["memory_bytes"]
    assert 200_000_000 <= report_fuel < 200_100_000
    assert 64 << 20 <= report_memory < (64 << 20) + 8192
    assert report["task"] == {
        "kind": "extension.run",
        "path": "products/a.md",
        # The kind's built-in limits for an input this small: the base, grown by a few KiB.
        "limits": {"fuel": report_fuel, "memory_bytes": report_memory, "timeout_ms": 2000},
        "policy": "built-in default policy",
    }
    # The output check only a task's kind brings: without --kind it is the module alone.
    code, report = run(text_module("[1]"), "--kind", "extension.run")
    assert (code, report["outcome"]) == (1, "output-not-object")
    code, report = run(text_module("[1]"))
    assert (code, report["outcome"]) == (0, "ok")
    # Limits asked for on the command line are admitted against the ceilings.
    code, report = run(echo_module(), "--kind", "extension.run", "--fuel", str(10**10))
    assert (code, report["outcome"], report["stage"]) == (1, "limits-over-ceiling", "admission")


def test_tasks_new_scaffolds_a_project_with_the_helper_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for lang in LANGUAGES:
        target = tmp_path / lang
        assert main(["tasks", "new", "title-check", "--lang", lang, "--dir", str(target)]) == 0
        assert f"created {target}" in capsys.readouterr().out
        main_file = target / ("main.c" if lang == "c" else "main.zig")
        assert 'EXTENSION_NAME "title-check"' in main_file.read_text() or (
            'extension_name = "title-check"' in main_file.read_text()
        )
        assert "@NAME@" not in "".join(p.read_text() for p in target.rglob("*") if p.is_file())
        assert sorted(p.name for p in (target / "gitstore").iterdir()) == sorted(helper_files(lang))
        assert "title-check.wasm" in (target / "build.py").read_text()
        assert "python -m ziglang" in (target / "README.md").read_text()
        fixtures = sorted(p.name for p in (target / "fixtures").iterdir())
        assert fixtures == sorted(p.name for p in TEMPLATE_FIXTURES.iterdir()), (
            "every template fixture is written"
        )
    assert (tmp_path / "zig" / "gitstore" / "gitstore.zig").is_file()


@pytest.mark.parametrize(
    ("name", "lang", "occupied", "says"),
    [
        ("Title_Check", "c", False, "lower-case letters"),
        ("title-check\n", "c", False, "lower-case letters"),
        ("title-check", "rust", False, "one of c, zig"),
        ("title-check", "c", True, "is not an empty directory"),
    ],
)
def test_scaffold_refuses_what_it_cannot_make(
    tmp_path: Path, name: str, lang: str, occupied: bool, says: str
) -> None:
    target = tmp_path / "project"
    if occupied:
        target.mkdir()
        (target / "main.c").write_text("")
    with pytest.raises(ProjectError, match=says):
        scaffold(name, lang, target)


def test_sandbox_test_names_a_project_without_module_or_fixtures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", "test", str(tmp_path)]) == 1
    assert "project-invalid" in capsys.readouterr().err
    (tmp_path / "m.wasm").write_bytes(echo_module())
    assert main(["sandbox", "test", str(tmp_path)]) == 1
    assert "holds no fixtures" in capsys.readouterr().err


def test_scaffold_into_a_place_it_cannot_write_leaves_nothing_behind(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory is needed")
    with pytest.raises(ProjectError, match="cannot write the project"):
        scaffold("title-check", "c", blocked / "project")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked"]


def test_a_directory_named_like_a_fixture_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path, echo_module(), {"good.input.json": ECHO_INPUT})
    (project / "fixtures" / "broken.input.json").mkdir()
    code, out = _test(project, capsys, "--update")
    assert code == 0, out
    assert "good" in out
    assert "broken" not in out
