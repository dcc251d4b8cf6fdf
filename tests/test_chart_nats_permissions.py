"""The all-in-one install's NATS authorization (templates/_helpers.tpl,
gitstore-agents.natsAuthorization) is a config nats-server accepts, and under it each identity
can do its work and nothing more: checked against a real nats-server started with the block the
chart renders."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
import yaml
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import Error as JetStreamError

from gitstore_agents.cli import main
from gitstore_agents.embedded import NatsServer, nats_server_binary

from .chart_support import (
    CHART_DIR,
    RELEASE,
    ROLES,
    Rendered,
    load_value_set,
    merged_values,
    render,
)
from .support import eventually

REFUSED_WITHIN_S = 0.5


def _authorization(rendered: Rendered) -> tuple[str, dict[str, str]]:
    """The authorization file and each identity's plaintext password."""
    auth_secret = rendered.named("Secret", f"{RELEASE}-gitstore-agents-nats-auth")
    credentials = rendered.named("Secret", f"{RELEASE}-gitstore-agents-nats-credentials")
    data = {k: base64.b64decode(v).decode() for k, v in credentials["data"].items()}
    passwords = {k.removesuffix("-password"): v for k, v in data.items() if k.endswith("-password")}
    return auth_secret["stringData"]["authorization.conf"], passwords


@pytest.fixture(scope="module")
def all_in_one() -> Rendered:
    return render({"nats": {"enabled": True}})


