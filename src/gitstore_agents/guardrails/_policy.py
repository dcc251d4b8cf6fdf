"""The guardrail policy: what each role may run, how hard, and what it may propose.

A policy is a YAML file (``policy_file`` in the configuration), decoded with
msgspec into frozen Structs that forbid unknown keys, then resolved into
``Policy``: module names and digest lists become digest sets, path patterns
become matchers. Every value is bounded; an absurd one is refused with the
limit it broke, and every error names its field path. With no policy file the
runtime uses ``default_policy(config)``, which allows exactly what the
configuration runs (the behaviour before policies existed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from ..config import (
    GIT_PUSH,
    MARKDOWN_COMPILE,
    PLANNER,
    ROLES,
    Config,
    DuplicateKeyError,
    LimitsConfig,
    YamlError,
    decode_yaml,
)
from ..envelopes import RESOURCE_KINDS, Limits, SubjectError, Subjects, task_kind
from ..errors import ConfigError
from ..sandbox import REFERENCE_MODULES, module_digest, reference_module_path
from ._paths import PathPatternError, PathPatterns

T = TypeVar("T")

MIB = 1024 * 1024
MAX_POLICY_FILE_BYTES = 1 * MIB
"""A policy file larger than this is refused unread."""
MAX_FUEL = 10**12
"""Highest fuel ceiling (about ten minutes of CPU in wasmtime)."""
MAX_TIMEOUT_MS = 600_000
"""Highest wall-clock ceiling: ten minutes."""
MAX_MEMORY_BYTES = 1024 * MIB
"""Highest memory ceiling: the sandbox engine's pool is sized for 1 GiB."""
MAX_PAYLOAD_BYTES = 64 * MIB
"""Highest envelope or output size: NATS refuses larger payloads (max_payload <= 64 MiB)."""
MAX_LIST_ITEMS = 256
"""Most kinds, patterns, result kinds or follow-up kinds one role may list."""
MAX_DIGESTS = 10_000
"""Most module digests one role may allow (inline plus the digest file)."""

DEFAULT_OUTPUT_BYTES = 40 * MIB
"""Output ceiling when a policy names none. The reference compiler writes up to
about 9x its input (a list-heavy file), and reads up to 4 MiB: 40 MiB lets
every file it accepts through; an output that does not fit one message
travels by ref (``ValidationRequest.output_ref``). The run's stdout is capped
at the same number."""

_DIGEST_LINE = re.compile(r"^(sha256:[0-9a-f]{64})(?:\s+#.*|\s*)$")

Fuel = Annotated[int, msgspec.Meta(ge=1, le=MAX_FUEL)]
TimeoutMs = Annotated[int, msgspec.Meta(ge=1, le=MAX_TIMEOUT_MS)]
MemoryBytes = Annotated[int, msgspec.Meta(ge=1, le=MAX_MEMORY_BYTES)]
PayloadBytes = Annotated[int, msgspec.Meta(ge=1024, le=MAX_PAYLOAD_BYTES)]
KindName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Pattern = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Digest = Annotated[str, msgspec.Meta(pattern=r"^sha256:[0-9a-f]{64}$")]
ReferenceName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ResourceKind = Literal["Product", "Variant", "Category", "Collection"]
Prefix = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class PolicyError(ConfigError):
    """The policy file is missing, malformed, out of bounds or contradicts the configuration."""

    code = "policy-invalid"


class Ceilings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The most a task of a role may ask for, and the largest output it may propose.

    Attributes:
        fuel: Deterministic CPU budget (wasmtime fuel units).
        timeout_ms: Wall-clock deadline of one run.
        memory_bytes: Linear memory of the module.
        output_bytes: Canonical JSON output proposed for validation.
    """

    fuel: Fuel = Limits().fuel
    timeout_ms: TimeoutMs = Limits().timeout_ms
    memory_bytes: MemoryBytes = Limits().memory_bytes
    output_bytes: PayloadBytes = DEFAULT_OUTPUT_BYTES


class ModuleAllowance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which WASI modules a role may run (the union of the three lists).

    Attributes:
        reference: Packaged reference modules by name (``markdown-compile``...).
        digests: Module digests, ``sha256:<64 hex>``.
        digest_file: A reviewed list of digests, one per line (``#`` comments);
            a relative path is read from the policy file's folder.
    """

    reference: Annotated[tuple[ReferenceName, ...], msgspec.Meta(max_length=16)] = ()
    digests: Annotated[tuple[Digest, ...], msgspec.Meta(max_length=MAX_DIGESTS)] = ()
    digest_file: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None


class RolePolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one role may do. Everything not granted is refused.

    Attributes:
        kinds: Task kinds the role may run (none for the planner).
        modules: Modules it may run.
        ceilings: Resource ceilings of its tasks and outputs.
        paths: Catalog path patterns its tasks and results may be about.
        result_kinds: Resource kinds its results may carry.
        publishes_tasks: Task kinds it may publish (the planner's planned
            tasks, a task role's follow-ups).
    """

    kinds: Annotated[tuple[KindName, ...], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = ()
    modules: ModuleAllowance = msgspec.field(default_factory=ModuleAllowance)
    ceilings: Ceilings = msgspec.field(default_factory=Ceilings)
    paths: Annotated[tuple[Pattern, ...], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = ()
    result_kinds: tuple[ResourceKind, ...] = RESOURCE_KINDS  # type: ignore[assignment]
    publishes_tasks: Annotated[tuple[KindName, ...], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = ()


class PolicyDocument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A policy file as written (before module names and digest files are resolved).

    Attributes:
        version: Format version (1).
        subject_prefix: The subject prefix the policy is written for; must be
            the configuration's ``topology.prefix``.
        max_envelope_bytes: Largest task envelope a worker admits.
        max_output_bytes: Largest output any role may propose (roles may cap lower).
        roles: Role name to what it may do; a role not listed may not start.
    """

    version: Literal[1] = 1
    subject_prefix: Prefix = "gitstore"
    max_envelope_bytes: PayloadBytes = 8 * MIB
    max_output_bytes: PayloadBytes = DEFAULT_OUTPUT_BYTES
    roles: dict[str, RolePolicy] = msgspec.field(default_factory=dict)


class RoleRules(msgspec.Struct, frozen=True, kw_only=True):
    """One role's resolved rules, as admission, output check and permissions use them.

    Attributes:
        role: Role name.
        kinds: Task kinds it may run.
        modules: Allowed module digest to where it was allowed (e.g.
            ``reference:markdown-compile``); None allows whatever the role's
            configuration names (the built-in default policy only).
        ceilings: Resource ceilings.
        paths: Catalog path patterns.
        result_kinds: Resource kinds its results may carry.
        publishes_tasks: Task kinds it may publish.
        strict_output: Check output schemas and status claims (every policy
            file; off only in the built-in default policy).
    """

    role: str
    kinds: tuple[str, ...]
    modules: dict[str, str] | None
    ceilings: Ceilings
    paths: PathPatterns
    result_kinds: tuple[str, ...]
    publishes_tasks: tuple[str, ...]
    strict_output: bool = True

    def allows_module(self, digest: str) -> bool:
        """True when ``digest`` is an allowed module (always, when modules is None)."""
        return self.modules is None or digest in self.modules


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """A resolved policy: the one object every guardrail reads.

    Attributes:
        source: Where it came from (a file path, or ``built-in default``).
        subject_prefix: Subject prefix it is written for.
        max_envelope_bytes: Largest task envelope admitted.
        max_output_bytes: Largest output proposed by any role.
        roles: Role name to its rules.
    """

    source: str
    subject_prefix: str
    max_envelope_bytes: int
    max_output_bytes: int
    roles: dict[str, RoleRules]

    @property
    def subjects(self) -> Subjects:
        """The subject scheme under the policy's prefix."""
        return Subjects(prefix=self.subject_prefix)

    def role(self, name: str) -> RoleRules:
        """The rules of role ``name``.

        Raises:
            PolicyError: the policy does not grant the role anything.
        """
        try:
            return self.roles[name]
        except KeyError:
            raise PolicyError(
                f"{self.source}: role {name!r} is not in the policy (roles: "
                f"{sorted(self.roles)}): a role the policy does not name may not run"
            ) from None

    def role_of_kind(self, kind: str) -> RoleRules | None:
        """The rules of the role that may run ``kind`` (None when no role may)."""
        for rules in self.roles.values():
            if kind in rules.kinds:
                return rules
        return None

    def kind_limits(self, kind: str, limits: LimitsConfig) -> LimitsConfig:
        """``limits`` of ``kind`` with their growth capped by this policy's ceilings.

        What tasks of ``kind`` get, and what admission lets them ask for: a
        worker and ``sandbox test`` both take them from here.
        """
        rules = self.role_of_kind(kind)
        if rules is None:
            return limits
        c = rules.ceilings
        return limits.capped(
            Limits(fuel=c.fuel, timeout_ms=c.timeout_ms, memory_bytes=c.memory_bytes)
        )

    def output_bytes(self, rules: RoleRules) -> int:
        """Largest output ``rules``' role may propose (its ceiling under the global cap)."""
        return min(self.max_output_bytes, rules.ceilings.output_bytes)

    def check_config(self, config: Config, roles: Iterable[str]) -> None:
        """Refuse a configuration that asks for more than this policy grants ``roles``.

        Checked at start, so a deployment whose configuration and policy disagree
        fails loudly instead of refusing every task. Module digests are checked
        later, when the runtime has resolved them (``PolicyAdmission``).

        Raises:
            PolicyError: listing every disagreement with its field path.
        """
        problems: list[str] = []
        if config.topology.prefix != self.subject_prefix:
            problems.append(
                f"topology.prefix={config.topology.prefix!r} differs from the policy's "
                f"subject_prefix={self.subject_prefix!r}"
            )
        for name in roles:
            if name not in self.roles:
                problems.append(f"role {name!r} is not in the policy: it may not run")
                continue
            rules, role_config = self.roles[name], config.roles.get(name)
            if role_config is None:
                continue
            wanted = list(role_config.follow_ups)
            if name == PLANNER:
                wanted.append(MARKDOWN_COMPILE)
            for kind in wanted:
                if kind not in rules.publishes_tasks:
                    problems.append(
                        f"roles.{name}: publishes {kind!r} tasks but the policy's "
                        f"roles.{name}.publishes_tasks is {list(rules.publishes_tasks)}"
                    )
            for kind, kind_config in sorted(role_config.kinds.items()):
                if kind not in rules.kinds:
                    problems.append(
                        f"roles.{name}.kinds.{kind}: the policy's roles.{name}.kinds "
                        f"{list(rules.kinds)} does not allow it"
                    )
                    continue
                # The base values must fit; how far they grow with an input
                # (max_*) is capped by the ceilings where the runtime wires them.
                for field in ("fuel", "timeout_ms", "memory_bytes"):
                    asked = getattr(kind_config.limits, field)
                    ceiling = getattr(rules.ceilings, field)
                    if asked > ceiling:
                        problems.append(
                            f"roles.{name}.kinds.{kind}.limits.{field}={asked} is over the "
                            f"policy's roles.{name}.ceilings.{field}={ceiling}"
                        )
        if problems:
            raise PolicyError(
                f"configuration and policy {self.source} disagree:\n  - " + "\n  - ".join(problems)
            )


def load_policy(path: str | Path) -> Policy:
    """Read, validate and resolve the policy file at ``path``.

    Raises:
        PolicyError: naming the file and the field path of every problem.
    """
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_POLICY_FILE_BYTES:
            raise PolicyError(
                f"policy file {file}: {size} bytes, over the limit of {MAX_POLICY_FILE_BYTES}"
            )
        data = file.read_bytes()
    except OSError as exc:
        raise PolicyError(f"policy file {file}: {exc.strerror or exc}") from None
    return parse_policy(data, source=str(file), base_dir=file.parent)


def parse_policy(data: bytes, *, source: str = "<policy>", base_dir: Path | None = None) -> Policy:
    """Validate and resolve a policy document given as YAML bytes.

    Args:
        data: The YAML text.
        source: Name used in error messages.
        base_dir: Folder relative ``digest_file`` paths are read from.

    Raises:
        PolicyError: naming ``source`` and the field path of every problem.
    """
    if len(data) > MAX_POLICY_FILE_BYTES:
        raise PolicyError(f"{source}: {len(data)} bytes, over the limit of {MAX_POLICY_FILE_BYTES}")
    try:
        raw = decode_yaml(data)
    except DuplicateKeyError as exc:
        # The last one would win silently: a reviewer may have read the first.
        raise PolicyError(f"{source}: {exc}") from None
    except YamlError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    roles_data = raw.pop("roles", None)
    if roles_data is None:
        roles_data = {}
    if not isinstance(roles_data, dict):
        raise PolicyError(
            f"{source}: Expected `object`, got `{type(roles_data).__name__}` - at `$.roles`"
        )
    document = _convert(raw, PolicyDocument, "$", source)
    roles: dict[str, RolePolicy] = {}
    for name, role_data in roles_data.items():
        at = f"$.roles.{name}"
        if name not in ROLES:
            raise PolicyError(
                f"{source}: unknown role {name!r} at `{at}`; known roles: {list(ROLES)}"
            )
        roles[name] = _convert({} if role_data is None else role_data, RolePolicy, at, source)
    document = msgspec.structs.replace(document, roles=roles)
    return resolve(document, source=source, base_dir=base_dir or Path.cwd())


def resolve(document: PolicyDocument, *, source: str, base_dir: Path) -> Policy:
    """Check a decoded document across fields and resolve modules and patterns.

    Raises:
        PolicyError: listing every problem with its field path.
    """
    problems: list[str] = []
    try:
        Subjects(prefix=document.subject_prefix)
    except SubjectError as exc:
        problems.append(f"subject_prefix: {exc.message}")
    owners: dict[str, str] = {}
    rules: dict[str, RoleRules] = {}
    for name, role in document.roles.items():
        resolved = _resolve_role(name, role, base_dir, owners, problems)
        if resolved is not None:
            rules[name] = resolved
    if problems:
        raise PolicyError(f"{source}: invalid policy:\n  - " + "\n  - ".join(problems))
    return Policy(
        source=source,
        subject_prefix=document.subject_prefix,
        max_envelope_bytes=document.max_envelope_bytes,
        max_output_bytes=document.max_output_bytes,
        roles=rules,
    )


def default_policy(config: Config) -> Policy:
    """The policy in force without a policy file: exactly what ``config`` runs.

    Each role may run its configured kinds with its configured modules, up to
    its configured limits, on any path, and publish its configured follow-ups
    (the planner: ``markdown.compile``); outputs are only bounded in size.
    """
    rules: dict[str, RoleRules] = {}
    for name, role in config.roles.items():
        kinds = tuple(sorted(role.kinds))
        limits = [k.limits.ceilings() for k in role.kinds.values()]
        ceilings = Ceilings(
            fuel=max((lim.fuel for lim in limits), default=Limits().fuel),
            timeout_ms=max((lim.timeout_ms for lim in limits), default=Limits().timeout_ms),
            memory_bytes=max((lim.memory_bytes for lim in limits), default=Limits().memory_bytes),
        )
        publishes = (MARKDOWN_COMPILE,) if name == PLANNER else tuple(role.follow_ups)
        rules[name] = RoleRules(
            role=name,
            kinds=kinds,
            modules=None,
            ceilings=ceilings,
            paths=PathPatterns(["**"]),
            result_kinds=RESOURCE_KINDS,
            publishes_tasks=publishes,
            strict_output=False,
        )
    return Policy(
        source="built-in default policy",
        subject_prefix=config.topology.prefix,
        max_envelope_bytes=config.topology.max_msg_bytes,
        max_output_bytes=DEFAULT_OUTPUT_BYTES,
        roles=rules,
    )


def policy_summary(policy: Policy) -> dict[str, Any]:
    """The resolved policy as plain data (``policy check --json``)."""
    return {
        "source": policy.source,
        "subject_prefix": policy.subject_prefix,
        "max_envelope_bytes": policy.max_envelope_bytes,
        "max_output_bytes": policy.max_output_bytes,
        "roles": {
            name: {
                "kinds": list(rules.kinds),
                "modules": dict(sorted(rules.modules.items()))
                if rules.modules is not None
                else None,
                "ceilings": msgspec.to_builtins(rules.ceilings),
                "output_bytes": policy.output_bytes(rules),
                "paths": list(rules.paths.patterns),
                "result_kinds": list(rules.result_kinds),
                "publishes_tasks": list(rules.publishes_tasks),
            }
            for name, rules in policy.roles.items()
        },
    }


# -- helpers ---------------------------------------------------------------------------------


def _resolve_role(
    name: str, role: RolePolicy, base_dir: Path, owners: dict[str, str], problems: list[str]
) -> RoleRules | None:
    at = f"roles.{name}"
    before = len(problems)
    for field, kinds in (("kinds", role.kinds), ("publishes_tasks", role.publishes_tasks)):
        for kind in kinds:
            try:
                task_kind(kind)
            except SubjectError as exc:
                problems.append(f"{at}.{field}: {exc.message}")
        if len(set(kinds)) != len(kinds):
            problems.append(f"{at}.{field}: lists a kind twice")
    if name == PLANNER and (role.kinds or role.paths):
        problems.append(f"{at}: the planner runs no task kinds (give it only publishes_tasks)")
    for kind in role.kinds:
        if kind == GIT_PUSH:
            problems.append(f"{at}.kinds: {GIT_PUSH!r} is the planner's input, not a task kind")
        elif kind in owners:
            problems.append(f"{at}.kinds: {kind!r} is also granted to role {owners[kind]!r}")
        owners[kind] = name
    try:
        paths = PathPatterns(role.paths)
    except PathPatternError as exc:
        problems.append(f"{at}.paths: {exc}")
        paths = PathPatterns(())
    modules = _resolve_modules(at, role.modules, base_dir, problems)
    if len(problems) > before:
        return None
    return RoleRules(
        role=name,
        kinds=role.kinds,
        modules=modules,
        ceilings=role.ceilings,
        paths=paths,
        result_kinds=tuple(dict.fromkeys(role.result_kinds)),
        publishes_tasks=role.publishes_tasks,
    )


def _resolve_modules(
    at: str, allowance: ModuleAllowance, base_dir: Path, problems: list[str]
) -> dict[str, str]:
    modules: dict[str, str] = {}
    for name in allowance.reference:
        if name not in REFERENCE_MODULES:
            problems.append(
                f"{at}.modules.reference: {name!r} is not a packaged reference module "
                f"(known: {', '.join(REFERENCE_MODULES)})"
            )
            continue
        try:
            wasm = reference_module_path(name).read_bytes()
        except OSError as exc:
            problems.append(f"{at}.modules.reference: {name!r} cannot be read: {exc.strerror}")
            continue
        modules.setdefault(module_digest(wasm), f"reference:{name}")
    for index, digest in enumerate(allowance.digests):
        modules.setdefault(digest, f"digests[{index}]")
    if allowance.digest_file is not None:
        path = Path(allowance.digest_file)
        path = path if path.is_absolute() else base_dir / path
        for digest, origin in _read_digest_file(f"{at}.modules.digest_file", path, problems):
            modules.setdefault(digest, origin)
    if len(modules) > MAX_DIGESTS:
        problems.append(f"{at}.modules: {len(modules)} digests, over the limit of {MAX_DIGESTS}")
    return modules


def _read_digest_file(at: str, path: Path, problems: list[str]) -> list[tuple[str, str]]:
    try:
        if path.stat().st_size > MAX_POLICY_FILE_BYTES:
            problems.append(f"{at}: {path} is over the limit of {MAX_POLICY_FILE_BYTES} bytes")
            return []
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{at}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        return []
    found: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _DIGEST_LINE.match(stripped)
        if match is None:
            problems.append(
                f"{at}: {path.name}:{number} is not a digest line "
                f"(sha256:<64 lower-case hex>, optionally followed by a # comment)"
            )
            continue
        found.append((match.group(1), f"{path.name}:{number}"))
    return found


def _convert(data: Any, type_: type[T], path: str, source: str) -> T:
    try:
        # strict: a policy is written by hand and read at a trust boundary; no
        # "8" for 8, no coercion of any kind.
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        message = str(exc).replace("`$", f"`{path}", 1) if path != "$" else str(exc)
        if "- at `" not in message:
            message += f" - at `{path}`"
        raise PolicyError(f"{source}: {message}") from None


def ordered_roles(policy: Policy) -> Mapping[str, RoleRules]:
    """The policy's roles in pipeline order (planner first)."""
    return {name: policy.roles[name] for name in ROLES if name in policy.roles}
