"""Checks across fields that a schema cannot express; all problems are reported at once."""

from __future__ import annotations

from ..envelopes import SubjectError, task_kind
from ..errors import ConfigError
from ._model import DRAIN_RESERVE_S, Config, RoleConfig
from ._module_ref import parse_module_ref
from ._names import EXTENSION_RUN, MARKDOWN_COMPILE, PLANNER, ROLES
from ._topology import DAY_S, StreamLimits, Topology


def validate_config(config: Config) -> Config:
    """Return ``config`` if it is coherent.

    Raises:
        ConfigError: listing every problem, each naming its field path.
    """
    problems: list[str] = []
    problems += _check_nats(config)
    problems += _check_retention(config.topology)
    unknown = sorted(set(config.roles) - set(ROLES))
    if unknown:
        problems.append(f"roles: unknown role(s) {unknown}; known roles: {list(ROLES)}")
    owners: dict[str, str] = {}
    for name, role in config.roles.items():
        problems += _check_role(config, name, role, owners)
    for name, role in config.roles.items():
        for kind in role.follow_ups:
            if kind not in owners:
                problems.append(
                    f"roles.{name}.follow_ups: no role runs kind {kind!r}; "
                    f"kinds with a role: {sorted(owners)}"
                )
    if MARKDOWN_COMPILE not in owners and PLANNER in config.roles:
        problems.append(f"roles: the planner plans {MARKDOWN_COMPILE!r} but no role runs it")
    deadline = max((r.max_deadline_s() for r in config.roles.values()), default=0.0)
    if config.drain_grace_s < deadline + config.publish_timeout_s + DRAIN_RESERVE_S:
        problems.append(
            f"drain_grace_s={config.drain_grace_s:g} is shorter than the longest task deadline "
            f"({deadline:g}s) plus publish_timeout_s={config.publish_timeout_s:g} plus "
            f"{DRAIN_RESERVE_S:g}s to hand back and close: in-flight work could not finish "
            "while draining"
        )
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return config


def _check_nats(config: Config) -> list[str]:
    nats = config.nats
    problems = []
    if nats.creds_file and (nats.user or nats.password):
        problems.append("nats: creds_file and user/password are mutually exclusive")
    if nats.password and not nats.user:
        problems.append("nats.password is set but nats.user is not")
    if bool(nats.tls_cert_file) != bool(nats.tls_key_file):
        problems.append(
            "nats.tls_cert_file and nats.tls_key_file go together: a client certificate "
            "needs its key"
        )
    return problems


def _age(limits: StreamLimits) -> str:
    """``topology.<name>_max_age_s=<seconds> (<days or forever>)``."""
    seconds = limits.max_age_s
    shown = f"{seconds:.0f}" if seconds.is_integer() else f"{seconds:g}"
    if seconds == 0:
        human = "forever"
    elif seconds >= DAY_S:
        human = f"{seconds / DAY_S:.3g} d"
    elif seconds >= 3600:
        human = f"{seconds / 3600:.3g} h"
    else:
        human = f"{seconds:g} s"
    return f"topology.{limits.name}_max_age_s={shown} ({human})"


def _outlives(limits: StreamLimits, other: StreamLimits) -> bool:
    """Whether ``limits`` keeps messages longer than ``other`` (0 = forever)."""
    if other.max_age_s == 0:
        return limits.max_age_s != 0
    return limits.max_age_s == 0 or limits.max_age_s > other.max_age_s


def _check_retention(topology: Topology) -> list[str]:
    """Ages the server would refuse, and ages that would break one result per task."""
    problems = []
    events, tasks = topology.stream_limits("EVENTS"), topology.stream_limits("TASKS")
    validation, failures = (topology.stream_limits(a) for a in ("VALIDATION", "FAILURES"))
    for limits in (events, tasks, validation, failures, topology.stream_limits("AUDIT")):
        if 0 < limits.max_age_s < topology.duplicate_window_s:
            problems.append(
                f"{_age(limits)} is shorter than topology.duplicate_window_s="
                f"{topology.duplicate_window_s:g}: JetStream refuses a duplicate window "
                "longer than the stream keeps its messages"
            )
    # A slot that ages out is free again: a replay of the event or task that
    # filled it (still kept in its stream) would run the task once more and
    # store a second outcome. Outcomes are stored after their inputs, so
    # keeping them at least as long as the inputs closes that door.
    for slots, what in ((validation, "a second result"), (failures, "a second diagnostic")):
        longer = [inputs for inputs in (events, tasks) if _outlives(inputs, slots)]
        if slots.max_age_s > 0 and longer:
            fields = " and ".join(f"topology.{i.name}_max_age_s" for i in longer)
            problems.append(
                f"{_age(slots)} breaks exactly-once: a slot that ages out is free again, "
                f"while {' and '.join(_age(i) for i in longer)} would still keep the event or "
                f"task that filled it, so a replay would run the task again and store {what}. "
                f"Set topology.{slots.name}_max_age_s to 0 (forever, the default), or limit "
                f"{fields} to at most topology.{slots.name}_max_age_s"
            )
    # Messages hold refs into the content store: the objects must outlive them.
    content = topology.stream_limits("CONTENT")
    holders = [h for h in (events, tasks, validation) if _outlives(h, content)]
    if content.max_age_s > 0 and holders:
        fields = " and ".join(f"topology.{h.name}_max_age_s" for h in holders)
        problems.append(
            f"{_age(content)} removes content before {' and '.join(_age(h) for h in holders)} "
            "remove the messages that refer to it (content-missing when they are read). "
            "Set topology.content_max_age_s to 0 (forever, the default), or limit "
            f"{fields} to at most topology.content_max_age_s"
        )
    return problems


