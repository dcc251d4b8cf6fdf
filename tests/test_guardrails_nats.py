"""The server-side boundary: a real nats-server started with the permissions
``policy nats-config`` generates. Workers with their role's credentials do their work; the same
credentials cannot publish around validation, touch another role's subjects, or delete and
purge — the server refuses. Refusals inside the pipeline (a path outside the role's patterns, a
task over its ceilings, a publish the server denies) end in diagnostics, never in a validation
message or a silent retry loop."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest
import structlog
from bench.fuel import SHAPES, product_stdin

from gitstore_agents.config import (
    ENRICHER,
    EXTENSION_RUNNER,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    ROLES,
    LimitsConfig,
    Topology,
)
from gitstore_agents.embedded import NatsServer, nats_server_binary
from gitstore_agents.envelopes import (
    AuditDecision,
    Blob,
    Stage,
    canonical_json,
    git_blob_oid,
    headers,
    slot_token,
)
from gitstore_agents.guardrails import (
    AUDIT_ADMIN,
    IDENTITIES,
    OPERATOR,
    PROVISIONER,
    RUNTIME_IDENTITIES,
    STATUS_PROBE,
    NatsUser,
    authorization_config,
    load_policy,
    nats_users,
    password_env,
)
from gitstore_agents.ops import ask_status, list_dead_letters, ping_status
from gitstore_agents.pipeline import plan_tasks
from gitstore_agents.sandbox import module_digest, reference_module_path
from gitstore_agents.service import status_subject
from gitstore_agents.telemetry import LogObserver

from .guardrails_support import BASE_POLICY, SecureNats, serving, write_policy
from .runtime_support import (
    cli,
    diagnostics,
    make_event,
    publish_event,
    validation_requests,
    write_config,
    write_module,
)
from .support import eventually
from .wasm_modules import echo_module, text_module

TOPOLOGY = Topology()
COMPILE_DIGEST = module_digest(reference_module_path("markdown-compile").read_bytes())
REPOSITORY = "0193f1c2-0000-7000-8000-00000000c0de"


def _publish_allow(users: list[NatsUser], identity: str) -> tuple[str, ...]:
    return next(u for u in users if u.identity == identity).permissions.publish


KEY = "ab" * 32


def _without(identity: str, *subjects: str) -> Callable[[list[NatsUser]], list[NatsUser]]:
    """Edit: take ``subjects`` away from ``identity``'s publish permissions."""

    def edit(users: list[NatsUser]) -> list[NatsUser]:
        out = []
        for user in users:
            if user.identity == identity:
                allowed = tuple(s for s in user.permissions.publish if s not in subjects)
                assert len(allowed) == len(user.permissions.publish) - len(subjects)
                permissions = msgspec.structs.replace(user.permissions, publish=allowed)
                out.append(msgspec.structs.replace(user, permissions=permissions))
            else:
                out.append(user)
        return out

    return edit


# -- the generated block -----------------------------------------------------------------------


