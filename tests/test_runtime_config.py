"""Configuration: defaults that run, YAML plus environment, errors that name the field."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from gitstore_agents.config import (
    CATALOG_ENRICH,
    EXTENSION_RUN,
    INLINE_FUEL,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    ROLES,
    Config,
    load_config,
)
from gitstore_agents.consumers import nak_delay_for, retry_delay_s
from gitstore_agents.errors import ConfigError


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "gitstore.yaml"
    path.write_text(text)
    return load_config(path, env=env or {})


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return info.value.message


def test_built_in_defaults_run_every_role_with_no_file() -> None:
    config = load_config(env={})
    assert tuple(config.roles) == ROLES
    assert config.kind(MARKDOWN_COMPILE)[0] == MARKDOWN_COMPILER
    assert config.role(MARKDOWN_COMPILER).follow_ups == (CATALOG_ENRICH, EXTENSION_RUN)
    assert config.nats.url == "nats://127.0.0.1:4222"
    assert config.health.port == 8080


def test_file_overrides_merge_onto_defaults_and_environment_wins(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
nats: {url: nats://file:4222, user: agent, password: secret}
health: {port: 9000}
roles:
  markdown-compiler:
    concurrency: 8
    kinds:
      markdown.compile:
        limits: {fuel: 1000}
""",
        env={"GITSTORE_NATS_URL": "nats://env:4222", "GITSTORE_HEALTH_PORT": "9100"},
    )
    assert config.nats.url == "nats://env:4222"
    assert config.nats.user == "agent"
    assert config.health.port == 9100
    compiler = config.role(MARKDOWN_COMPILER)
    assert compiler.concurrency == 8
    kind = compiler.kinds[MARKDOWN_COMPILE]
    assert kind.module == "reference:markdown-compile", "unset keys keep their defaults"
    assert (kind.limits.fuel, kind.limits.timeout_ms) == (1000, 2000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("roles: {planer: {}}", "unknown role(s) ['planer']"),
        (
            "roles: {markdown-compiler: {max_deliver: 3, backoff_s: [1, 2, 3]}}",
            "roles.markdown-compiler.max_deliver=3 must be greater than len(backoff_s)=3",
        ),
        (
            "roles: {enricher: {ack_wait_s: 2}}",
            "roles.enricher.ack_wait_s=2 is shorter than three pull heartbeats",
        ),
        (
            "roles: {planner: {fetch_expires_s: 2, fetch_heartbeat_s: 1.5}}",
            "roles.planner.fetch_heartbeat_s=1.5 is too large for fetch_expires_s=2",
        ),
        (
            "roles: {markdown-compiler: {kinds: {markdown.compile: {module: sha256:abc}}}}",
            "roles.markdown-compiler.kinds.markdown.compile.module='sha256:abc' is not a digest",
        ),
        (
            "roles: {enricher: {kinds: {markdown.compile: {module: reference:catalog-enrich}}}}",
            "roles.enricher.kinds.markdown.compile: also run by role 'markdown-compiler'",
        ),
        (
            "roles: {markdown-compiler: {follow_ups: [catalog.translate]}}",
            "no role runs kind 'catalog.translate'",
        ),
        ("nats: {password: x}", "nats.password is set but nats.user is not"),
        ("drain_grace_s: 3", "drain_grace_s=3 is shorter than the longest task deadline"),
    ],
)
def test_contradictory_settings_are_rejected_naming_the_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in _error(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("roles: {planner: {concurrency: many}}", "at `$.roles.planner.concurrency`"),
        ("roles: {planner: {batch: 0}}", "Expected `int` >= 1 - at `$.roles.planner.batch`"),
        (
            "roles: {enricher: {kinds: {catalog.enrich: {module: x, limits: {fule: 1}}}}}",
            "unknown field `fule` - at `$.roles.enricher.kinds.catalog.enrich.limits`",
        ),
        ("nats: {urls: x}", "unknown field `urls` - at `$.nats`"),
        ("health: {port: 70000}", "at `$.health.port`"),
        (
            "roles: {enricher: {inline_fuel: -1}}",
            "Expected `int` >= 0 - at `$.roles.enricher.inline_fuel`",
        ),
    ],
)
def test_type_errors_name_the_field_path(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _error(tmp_path, text)


def test_inline_runs_can_be_turned_off_per_role(tmp_path: Path) -> None:
    config = _load(tmp_path, "roles: {enricher: {inline_fuel: 0}}")
    assert config.role("enricher").inline_fuel == 0
    assert config.role(MARKDOWN_COMPILER).inline_fuel == INLINE_FUEL


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    message = _error(
        tmp_path, "roles: {planner: {max_deliver: 1, fetch_heartbeat_s: 4, ack_wait_s: 1}}"
    )
    assert message.count("\n  - ") >= 3


def test_missing_or_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no-such\.yaml"):
        load_config(tmp_path / "no-such.yaml", env={})
    assert "not valid YAML" in _error(tmp_path, "roles: [unclosed")
    assert "top level must be a mapping" in _error(tmp_path, "- a\n- b\n")


def test_config_file_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "from-env.yaml"
    path.write_text("roles: {planner: {concurrency: 3}}\n")
    config = load_config(env={"GITSTORE_CONFIG": str(path)})
    assert config.role(PLANNER).concurrency == 3


def test_retry_delay_follows_the_backoff_and_repeats_the_last_step() -> None:
    backoff = (1.0, 5.0, 30.0)
    assert [retry_delay_s(backoff, attempt) for attempt in (1, 2, 3, 4, 9)] == [1, 5, 30, 30, 30]


def test_nak_delay_compensates_for_the_consumer_backoff() -> None:
    # Consumer backoff = ack wait + role backoff; the server adds backoff[dc] - backoff[0].
    consumer = (61.0, 65.0, 90.0)
    assert nak_delay_for(1.0, consumer, 1) == 1.0
    assert nak_delay_for(5.0, consumer, 2) == pytest.approx(1.0)
    assert nak_delay_for(30.0, consumer, 3) == pytest.approx(1.0)
    assert nak_delay_for(30.0, consumer, 7) == pytest.approx(1.0)
    assert nak_delay_for(0.0, consumer, 3) == 0.0, "no delay: a plain NAK, redelivered at once"
    assert nak_delay_for(2.0, (), 3) == 2.0, "a consumer without backoff waits what is asked"
    assert 0 < nak_delay_for(1.0, consumer, 3) < 0.01, "never a plain NAK when a delay is wanted"


def test_the_documented_defaults_are_the_built_in_ones() -> None:
    # docs/operations.md shows the configuration a worker runs with no file; a
    # change to the built-in defaults must change that block too.
    text = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    block = re.compile(r"```yaml\n(.*?)```", re.DOTALL).search(
        text, text.index("runs with the defaults below.")
    )
    assert block is not None
    documented = msgspec.yaml.decode(block.group(1).encode())
    assert load_config(env={}, overrides=documented) == load_config(env={})
    assert "per_input_mib" in block.group(1), "the block shows the limits that grow"
