"""``gitstore-agents policy check FILE`` / ``policy nats-config FILE``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import msgspec

from ..config import ROLES, Topology, load_config
from ..envelopes import Subjects
from ..guardrails import (
    IDENTITIES,
    Policy,
    PolicyError,
    authorization_config,
    check_modules,
    load_policy,
    nats_users,
    ordered_roles,
    password_env,
    permissions_block,
    policy_summary,
    publish_subjects,
)
from ..pipeline import configured_digests


def register(commands: Any) -> None:
    """Add the ``policy`` command group."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "policy",
        help="validate a guardrail policy; generate nats-server permissions from it",
        description="The guardrail policy (docs/security.md): check it, or derive the NATS "
        "server's authorization block from it.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    check = actions.add_parser(
        "check",
        help="validate a policy and print what each role may do",
        description="Exit 0 when the policy is valid (and agrees with --config, if given: "
        "roles, kinds, limits and module digests, as a worker checks them at start), "
        "1 otherwise, naming the field path of every problem.",
    )
    check.add_argument("file", type=Path, help="policy YAML file")
    check.add_argument(
        "--config", type=Path, help="also check that this worker configuration fits the policy"
    )
    check.add_argument("--json", action="store_true", help="print the resolved policy as JSON")
    check.set_defaults(run=run_check)

    generate = actions.add_parser(
        "nats-config",
        help="print the nats-server authorization block the policy implies",
        description=(
            "One user per identity (the policy's roles, provisioner, status-probe, operator, "
            "control-plane, audit-admin) with "
            "publish/subscribe permissions derived from the policy. Passwords: by default "
            "each user's password is the variable $GITSTORE_NATS_PASSWORD_<IDENTITY>, which "
            "nats-server reads from its environment at start (no secret in the output); "
            "--password IDENTITY=HASH writes a bcrypt hash (nats server passwd) instead."
        ),
    )
    generate.add_argument("file", type=Path, help="policy YAML file")
    generate.add_argument(
        "--config",
        type=Path,
        help="worker configuration to take stream and bucket names from (default: built-in)",
    )
    generate.add_argument("--prefix", help="subject prefix (default: the policy's subject_prefix)")
    generate.add_argument(
        "--role",
        action="append",
        choices=ROLES,
        help="roles to create users for (repeatable; default: every role of the policy)",
    )
    generate.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="IDENTITY=NAME",
        help="user name of an identity (default: the identity's name)",
    )
    generate.add_argument(
        "--password",
        action="append",
        default=[],
        metavar="IDENTITY=HASH",
        help="bcrypt hash (or, for tests, plaintext) of an identity's password",
    )
    generate.add_argument(
        "--json", action="store_true", help="print each identity's permissions as JSON"
    )
    generate.set_defaults(run=run_nats_config)


def run_check(args: argparse.Namespace) -> int:
    """Execute ``policy check``."""
    policy = load_policy(args.file)
    if args.config is not None:
        config = load_config(args.config, env={})
        roles = [r for r in ROLES if r in config.roles]
        policy.check_config(config, roles)
        # The module digests as well: the check a worker makes at start, so
        # "valid" here means the worker will not refuse the pair.
        for role in roles:
            check_modules(policy, role, configured_digests(config.role(role)))
    if args.json:
        print(json.dumps(policy_summary(policy), indent=2))
    else:
        print(_table(policy))
    return 0


def run_nats_config(args: argparse.Namespace) -> int:
    """Execute ``policy nats-config``."""
    policy = load_policy(args.file)
    topology = load_config(args.config, env={}).topology if args.config else Topology()
    if args.prefix:
        if args.config and topology.prefix != args.prefix:
            raise PolicyError(
                f"--prefix={args.prefix!r} differs from {args.config}'s "
                f"topology.prefix={topology.prefix!r}"
            )
        Subjects(prefix=args.prefix)  # refuses an unsafe prefix, naming it
        policy = msgspec.structs.replace(policy, subject_prefix=args.prefix)
    topology = msgspec.structs.replace(topology, prefix=policy.subject_prefix)
    users = nats_users(
        policy,
        topology,
        roles=args.role,
        users=_pairs(args.user, "--user"),
        passwords=_pairs(args.password, "--password"),
    )
    if args.json:
        print(
            json.dumps(
                {
                    u.identity: {"user": u.user, "permissions": permissions_block(u.permissions)}
                    for u in users
                },
                indent=2,
            )
        )
    else:
        print(f"# Generated by gitstore-agents policy nats-config from {policy.source}.")
        print(
            "# Users without a --password read it from the server's environment: "
            + ", ".join(f"${password_env(u.identity)}" for u in users if u.password_env)
        )
        print(authorization_config(users), end="")
    return 0


def _table(policy: Policy) -> str:
    header = ("role", "kinds", "modules", "fuel", "timeout_ms", "memory_bytes", "output_bytes",
              "paths", "result kinds", "publishes tasks")  # fmt: skip
    rows: list[tuple[str, ...]] = [header]
    details: list[str] = []
    for name, rules in ordered_roles(policy).items():
        if rules.modules is None:
            modules = "as configured"
        else:
            named = sorted({o for o in rules.modules.values() if o.startswith("reference:")})
            others = len(rules.modules) - len(named)
            modules = ", ".join([*named, *([f"{others} digest(s)"] if others else [])]) or "-"
        # The planner runs nothing: ceilings do not apply to it.
        ceilings = [
            rules.ceilings.fuel,
            rules.ceilings.timeout_ms,
            rules.ceilings.memory_bytes,
            policy.output_bytes(rules),
        ]
        rows.append(
            (
                name,
                ", ".join(rules.kinds) or "-",
                modules if rules.kinds else "-",
                *(str(c) if rules.kinds else "-" for c in ceilings),
                ", ".join(rules.paths.patterns) or "-",
                ", ".join(rules.result_kinds) or "-",
                ", ".join(rules.publishes_tasks) or "-",
            )
        )
        details.append(f"{name} may publish: {', '.join(publish_subjects(policy, name))}")
        for digest, origin in sorted((rules.modules or {}).items()):
            details.append(f"{name} may run {digest} ({origin})")
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        f"policy {policy.source}: valid",
        f"subject prefix {policy.subject_prefix}, max_envelope_bytes "
        f"{policy.max_envelope_bytes}, max_output_bytes {policy.max_output_bytes}",
        "",
    ]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    roles_missing = [r for r in ROLES if r not in policy.roles]
    if roles_missing:
        lines.append(f"(not in the policy, so they may not run: {', '.join(roles_missing)})")
    return "\n".join([*lines, "", *details])


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        identity, sep, rest = value.partition("=")
        if not sep or identity not in IDENTITIES or not rest:
            raise PolicyError(
                f"{option} {identity!r}: expected IDENTITY=VALUE with IDENTITY one of "
                f"{', '.join(IDENTITIES)}"
            )
        pairs[identity] = rest
    return pairs