def _check_role(config: Config, name: str, role: RoleConfig, owners: dict[str, str]) -> list[str]:
    return _check_retries(config, name, role) + _check_kinds(name, role, owners)


def _check_retries(config: Config, name: str, role: RoleConfig) -> list[str]:
    at = f"roles.{name}"
    problems = []
    if not role.backoff_s:
        problems.append(f"{at}.backoff_s is empty: a transient failure needs a retry delay")
    if role.max_deliver <= len(role.backoff_s):
        problems.append(
            f"{at}.max_deliver={role.max_deliver} must be greater than "
            f"len(backoff_s)={len(role.backoff_s)} (one delivery plus one per backoff step)"
        )
    if role.ack_wait_s < 3 * role.fetch_heartbeat_s:
        problems.append(
            f"{at}.ack_wait_s={role.ack_wait_s:g} is shorter than three pull heartbeats "
            f"(3 x fetch_heartbeat_s={role.fetch_heartbeat_s:g}): in-progress acks, sent "
            "every ack_wait_s / 3, could not keep up with a busy event loop"
        )
    if role.fetch_heartbeat_s * 2 > role.fetch_expires_s:
        problems.append(
            f"{at}.fetch_heartbeat_s={role.fetch_heartbeat_s:g} is too large for "
            f"fetch_expires_s={role.fetch_expires_s:g} (JetStream requires heartbeat <= expires/2)"
        )
    if role.max_ack_pending < role.concurrency:
        problems.append(
            f"{at}.max_ack_pending={role.max_ack_pending} is below "
            f"concurrency={role.concurrency}: the worker could never fill its slots"
        )
    return problems


def _check_kinds(name: str, role: RoleConfig, owners: dict[str, str]) -> list[str]:
    at = f"roles.{name}"
    problems = []
    if name == PLANNER and role.kinds:
        problems.append(f"{at}.kinds: the planner runs no task kinds (it plans them)")
    if name == PLANNER and role.follow_ups:
        problems.append(f"{at}.follow_ups: the planner has no task outputs to follow up")
    for kind, kind_config in role.kinds.items():
        try:
            task_kind(kind)
        except SubjectError as exc:
            problems.append(f"{at}.kinds: {exc.message}")
            continue
        if kind in owners:
            problems.append(f"{at}.kinds.{kind}: also run by role {owners[kind]!r}")
        owners[kind] = name
        problems += _check_module(f"{at}.kinds.{kind}.module", kind_config.module)
        if kind_config.extensions and kind != EXTENSION_RUN:
            problems.append(f"{at}.kinds.{kind}.extensions: only {EXTENSION_RUN!r} has extensions")
        seen: set[tuple[str, str]] = set()
        for i, ext in enumerate(kind_config.extensions):
            if (ext.name, ext.version) in seen:
                problems.append(
                    f"{at}.kinds.{kind}.extensions[{i}]: duplicate {ext.name}@{ext.version}"
                )
            seen.add((ext.name, ext.version))
            if ext.module is not None:
                problems += _check_module(f"{at}.kinds.{kind}.extensions[{i}].module", ext.module)
    for kind in role.follow_ups:
        if kind == MARKDOWN_COMPILE:
            problems.append(f"{at}.follow_ups: {MARKDOWN_COMPILE!r} is planned, not a follow-up")
    return problems


def _check_module(field: str, ref: str) -> list[str]:
    try:
        parse_module_ref(ref, field=field)
    except ConfigError as exc:
        return [exc.message]
    return []