def test_generated_authorization_is_valid_and_least_privilege(
    tmp_path: Path, policy_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = nats_users(load_policy(policy_file), TOPOLOGY)
    assert [u.identity for u in users] == list(IDENTITIES)
    for user in users:
        monkeypatch.setenv(password_env(user.identity), f"pw-{user.identity}")
    conf = tmp_path / "nats.conf"
    conf.write_text("port: -1\n" + authorization_config(users))
    result = subprocess.run(
        [str(nats_server_binary()), "-c", str(conf), "-t"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for user in users:
        allowed = user.permissions.publish
        assert ">" not in allowed
        # Nobody changes the audit stream but its administrator; nobody deletes a stream.
        rewrites = [s for s in allowed if s.startswith("$JS.API.STREAM.UPDATE.GITSTORE_AUDIT")]
        assert rewrites == (
            ["$JS.API.STREAM.UPDATE.GITSTORE_AUDIT"] if user.identity == AUDIT_ADMIN else []
        )
        assert not [s for s in allowed if "STREAM.DELETE" in s], user.identity
        purges = [s for s in allowed if ".PURGE." in s]
        assert purges == (
            ["$JS.API.STREAM.PURGE.OBJ_gitstore-modules"] if user.identity == PROVISIONER else []
        )
        if user.identity in RUNTIME_IDENTITIES:
            assert not [s for s in allowed if s.startswith("gitstore.events.")], user.identity
            assert not [s for s in allowed if ".DELETE." in s], user.identity
            assert all(
                s.startswith(f"_INBOX_{user.identity}.") or user.identity in ROLES
                for s in user.permissions.subscribe
            )
    operator = _publish_allow(users, OPERATOR)
    # The operator deletes nothing but a role's durable (a rewind) and a result or diagnostic
    # (to run one task again on purpose).
    assert sorted(s for s in operator if ".DELETE." in s) == [
        "$JS.API.CONSUMER.DELETE.GITSTORE_EVENTS.*",
        "$JS.API.CONSUMER.DELETE.GITSTORE_TASKS.*",
        "$JS.API.STREAM.MSG.DELETE.GITSTORE_FAILURES",
        "$JS.API.STREAM.MSG.DELETE.GITSTORE_VALIDATION",
    ]
    assert not [s for s in operator if ".STREAM.CREATE." in s or ".STREAM.UPDATE." in s]
    assert [s for s in operator if ".audit." in s] == ["gitstore.audit.operator.*"]
    assert "$JS.API.STREAM.UPDATE.GITSTORE_AUDIT" not in _publish_allow(users, PROVISIONER)
    assert "$JS.API.STREAM.CREATE.GITSTORE_AUDIT" in _publish_allow(users, PROVISIONER)
    assert sorted(_publish_allow(users, AUDIT_ADMIN)) == [
        "$JS.API.STREAM.CREATE.GITSTORE_AUDIT",
        "$JS.API.STREAM.INFO.GITSTORE_AUDIT",
        "$JS.API.STREAM.UPDATE.GITSTORE_AUDIT",
    ]
    compiler = _publish_allow(users, MARKDOWN_COMPILER)
    assert "gitstore.validation.markdown.compile.*" in compiler
    assert "gitstore.validation.catalog.enrich.*" not in compiler
    assert "gitstore.tasks.markdown.compile.*" not in compiler
    assert "gitstore.tasks.catalog.enrich.*" in compiler
    assert [s for s in compiler if ".audit." in s] == ["gitstore.audit.markdown-compiler.*"]
    planner = _publish_allow(users, PLANNER)
    assert not [s for s in planner if s.startswith("gitstore.validation.")]


def test_policy_nats_config_command(policy_file: Path) -> None:
    from .test_guardrails_policy import _cli  # noqa: PLC0415

    code, out = _cli("policy", "nats-config", str(policy_file), "--json", "--role", "enricher")
    assert code == 0
    generated = json.loads(out)
    assert sorted(generated) == [
        "audit-admin",
        "control-plane",
        "enricher",
        "operator",
        "provisioner",
        "status-probe",
    ]
    assert (
        "gitstore.validation.catalog.enrich.*"
        in generated["enricher"]["permissions"]["publish"]["allow"]
    )
    code, out = _cli("policy", "nats-config", str(policy_file), "--password", "planner=$2a$11$abc")
    assert code == 0
    assert 'user: "planner", password: "$2a$11$abc"' in out
    assert "password: $GITSTORE_NATS_PASSWORD_ENRICHER" in out


async def test_passwords_come_from_the_servers_environment(
    tmp_path: Path, policy_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = nats_users(load_policy(policy_file), TOPOLOGY)
    for user in users:
        monkeypatch.setenv(password_env(user.identity), f"env-{user.identity}")
    server = NatsServer(tmp_path / "nats", extra_config=authorization_config(users)).start()
    try:
        nc = await nats.connect(
            server.url, user=PLANNER, password="env-planner", inbox_prefix="_INBOX_planner"
        )
        assert nc.is_connected
        await nc.close()
    finally:
        server.stop()


# -- workers under the generated permissions ----------------------------------------------------


async def test_each_role_runs_the_success_path_with_its_own_credentials(
    secure: SecureNats, policy_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh module cache: the enricher fetches its module from the object store by digest.
    monkeypatch.setenv("GITSTORE_MODULE_CACHE", str(tmp_path / "cache"))
    enrich = module_digest(reference_module_path("catalog-enrich").read_bytes())
    modules = {"catalog.enrich": enrich}
    await secure.provision(secure.config_for(policy_file, PROVISIONER, modules=modules))
    configs = [(secure.config_for(policy_file, role, modules=modules), [role]) for role in ROLES]
    js = await secure.admin_js()
    async with serving(configs) as runtimes:
        await publish_event(js, TOPOLOGY, make_event(1))
        results = await eventually(
            lambda: validation_requests(js, TOPOLOGY),
            lambda found: len(found) == 3,
            what="compile, enrich and extension results",
        )
        assert sorted(r.kind for r in results) == [
            "catalog.enrich",
            "extension.run",
            "markdown.compile",
        ]
        assert await diagnostics(js, TOPOLOGY) == []
        # The status service the workers serve answers the helm-test identity, and
        # can read the ledger and the audit trail under the workers' own permissions.
        probe = await secure.connect(STATUS_PROBE)
        assert await ping_status(probe, TOPOLOGY.prefix, timeout_s=5.0) is not None
        reply = await ask_status(
            probe,
            status_subject(TOPOLOGY.prefix, "event"),
            {"event_id": make_event(1).event_id},
            timeout_s=5.0,
        )
        answer = json.loads(reply.data)
        assert answer["found"] is True
        assert len(answer["tasks"]) == 3
        assert [r.violations.total for r in runtimes] == [0, 0, 0, 0]


async def test_large_content_travels_by_ref_under_each_roles_own_credentials(
    secure: SecureNats, policy_file: Path
) -> None:
    # A realistic 500 KB product: its compile output (about 2.2 MB) and its follow-ups'
    # inputs are over the server's 1 MiB max_payload, so the compiler puts them into the
    # content store, which the generated permissions must let it do.
    document = json.loads(product_stdin(SHAPES[0], 500_000))
    await secure.provision(secure.config_for(policy_file, PROVISIONER))
    configs = [(secure.config_for(policy_file, role), [role]) for role in ROLES]
    js = await secure.admin_js()
    data = document["content"].encode()
    blob = Blob(path=document["path"], blob_oid=git_blob_oid(data), content=document["content"])
    event = msgspec.structs.replace(make_event(5), blobs=[blob], changed_paths=[blob.path])
    async with serving(configs) as runtimes:
        await publish_event(js, TOPOLOGY, event)
        results = await eventually(
            lambda: validation_requests(js, TOPOLOGY),
            lambda found: len(found) == 3,
            timeout_s=30,
            what="compile, enrich and extension results",
        )
        assert [r.violations.total for r in runtimes] == [0, 0, 0, 0]
    assert await diagnostics(js, TOPOLOGY) == []
    (compiled,) = [r for r in results if r.kind == MARKDOWN_COMPILE]
    assert compiled.output is msgspec.UNSET, "over max_payload: stored by ref"
    assert compiled.output_ref == compiled.output_digest


async def test_role_credentials_cannot_publish_around_validation(
    secure: SecureNats, policy_file: Path
) -> None:
    await secure.provision(secure.config_for(policy_file, PROVISIONER))
    js = await secure.admin_js()
    await publish_event(js, TOPOLOGY, make_event(1))
    await js.publish(f"gitstore.validation.markdown.compile.{KEY}", b"{}")
    before = {
        s: (await js.stream_info(s)).state.messages
        for s in ("GITSTORE_EVENTS", "GITSTORE_VALIDATION", "GITSTORE_TASKS")
    }
    forged = {
        # the control plane's subjects: a forged git event, catalog writes
        "gitstore.events.git.push." + REPOSITORY,
        "catalog.products.admit",
        "gitstore.catalog.update",
        # stream and consumer management
        "$JS.API.STREAM.DELETE.GITSTORE_VALIDATION",
        "$JS.API.STREAM.PURGE.GITSTORE_VALIDATION",
        "$JS.API.STREAM.MSG.DELETE.GITSTORE_EVENTS",
        "$JS.API.CONSUMER.DELETE.GITSTORE_TASKS.markdown-compiler",
        "$JS.API.STREAM.CREATE.SHADOW",
        "$JS.API.STREAM.UPDATE.GITSTORE_VALIDATION",
        # the modules store (a worker only reads it)
        "$O.gitstore-modules.C.forged",
    }
    event_id = make_event(1).event_id
    other_roles = {
        PLANNER: [
            f"gitstore.validation.markdown.compile.{KEY}",
            f"gitstore.tasks.catalog.enrich.{KEY}",
            # an audit record in another role's name
            f"gitstore.audit.markdown-compiler.{event_id}",
        ],
        MARKDOWN_COMPILER: [
            f"gitstore.validation.catalog.enrich.{KEY}",
            f"gitstore.tasks.markdown.compile.{KEY}",
            "gitstore.failures.git.push.GITSTORE_EVENTS-1",
            f"gitstore.audit.planner.{event_id}",
            # another consumer's deliveries (acks name stream and durable)
            "$JS.ACK.GITSTORE_TASKS.enricher.1.1.1.1.0",
        ],
        ENRICHER: [
            f"gitstore.validation.markdown.compile.{KEY}",
            f"gitstore.tasks.extension.run.{KEY}",
            f"gitstore.audit.extension-runner.{event_id}",
        ],
        EXTENSION_RUNNER: [
            f"gitstore.validation.catalog.enrich.{KEY}",
            "gitstore.dlq.markdown.compile.GITSTORE_TASKS-1",
            f"gitstore.audit.planner.{event_id}",
        ],
    }
    identities = {}
    for role in ROLES:
        errors: list[str] = []
        nc = await secure.connect(role, errors)
        for subject in sorted(forged) + other_roles[role]:
            await nc.publish(subject, b'{"forged": true}')
        # Reading what others publish, or another identity's replies, is refused too.
        await nc.subscribe("gitstore.validation.>")
        await nc.subscribe("_INBOX_provisioner.>")
        await nc.flush()
        identities[role] = errors
    for role, errors in identities.items():
        expected = [f'publish to "{s}"' for s in sorted(forged) + other_roles[role]]
        expected += [
            'subscription to "gitstore.validation.>"',
            'subscription to "_INBOX_provisioner.>"',
        ]

        async def seen(errors: list[str] = errors) -> list[str]:
            return errors

        await eventually(
            seen,
            lambda errors, expected=expected: all(
                any(e in error.lower() for error in errors) for e in (x.lower() for x in expected)
            ),
            what=f"the server to refuse every forged operation of {role}",
        )
    # Refused means not done: nothing was stored, deleted or purged.
    after = {s: (await js.stream_info(s)).state.messages for s in before}
    assert after == before
    assert "SHADOW" not in [s async for s in _stream_names(js)]


async def _stream_names(js: object) -> AsyncIterator[str]:
    for name in await js.streams_info():  # type: ignore[attr-defined]
        yield name.config.name


async def test_output_for_a_path_outside_the_pattern_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = {
        "body": {"type": "root", "children": []},
        "resource": {
            "apiVersion": "catalog.gitstore.dev/v1beta1",
            "kind": "Product",
            "metadata": {"name": "leak", "namespace": "test"},
            "spec": {},
        },
        "source": {"path": "secrets/leak.md"},
    }
    wasm = text_module(canonical_json(compiled).decode())
    module = write_module(tmp_path, "leaky", wasm)
    policy_file = write_policy(
        tmp_path,
        BASE_POLICY.replace(
            "modules: {reference: [markdown-compile]}",
            f"modules: {{digests: ['{module_digest(wasm)}']}}",
        ),
    )
    secure = SecureNats(tmp_path / "nats", load_policy(policy_file)).start()
    try:
        config = secure.config_for(
            policy_file, MARKDOWN_COMPILER, modules={MARKDOWN_COMPILE: module}
        )
        await secure.provision(secure.config_for(policy_file, PROVISIONER))
        js = await secure.admin_js()
        configs = [
            (
                secure.config_for(policy_file, PLANNER, modules={MARKDOWN_COMPILE: module}),
                [PLANNER],
            ),
            (config, [MARKDOWN_COMPILER]),
        ]
        async with serving(configs):
            await publish_event(js, TOPOLOGY, make_event(2))
            (diagnostic,) = await eventually(
                lambda: diagnostics(js, TOPOLOGY),
                lambda found: len(found) == 1,
                what="the output-check diagnostic",
            )
            assert (diagnostic.stage, diagnostic.code) == (
                Stage.OUTPUT_CHECK,
                "output-path-not-allowed",
            )
            assert "secrets/leak.md" in diagnostic.message
            assert await validation_requests(js, TOPOLOGY) == []
            # No follow-ups either: the refused output never left the worker.
            assert (await js.stream_info("GITSTORE_TASKS")).state.messages == 1
    finally:
        await secure.close()


async def test_a_task_asking_for_more_fuel_than_the_ceiling_is_refused_before_running(
    secure: SecureNats, policy_file: Path
) -> None:
    await secure.provision(secure.config_for(policy_file, PROVISIONER))
    js = await secure.admin_js()
    event = make_event(3)
    (derived,) = plan_tasks(
        event,
        event.event_id,
        {MARKDOWN_COMPILE: COMPILE_DIGEST},
        {MARKDOWN_COMPILE: LimitsConfig(fuel=10**11, timeout_ms=1000)},
    )
    task = derived.task
    observer = LogObserver()
    config = secure.config_for(policy_file, MARKDOWN_COMPILER)
    async with serving([(config, [MARKDOWN_COMPILER])], observer=observer):
        await js.publish(
            TOPOLOGY.subjects.task(MARKDOWN_COMPILE, slot_token(task.idempotency_key)),
            derived.payload,
            headers={headers.MSG_ID: task.idempotency_key},
        )
        (diagnostic,) = await eventually(
            lambda: diagnostics(js, TOPOLOGY), lambda found: len(found) == 1, what="the refusal"
        )
        assert (diagnostic.stage, diagnostic.code) == (Stage.ADMISSION, "limits-over-ceiling")
        assert "limits.fuel=100000000000" in diagnostic.message
        assert "ceilings.fuel=1000000000" in diagnostic.message
        # Refused before running: nothing ran, nothing was stored but the diagnostic.
        assert observer.total(AuditDecision.REFUSED, "limits-over-ceiling") == 1
        assert observer.total(AuditDecision.PUBLISHED) == 0
        assert await validation_requests(js, TOPOLOGY) == []


# -- the server refusing a publish ------------------------------------------------------------


async def test_a_publish_the_server_refuses_ends_in_a_diagnostic(
    tmp_path: Path, policy_file: Path
) -> None:
    # The server's permissions disagree with the policy: no validation subject for the compiler.
    edit = _without(MARKDOWN_COMPILER, "gitstore.validation.markdown.compile.*")
    secure = SecureNats(tmp_path / "nats", load_policy(policy_file), edit=edit).start()
    try:
        await secure.provision(secure.config_for(policy_file, PROVISIONER))
        js = await secure.admin_js()
        observer = LogObserver()
        configs = [
            (secure.config_for(policy_file, PLANNER), [PLANNER]),
            (secure.config_for(policy_file, MARKDOWN_COMPILER), [MARKDOWN_COMPILER]),
        ]
        with structlog.testing.capture_logs() as logs:
            async with serving(configs, observer=observer) as (_, compiler):
                await publish_event(js, TOPOLOGY, make_event(4))
                (diagnostic,) = await eventually(
                    lambda: diagnostics(js, TOPOLOGY),
                    lambda found: len(found) == 1,
                    what="the publish-permission-denied diagnostic",
                )
                assert (diagnostic.stage, diagnostic.code) == (
                    Stage.PUBLISH,
                    "publish-permission-denied",
                )
                assert "gitstore.validation.markdown.compile" in diagnostic.message
                assert diagnostic.retryable is False
                assert await validation_requests(js, TOPOLOGY) == []
                # Counted, logged, and reported to the observer (audit records, issue 7).
                assert compiler.violations.counts["publish"] >= 1
                assert observer.total(AuditDecision.FAILED, "publish-permission-denied") == 1
                # The deployment is at fault, not the task: its result slot is still
                # empty, so a requeue or replay after fixing the permissions runs it.
                assert diagnostic.idempotency_key is not None
        refused = [
            e
            for e in logs
            if e.get("code") == "publish-permission-denied" and e["log_level"] == "error"
        ]
        assert refused
        assert refused[0]["subject"].startswith("gitstore.validation.markdown.compile.")
    finally:
        await secure.close()


async def test_when_even_the_diagnostic_is_refused_the_task_is_dead_lettered(
    tmp_path: Path, policy_file: Path
) -> None:
    edit = _without(
        MARKDOWN_COMPILER,
        "gitstore.validation.markdown.compile.*",
        "gitstore.failures.markdown.compile.*",
    )
    secure = SecureNats(tmp_path / "nats", load_policy(policy_file), edit=edit).start()
    try:
        await secure.provision(secure.config_for(policy_file, PROVISIONER))
        js = await secure.admin_js()
        observer = LogObserver()
        configs = [
            (secure.config_for(policy_file, PLANNER), [PLANNER]),
            (secure.config_for(policy_file, MARKDOWN_COMPILER), [MARKDOWN_COMPILER]),
        ]
        async with serving(configs, observer=observer):
            await publish_event(js, TOPOLOGY, make_event(5))
            (entry,) = await eventually(
                lambda: list_dead_letters(js, TOPOLOGY),
                lambda entries: len(entries) == 1,
                timeout_s=30,
                what="the dead letter after max_deliver attempts",
            )
            # Bounded: exactly max_deliver (2) attempts, each retried loudly, then quarantined.
            assert entry.letter.attempts == 2
            assert "publish-permission-denied" in entry.letter.last_error
            retried = observer.total(AuditDecision.RETRIED, "publish-permission-denied")
            assert retried == 2
            info = await js.consumer_info("GITSTORE_TASKS", MARKDOWN_COMPILER)
            assert (info.num_pending, info.num_ack_pending) == (0, 0)
            assert await validation_requests(js, TOPOLOGY) == []
            assert await diagnostics(js, TOPOLOGY) == []
    finally:
        await secure.close()


async def test_an_operator_pushes_a_module_as_the_provisioner(
    secure: SecureNats, policy_file: Path, tmp_path: Path
) -> None:
    # The chart's provisioner identity, as an operator would use it: its user,
    # password and inbox prefix come from the configuration, not the URL.
    config = secure.config_for(policy_file, PROVISIONER)
    await secure.provision(config)
    config_file = write_config(tmp_path / "provisioner.yaml", config)
    module = tmp_path / "echo.wasm"
    module.write_bytes(echo_module())
    code, out = await cli("modules", "push", str(module), "--config", str(config_file))
    assert code == 0, out
    digest = out.strip().splitlines()[-1]
    assert digest == module_digest(echo_module())
    code, out = await cli("modules", "list", "--config", str(config_file))
    assert code == 0, out
    assert digest in out
    assert "echo.wasm" in out
