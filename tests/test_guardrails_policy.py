"""The policy file: what it grants, and every way a malformed or malicious one is refused at
start, with the field path (and the limit) named."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import msgspec
import pytest

from gitstore_agents.cli import main
from gitstore_agents.config import load_config
from gitstore_agents.guardrails import (
    MAX_FUEL,
    MAX_MEMORY_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_TIMEOUT_MS,
    PathPatternError,
    PathPatterns,
    PolicyError,
    default_policy,
    load_policy,
    parse_policy,
)
from gitstore_agents.sandbox import module_digest, reference_module_path
from gitstore_agents.service import Runtime

from .conftest import REPO_ROOT
from .guardrails_support import BASE_POLICY, worker_config, write_policy

EXAMPLE_POLICY = REPO_ROOT / "examples" / "policy.yaml"
DIGEST = "sha256:" + "ab" * 32


def _refused(text: str, tmp_path: Path) -> str:
    with pytest.raises(PolicyError) as caught:
        load_policy(write_policy(tmp_path, text))
    assert caught.value.code == "policy-invalid"
    return caught.value.message


def test_the_example_policy_grants_each_role_its_own_work() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    compiler = policy.role("markdown-compiler")
    assert compiler.kinds == ("markdown.compile",)
    digest = module_digest(reference_module_path("markdown-compile").read_bytes())
    assert compiler.modules == {digest: "reference:markdown-compile"}
    assert compiler.publishes_tasks == ("catalog.enrich", "extension.run")
    assert compiler.paths.allows("products/trail/runner.md")
    assert not compiler.paths.allows("secrets/runner.md")
    assert policy.role("planner").kinds == ()
    assert policy.output_bytes(policy.role("extension-runner")) == 262144
    assert policy.role_of_kind("catalog.enrich") is policy.role("enricher")


def test_a_role_not_in_the_policy_may_not_run(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, "roles: {planner: {}}\n"))
    with pytest.raises(PolicyError, match="'enricher' is not in the policy"):
        policy.role("enricher")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown keys, at every level
        ("rolez: {}\n", "unknown field `rolez`"),
        ("roles: {enricher: {kinds: [catalog.enrich], admin: true}}\n", "`$.roles.enricher`"),
        ("roles: {enricher: {ceilings: {fuel: 5, gpu: 1}}}\n", "`$.roles.enricher.ceilings`"),
        ("roles: {enricher: {modules: {any: true}}}\n", "`$.roles.enricher.modules`"),
        # unknown role names
        ("roles: {root: {kinds: [catalog.enrich]}}\n", "unknown role 'root'"),
        # wrong types
        ("roles: {enricher: {kinds: catalog.enrich}}\n", "`$.roles.enricher.kinds`"),
        ("roles: {enricher: {ceilings: {fuel: '1000'}}}\n", "`$.roles.enricher.ceilings.fuel`"),
        ("max_output_bytes: 1.5e6\n", "`$.max_output_bytes`"),
        ("roles: [planner]\n", "`$.roles`"),
        ("version: 2\n", "`$.version`"),
        ("roles: {enricher: {result_kinds: [Secret]}}\n", "`$.roles.enricher.result_kinds[0]`"),
        ("roles: {enricher: {modules: {digests: [md5:abc]}}}\n", "`$.roles.enricher.modules"),
        # absurd limits: refused with the limit named
        (f"roles: {{enricher: {{ceilings: {{fuel: {MAX_FUEL * 10}}}}}}}\n", f"<= {MAX_FUEL}"),
        ("roles: {enricher: {ceilings: {timeout_ms: 86400000}}}\n", f"<= {MAX_TIMEOUT_MS}"),
        (
            "roles: {enricher: {ceilings: {memory_bytes: 1099511627776}}}\n",
            f"<= {MAX_MEMORY_BYTES}",
        ),
        ("roles: {enricher: {ceilings: {fuel: 0}}}\n", ">= 1"),
        (f"max_envelope_bytes: {MAX_PAYLOAD_BYTES + 1}\n", f"<= {MAX_PAYLOAD_BYTES}"),
        ("roles: {enricher: {ceilings: {output_bytes: -1}}}\n", ">= 1024"),
        # values that would change what subjects or files mean
        ("subject_prefix: 'gitstore.>'\n", "subject_prefix"),
        ("roles: {enricher: {kinds: ['catalog.*']}}\n", "roles.enricher.kinds"),
        ("roles: {enricher: {publishes_tasks: ['>']}}\n", "roles.enricher.publishes_tasks"),
        ("roles: {enricher: {paths: ['/etc/**']}}\n", "no leading '/'"),
        ("roles: {enricher: {paths: ['products/../secrets/*']}}\n", "'..'"),
        ("roles: {enricher: {paths: ['products/a**b']}}\n", "whole segment"),
        ("roles: {enricher: {paths: ['products/$(id)']}}\n", "characters outside"),
        # contradictions
        ("roles: {planner: {kinds: [markdown.compile]}}\n", "the planner runs no task kinds"),
        (
            "roles: {enricher: {kinds: [catalog.enrich]}, extension-runner: "
            "{kinds: [catalog.enrich]}}\n",
            "also granted to role 'enricher'",
        ),
        ("roles: {enricher: {modules: {reference: [rootkit]}}}\n", "not a packaged reference"),
        # not a policy at all
        ("- planner\n", "top level must be a mapping"),
        ("roles: {enricher: [unclosed\n", "not valid YAML"),
    ],
)
def test_malicious_or_malformed_policies_are_refused(
    text: str, expected: str, tmp_path: Path
) -> None:
    assert expected in _refused(text, tmp_path)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    message = _refused(
        "roles: {enricher: {kinds: ['BAD'], paths: ['/x']}, planner: {paths: ['a']}}\n", tmp_path
    )
    assert "roles.enricher.kinds" in message
    assert "roles.enricher.paths" in message
    assert "roles.planner" in message


def test_an_oversized_policy_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * (2 * 1024 * 1024))
    with pytest.raises(PolicyError, match="over the limit of 1048576"):
        load_policy(path)
    with pytest.raises(PolicyError, match="No such file"):
        load_policy(tmp_path / "missing.yaml")


def test_a_signed_off_digest_file_is_read_relative_to_the_policy(tmp_path: Path) -> None:
    (tmp_path / "signed-off.txt").write_text(
        f"# reviewed 2026-11-20\n{DIGEST}  # seo-lint 1.0.0\n\n{'sha256:' + 'cd' * 32}\n"
    )
    policy = load_policy(
        write_policy(
            tmp_path, "roles: {extension-runner: {modules: {digest_file: signed-off.txt}}}\n"
        )
    )
    modules = policy.role("extension-runner").modules
    assert modules == {DIGEST: "signed-off.txt:2", "sha256:" + "cd" * 32: "signed-off.txt:4"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("sha256:xyz\n", "signed-off.txt:1 is not a digest line"),
        (f"# ok\n{DIGEST} trailing words\n", "signed-off.txt:2 is not a digest line"),
        (None, "cannot read"),
    ],
)
def test_a_bad_digest_file_names_its_line(
    content: str | None, expected: str, tmp_path: Path
) -> None:
    if content is not None:
        (tmp_path / "signed-off.txt").write_text(content)
    message = _refused(
        "roles: {extension-runner: {modules: {digest_file: signed-off.txt}}}\n", tmp_path
    )
    assert expected in message


@pytest.mark.parametrize(
    ("pattern", "matching", "other"),
    [
        (
            "products/**/*.md",
            ["products/a.md", "products/x/y/b.md"],
            ["products.md", "x/products/a.md", "products/a.mdx"],
        ),
        ("products/*.md", ["products/a.md"], ["products/x/a.md"]),
        ("**", ["a", "a/b/c.md"], []),
        ("**/*.md", ["a.md", "a/b.md"], ["a.txt"]),
        ("catalog/?.md", ["catalog/a.md"], ["catalog/ab.md", "catalog/.md"]),
        ("products/**", ["products/a", "products/a/b"], ["productsx/a", "products"]),
    ],
)
def test_path_patterns(pattern: str, matching: list[str], other: list[str]) -> None:
    patterns = PathPatterns([pattern])
    assert all(patterns.allows(p) for p in matching)
    assert not any(patterns.allows(p) for p in other)


def test_path_pattern_errors_name_the_pattern() -> None:
    with pytest.raises(PathPatternError, match="'a//b'"):
        PathPatterns(["a//b"])


def test_the_default_policy_allows_exactly_what_the_config_runs(tmp_path: Path) -> None:
    config = load_config(env={})
    policy = default_policy(config)
    compiler = policy.role("markdown-compiler")
    assert compiler.kinds == ("markdown.compile",)
    assert compiler.modules is None  # whatever the configuration names
    assert compiler.publishes_tasks == ("catalog.enrich", "extension.run")
    assert policy.role("planner").publishes_tasks == ("markdown.compile",)
    assert compiler.paths.allows("anything/at/all.txt")
    assert not compiler.strict_output
    limits = config.roles["markdown-compiler"].kinds["markdown.compile"].limits
    # The most a compile task may get: its largest input's limits.
    assert compiler.ceilings.fuel == limits.ceilings().fuel
    policy.check_config(config, config.roles)  # no disagreement with its own configuration


@pytest.mark.parametrize(
    ("policy_text", "expected"),
    [
        (
            BASE_POLICY.replace("subject_prefix: gitstore", "subject_prefix: other"),
            "topology.prefix",
        ),
        (
            BASE_POLICY.replace("[catalog.enrich, extension.run]", "[catalog.enrich]"),
            "publishes 'extension.run' tasks",
        ),
        (
            BASE_POLICY.replace(
                'fuel: 1000000000, timeout_ms: 2000}\n    paths: ["products/**/*.md"]\n  extension',
                'fuel: 10, timeout_ms: 2000}\n    paths: ["products/**/*.md"]\n  extension',
            ),
            "limits.fuel=1000000000 is over",
        ),
        (
            BASE_POLICY.replace("    kinds: [extension.run]\n", ""),
            "roles.extension-runner.kinds.extension.run",
        ),
        (
            BASE_POLICY.split("  extension-runner:")[0],
            "role 'extension-runner' is not in the policy",
        ),
    ],
)
def test_a_runtime_refuses_a_config_the_policy_does_not_grant(
    policy_text: str, expected: str, tmp_path: Path
) -> None:
    config = worker_config("nats://127.0.0.1:1", write_policy(tmp_path, policy_text))
    with pytest.raises(PolicyError, match="disagree") as caught:
        Runtime(config)
    assert expected in caught.value.message


def test_a_runtime_refuses_a_malicious_policy_file_at_start(tmp_path: Path) -> None:
    # The extension-runner's own ceilings line (the last one), not a second one:
    # a repeated key is refused for that alone.
    head, _, tail = BASE_POLICY.rpartition("    ceilings: {fuel: 1000000000, timeout_ms: 2000}\n")
    bad = write_policy(tmp_path, head + "    ceilings: {fuel: 99999999999999999}\n" + tail)
    with pytest.raises(PolicyError, match=r"\$.roles.extension-runner"):
        Runtime(worker_config("nats://127.0.0.1:1", bad))


def test_the_worker_command_exits_with_the_policy_error(tmp_path: Path) -> None:
    bad = write_policy(tmp_path, "roles: {planner: {admin: true}}\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"policy_file: {bad}\nhealth: {{port: null}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "gitstore_agents", "worker", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1  # a runtime failure; 2 is for a bad command line
    assert "policy-invalid" in result.stderr
    assert "unknown field `admin` - at `$.roles.planner`" in result.stderr


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def test_policy_check_prints_what_each_role_may_do() -> None:
    code, out = _cli("policy", "check", str(EXAMPLE_POLICY))
    assert code == 0
    assert f"policy {EXAMPLE_POLICY}: valid" in out
    table = out.split("\n\n")[1]  # header, then one row per role
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert list(rows) == ["planner", "markdown-compiler", "enricher", "extension-runner"]
    assert "reference:markdown-compile" in rows["markdown-compiler"]
    assert "products/**/*.md" in rows["markdown-compiler"]
    assert "catalog.enrich, extension.run" in rows["markdown-compiler"]
    assert "markdown-compiler may publish: gitstore.validation.markdown.compile" in out

    code, out = _cli("policy", "check", str(EXAMPLE_POLICY), "--json")
    summary = json.loads(out)
    assert summary["roles"]["enricher"]["kinds"] == ["catalog.enrich"]
    assert summary["roles"]["extension-runner"]["output_bytes"] == 262144


def test_policy_check_fails_on_a_bad_policy_or_a_config_it_does_not_grant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli("policy", "check", str(write_policy(tmp_path, "roles: {x: {}}\n")))[0] == 1
    assert "unknown role 'x'" in capsys.readouterr().err
    config = tmp_path / "config.yaml"
    config.write_text("topology: {prefix: elsewhere}\n")
    assert _cli("policy", "check", str(EXAMPLE_POLICY), "--config", str(config))[0] == 1
    assert "topology.prefix='elsewhere'" in capsys.readouterr().err


def test_policy_round_trips_through_yaml(tmp_path: Path) -> None:
    # What `policy check --json` prints is stable data (no Python objects leak into it).
    policy = parse_policy(BASE_POLICY.encode(), source="inline")
    assert policy.source == "inline"
    assert msgspec.json.decode(msgspec.json.encode(policy.max_output_bytes)) == 40 * 1024 * 1024