def test_authorization_is_valid_nats_server_config(all_in_one: Rendered, tmp_path: Path) -> None:
    conf, _ = _authorization(all_in_one)
    (tmp_path / "authorization.conf").write_text(conf)
    (tmp_path / "nats.conf").write_text("port: -1\ninclude ./authorization.conf\n")
    result = subprocess.run(
        [str(nats_server_binary()), "-c", str(tmp_path / "nats.conf"), "-t"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    users = yaml.safe_load(conf.split("authorization:", 1)[1])["users"]
    assert {u["user"] for u in users} == {
        "planner",
        "markdown-compiler",
        "enricher",
        "extension-runner",
        "provisioner",
        "status-probe",
        "operator",
        "control-plane",
        "audit-admin",
    }
    # Only bcrypt hashes reach the NATS server's Secret, never the plaintext.
    assert all(u["password"].startswith("$2a$") for u in users)
    for user in users:
        allowed = user["permissions"]["publish"]["allow"]
        assert ">" not in allowed
        # Deletes: only the operator's (a role's durable, a result to run a task again).
        assert not [
            s
            for s in allowed
            if (".DELETE." in s and user["user"] != "operator")
            or "STREAM.DELETE" in s
            or (
                s.startswith("$JS.API.STREAM.PURGE.")
                and s != "$JS.API.STREAM.PURGE.OBJ_gitstore-modules"
            )
        ]
        # Only the audit stream's administrator may change it.
        updates = [s for s in allowed if s == "$JS.API.STREAM.UPDATE.GITSTORE_AUDIT"]
        assert bool(updates) == (user["user"] == "audit-admin"), user["user"]


KEY = "ab" * 32


@pytest.fixture
def server(all_in_one: Rendered, tmp_path: Path) -> Iterator[NatsServer]:
    conf, _ = _authorization(all_in_one)
    store = tmp_path / "nats"
    store.mkdir()
    (store / "authorization.conf").write_text(conf)
    running = NatsServer(store, extra_config="include ./authorization.conf").start()
    # NatsServer.stop() leaves the child's stderr pipe open (a ResourceWarning, an error under
    # this suite's filterwarnings): close it here until the embedded package does.
    proc = running._proc
    try:
        yield running
    finally:
        running.stop()
        for thread in threading.enumerate():
            if thread.name == "nats-server-log":
                thread.join(timeout=5)  # it stops at the pipe's end of file
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()


class Identity:
    """A connection as one identity, remembering the errors the server sent it."""

    def __init__(self, nc: Client, errors: list[str]) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=REFUSED_WITHIN_S)
        self.errors = errors

    async def refused(self, what: str) -> None:
        """Wait until the server has reported a permissions violation on ``what``."""

        async def seen() -> list[str]:
            return self.errors

        await eventually(
            seen,
            lambda errors: any(
                "permissions violation" in e.lower() and what.lower() in e.lower() for e in errors
            ),
            timeout_s=5,
            what=f"permissions violation on {what}",
        )


@pytest.fixture
async def connect(server: NatsServer, all_in_one: Rendered) -> AsyncIterator[Callable[[str], Any]]:
    _, passwords = _authorization(all_in_one)
    opened: list[Client] = []

    async def open_as(identity: str) -> Identity:
        errors: list[str] = []

        async def error_cb(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(
            server.url,
            user=identity,
            password=passwords[identity],
            inbox_prefix=f"_INBOX_{identity}",
            error_cb=error_cb,
            allow_reconnect=False,
        )
        opened.append(nc)
        return Identity(nc, errors)

    yield open_as
    for nc in opened:
        await nc.close()


async def test_each_identity_can_do_its_work_and_nothing_more(
    connect: Callable[[str], Any],
) -> None:
    # The provisioning Job creates the topology and uploads a module.
    provisioner: Identity = await connect("provisioner")
    for name, subjects in (
        ("GITSTORE_EVENTS", ["gitstore.events.>"]),
        ("GITSTORE_TASKS", ["gitstore.tasks.>"]),
        ("GITSTORE_VALIDATION", ["gitstore.validation.>"]),
    ):
        await provisioner.js.add_stream(
            StreamConfig(name=name, subjects=subjects, allow_direct=True)
        )
    await provisioner.js.add_consumer(
        "GITSTORE_TASKS",
        ConsumerConfig(
            durable_name="markdown-compiler",
            filter_subject="gitstore.tasks.markdown.compile.*",
            ack_policy=AckPolicy.EXPLICIT,
        ),
    )
    modules = await provisioner.js.create_object_store("gitstore-modules")
    await modules.put("markdown-compile", b"\0asm module bytes")

    # The planner publishes a task; it may not validate, nor delete a stream.
    planner: Identity = await connect("planner")
    ack = await planner.js.publish(f"gitstore.tasks.markdown.compile.{KEY}", b"task")
    assert ack.stream == "GITSTORE_TASKS"
    with pytest.raises(nats.errors.TimeoutError):
        await planner.js.publish(f"gitstore.validation.markdown.compile.{KEY}", b"forged")
    await planner.refused(f"gitstore.validation.markdown.compile.{KEY}")
    with pytest.raises((nats.errors.TimeoutError, JetStreamError)):
        await planner.js.delete_stream("GITSTORE_TASKS")
    await planner.refused("$JS.API.STREAM.DELETE.GITSTORE_TASKS")

    # The markdown compiler consumes it, reads its module, validates, looks its result up.
    compiler: Identity = await connect("markdown-compiler")
    pull = await compiler.js.pull_subscribe_bind("markdown-compiler", "GITSTORE_TASKS")
    (msg,) = await pull.fetch(1, timeout=5)
    assert msg.data == b"task"
    module = await (await compiler.js.object_store("gitstore-modules")).get("markdown-compile")
    assert module.data == b"\0asm module bytes"
    ack = await compiler.js.publish(f"gitstore.validation.markdown.compile.{KEY}", b"result")
    assert ack.stream == "GITSTORE_VALIDATION"
    stored = await compiler.js.get_last_msg(
        "GITSTORE_VALIDATION", f"gitstore.validation.markdown.compile.{KEY}", direct=True
    )
    assert stored.data == b"result"
    await msg.ack_sync()
    # Not a task kind it may publish, not another role's validation subject, no
    # audit record in another role's name.
    for subject in (
        f"gitstore.tasks.markdown.compile.{KEY}",
        f"gitstore.validation.catalog.enrich.{KEY}",
        "gitstore.audit.planner.0193f1c2-7a4b-7c3d-9e8f-0a1b2c3d4e5f",
    ):
        with pytest.raises(nats.errors.TimeoutError):
            await compiler.js.publish(subject, b"forged")
        await compiler.refused(subject)
    with pytest.raises((nats.errors.TimeoutError, JetStreamError)):
        await compiler.js.purge_stream("GITSTORE_VALIDATION")
    await compiler.refused("$JS.API.STREAM.PURGE.GITSTORE_VALIDATION")
    # Another identity's inbox is not readable.
    await compiler.nc.subscribe("_INBOX_planner.>")
    await compiler.refused("_INBOX_planner.>")


COMPARED_SETS = {
    "all-in-one": {},
    "policy": load_value_set("policy"),
    "without-enricher": {"roles": {"enricher": {"enabled": False}}},
    "only-planner": {"roles": {r: {"enabled": r == "planner"} for r in ROLES}},
}


@pytest.mark.parametrize("set_id", sorted(COMPARED_SETS))
def test_authorization_matches_policy_nats_config(set_id: str, tmp_path: Path) -> None:
    """gitstore-agents.natsAuthorization grants exactly what `gitstore-agents policy
    nats-config` generates from the policy and configuration the chart renders."""
    values = merged_values({**COMPARED_SETS[set_id], "nats": {"enabled": True}})
    rendered = render({**COMPARED_SETS[set_id], "nats": {"enabled": True}})
    conf, _ = _authorization(rendered)
    users = yaml.safe_load(conf.split("authorization:", 1)[1])["users"]
    identity_of = {c["user"]: identity for identity, c in values["nats"]["credentials"].items()}
    chart = {identity_of[u["user"]]: u["permissions"] for u in users}

    # What the workers read: the policy ConfigMap and a role's config file.
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        rendered.named("ConfigMap", f"{RELEASE}-gitstore-agents-policy")["data"]["policy.yaml"]
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        rendered.named("ConfigMap", f"{RELEASE}-gitstore-agents-config")["data"][
            "status-probe.yaml"
        ]
    )
    enabled = [role for role in ROLES if values["roles"][role]["enabled"]]
    args = ["policy", "nats-config", str(policy), "--config", str(config), "--json"]
    for role in enabled:
        args += ["--role", role]
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(args) == 0
    generated = {k: v["permissions"] for k, v in json.loads(out.getvalue()).items()}

    assert (
        sorted(chart)
        == sorted(generated)
        == sorted(
            [*enabled, "provisioner", "status-probe", "operator", "control-plane", "audit-admin"]
        )
    )
    for identity, permissions in generated.items():
        rendered_permissions = chart[identity]
        for direction in ("publish", "subscribe"):
            allowed = rendered_permissions[direction]["allow"]
            assert len(allowed) == len(set(allowed)), (identity, direction)
            assert set(allowed) == set(permissions[direction]["allow"]), (identity, direction)
        assert rendered_permissions.get("allow_responses", False) == permissions.get(
            "allow_responses", False
        ), identity


def test_all_in_one_with_the_official_nats_chart() -> None:
    vendored = sorted((CHART_DIR / "charts").glob("nats*"))
    if not vendored:
        pytest.skip(
            "the official NATS chart is not vendored: its repository is out of reach from this "
            "network; run `helm dependency build charts/gitstore-agents` where it is reachable"
        )
    rendered = render({"nats": {"enabled": True}})
    (statefulset,) = rendered.of_kind("StatefulSet", ours=False)
    pod = statefulset["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "gitstore-agents-auth")
    assert volume["secret"]["secretName"] == f"{RELEASE}-gitstore-agents-nats-auth"
    nats_conf = next(
        c["data"]["nats.conf"]
        for c in rendered.of_kind("ConfigMap", ours=False)
        if "nats.conf" in c.get("data", {})
    )
    assert "include ../gitstore-agents-auth/authorization.conf;" in nats_conf


def test_no_pod_holds_the_operator_control_plane_or_audit_admin_credentials(
    all_in_one: Rendered,
) -> None:
    """The credentials Secret holds every identity, but a pod reads only its own: the audit
    stream's administrator, the operator and the control plane are never in the runtime."""
    credentials = all_in_one.named("Secret", f"{RELEASE}-gitstore-agents-nats-credentials")
    for identity in ("operator", "control-plane", "audit-admin"):
        assert f"{identity}-password" in credentials["data"]
    pods = [o["spec"]["template"]["spec"] for o in all_in_one.of_kind("Deployment")]
    pods += [o["spec"]["template"]["spec"] for o in all_in_one.of_kind("Job")]
    pods += [o["spec"] for o in all_in_one.of_kind("Pod")]
    assert len(pods) >= 6
    keys = [
        env["valueFrom"]["secretKeyRef"]["key"]
        for pod in pods
        for container in pod["containers"]
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    ]
    assert keys
    assert not [k for k in keys if k.split("-")[0] in ("operator", "control", "audit")]
