"""Fixtures through the worker's own checks, without NATS (``sandbox test``, ``run --kind``).

A fixture is an input document and the result a worker must come to:
``<case>.input.json`` with ``<case>.output.json`` (the run is ``ok`` and
its canonical output equals this document) or ``<case>.rejected.json`` (the
module rejects the input: exit 65, and its ``{"errors": [...]}`` equals this).

Nothing here decides what a run means. ``WorkerChecks`` derives the task a
worker would receive (``derive_task``, with the kind's configured limits
capped by the policy, scaled to the input's size), admits it with
``PolicyAdmission`` and runs it with ``run_task`` and the policy's
``PolicyOutputCheck``: the objects a worker builds, so a fixture passes here
exactly when a worker would store that result.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from .. import codes
from ..config import Config
from ..envelopes import CanonicalFormError, Limits, TaskRequest, canonical_json
from ..errors import ConfigError
from ..guardrails import (
    KindAllowance,
    Policy,
    PolicyAdmission,
    PolicyOutputCheck,
    default_policy,
    load_policy,
)
from ..pipeline import Derived, Execution, derive_task, run_task
from ..sandbox import CompiledModule, RunResult, Sandbox, SandboxLimits
from ._scaffold import ProjectError

INPUT_SUFFIX = ".input.json"
EXPECTED_SUFFIXES = {".output.json": codes.OK, ".rejected.json": "input-rejected"}
"""Expected-result file suffix to the outcome it stands for."""

LOGICAL_TIME = "2026-01-01T00:00:00Z"
"""The clock of fixture tasks (a worker's tasks read their git event's time)."""
_SOURCE_KEY = "sha256:" + "0" * 64
_EVENT_ID = "00000000-0000-7000-8000-000000000000"
_COMMIT = "0" * 40
_DIFF_LINES = 60
_ENCODER = msgspec.json.Encoder(order="sorted")


class Fixture(msgspec.Struct, frozen=True, kw_only=True):
    """One fixture of a module project.

    Attributes:
        name: The case name (``<name>.input.json``).
        input: The input document's file.
        expected: The expected result's file (None: not written yet).
        expected_code: ``ok`` or ``input-rejected`` (None without ``expected``).
    """

    name: str
    input: Path
    expected: Path | None = None
    expected_code: str | None = None


class Checked(msgspec.Struct, frozen=True, kw_only=True):
    """A run through the worker's checks.

    Attributes:
        task: The task a worker would have received.
        execution: What the worker makes of it (admission refusals included).
        result: The sandbox run (None when admission refused the task).
    """

    task: TaskRequest
    execution: Execution
    result: RunResult | None = None


class FixtureResult(msgspec.Struct, frozen=True, kw_only=True):
    """How one fixture came out.

    Attributes:
        name: The case.
        passed: The worker's result is the expected one.
        code: The worker's outcome (``ok``, ``input-rejected``, a refusal code...).
        stage: Where a failure happened (``admission``, ``sandbox``, ``output-check``).
        message: Why it failed (or what is missing).
        diff: Expected against actual, pretty-printed (bounded).
        fuel: Fuel the run used (None when it did not run).
    """

    name: str
    passed: bool
    code: str
    stage: str = ""
    message: str = ""
    diff: str = ""
    fuel: int | None = None


class FixtureSuite(msgspec.Struct, kw_only=True):
    """Every fixture of a project against one module.

    Attributes:
        module: The module file.
        module_digest: Its digest.
        kind: The task kind the fixtures ran as.
        policy: Where the policy came from.
        results: One per fixture, in name order.
    """

    module: str
    module_digest: str
    kind: str
    policy: str
    results: list[FixtureResult] = msgspec.field(default_factory=list)

    @property
    def failed(self) -> int:
        """Fixtures that did not pass."""
        return sum(not r.passed for r in self.results)


class WorkerChecks:
    """The checks a worker applies to tasks of ``kind`` running ``module``, offline.

    Args:
        config: The worker configuration (limits of ``kind``, its role, the policy file).
        kind: The task kind, e.g. ``extension.run``.
        module: The compiled module, admitted as if the configuration ran it
            (a policy file must allow its digest, as a worker's must).
        sandbox: Where it runs.
        policy: The policy (default: the configuration's ``policy_file``, else
            the built-in default policy, as a worker resolves it).

    Raises:
        ConfigError: no configured role runs ``kind``.
        PolicyError: the policy refuses the configuration or the module.
    """

    def __init__(
        self,
        config: Config,
        kind: str,
        module: CompiledModule,
        sandbox: Sandbox,
        *,
        policy: Policy | None = None,
    ) -> None:
        try:
            role, kind_config = config.kind(kind)
        except KeyError:
            raise ConfigError(
                f"--kind {kind}: no configured role runs it (roles.<role>.kinds)"
            ) from None
        if policy is None:
            policy = (
                load_policy(config.policy_file) if config.policy_file else default_policy(config)
            )
        policy.check_config(config, [role])
        self.policy = policy
        self.kind = kind
        self.module = module
        self._sandbox = sandbox
        self._limits = policy.kind_limits(kind, kind_config.limits)
        allowance = KindAllowance(
            modules=frozenset({module.digest}), ceilings=self._limits.ceilings()
        )
        self._admission = PolicyAdmission(policy, role, {kind: allowance})
        self._check = PolicyOutputCheck(policy)

    def task(self, stdin: bytes, path: str, limits: Limits | None = None) -> Derived:
        """The task a worker would receive for the canonical input ``stdin`` about ``path``.

        Args:
            stdin: The canonical input bytes.
            path: The catalog file the task is about.
            limits: Limits the task asks for instead of the configured ones.
        """
        derived = derive_task(
            source_key=_SOURCE_KEY,
            kind=self.kind,
            input_bytes=stdin,
            module_digest=self.module.digest,
            limits=self._limits,
            source_event_id=_EVENT_ID,
            repository_id=_EVENT_ID,
            commit_sha=_COMMIT,
            path=path,
            logical_time=LOGICAL_TIME,
            parent_key=_SOURCE_KEY,
        )
        if limits is None:
            return derived
        task = msgspec.structs.replace(derived.task, limits=limits)
        return Derived(task=task, stdin=derived.stdin, payload=_ENCODER.encode(task))

    async def run(self, stdin: bytes, *, path: str, limits: Limits | None = None) -> Checked:
        """Admit, run and judge the task of ``stdin`` as a worker would."""
        derived = self.task(stdin, path, limits)
        refusal = self._admission.admit(derived.task, len(derived.payload))
        if refusal is not None:
            execution = Execution(code=refusal.code, stage=refusal.stage, message=refusal.message)
            return Checked(task=derived.task, execution=execution)
        runs: list[RunResult] = []

        async def run(
            module: CompiledModule,
            stdin: bytes,
            limits: SandboxLimits,
            *,
            logical_time_ns: int,
            seed: int,
        ) -> RunResult:
            result = self._sandbox.run(
                module, stdin, limits, logical_time_ns=logical_time_ns, seed=seed
            )
            runs.append(result)
            return result

        execution = await run_task(derived.task, derived.stdin, self.module, run, self._check)
        return Checked(task=derived.task, execution=execution, result=runs[0] if runs else None)


def canonical_input(data: bytes) -> bytes:
    """The canonical bytes of an input document (what a worker's module reads).

    Raises:
        ValueError: not JSON, or without a canonical form (a float).
    """
    try:
        return canonical_json(msgspec.json.decode(data))
    except msgspec.DecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    except CanonicalFormError as exc:
        raise ValueError(f"no canonical JSON form: {exc.message}") from None


def task_path(document: bytes, default: str) -> str:
    """The catalog file an input is about: ``compiled.source.path``, else ``path``."""
    try:
        value = msgspec.json.decode(document)
    except msgspec.DecodeError:
        return default
    if isinstance(value, dict):
        compiled = value.get("compiled")
        source = compiled.get("source") if isinstance(compiled, dict) else None
        found = source.get("path") if isinstance(source, dict) else value.get("path")
        if isinstance(found, str) and found:
            return found
    return default


def find_module(directory: Path) -> Path:
    """The one ``*.wasm`` file in ``directory``.

    Raises:
        ProjectError: none, or several (name one with ``--module``).
    """
    found = sorted(directory.glob("*.wasm"))
    if len(found) != 1:
        what = "no .wasm file (build it first)" if not found else f"{len(found)} .wasm files"
        raise ProjectError(f"{directory} has {what}; name the module with --module FILE")
    return found[0]


def find_fixtures(directory: Path) -> list[Fixture]:
    """The fixtures of a project: ``DIR/fixtures/*.input.json`` (or ``DIR/*.input.json``).

    Raises:
        ProjectError: there are none.
    """
    where = directory / "fixtures" if (directory / "fixtures").is_dir() else directory
    fixtures = []
    for path in sorted(where.glob(f"*{INPUT_SUFFIX}")):
        if not path.is_file():
            continue  # a directory that happens to be named like a fixture
        name = path.name.removesuffix(INPUT_SUFFIX)
        expected = [
            (where / f"{name}{suffix}", code)
            for suffix, code in EXPECTED_SUFFIXES.items()
            if (where / f"{name}{suffix}").is_file()
        ]
        file, code = expected[0] if len(expected) == 1 else (None, None)
        fixtures.append(Fixture(name=name, input=path, expected=file, expected_code=code))
    if not fixtures:
        raise ProjectError(f"{where} holds no fixtures (<case>{INPUT_SUFFIX})")
    return fixtures


async def run_fixtures(
    checks: WorkerChecks, fixtures: Sequence[Fixture], *, update: bool = False
) -> list[FixtureResult]:
    """Run every fixture through ``checks`` and compare with its expected result.

    Args:
        checks: The worker's checks for the module under test.
        fixtures: The fixtures.
        update: Write the expected file of each fixture whose outcome is ``ok``
            or ``input-rejected`` from its actual result (then review the diff).
    """
    return [await _test_one(checks, fixture, update=update) for fixture in fixtures]


async def _test_one(checks: WorkerChecks, fixture: Fixture, *, update: bool) -> FixtureResult:
    name = fixture.name
    try:
        data = fixture.input.read_bytes()
    except OSError as exc:
        return FixtureResult(
            name=name,
            passed=False,
            code=ProjectError.code,
            message=f"input {fixture.input}: {exc.strerror or exc}",
        )
    try:
        stdin = canonical_input(data)
    except ValueError as exc:
        return FixtureResult(
            name=name, passed=False, code=ProjectError.code, message=f"input {exc}"
        )
    checked = await checks.run(stdin, path=task_path(data, f"fixtures/{name}.md"))
    execution = checked.execution
    actual = _actual(execution)
    if update and actual is not None:
        fixture = _write_expected(fixture, execution.code, actual)
    message, diff = _verdict(fixture, execution, actual)
    ran = execution.code in (codes.OK, "input-rejected")
    return FixtureResult(
        name=name,
        passed=not message,
        code=execution.code,
        stage="" if ran else str(execution.stage),
        message=message,
        diff=diff,
        fuel=execution.usage.fuel if execution.usage is not None else None,
    )


def _write_expected(fixture: Fixture, code: str, actual: Any) -> Fixture:
    suffix = next(s for s, c in EXPECTED_SUFFIXES.items() if c == code)
    for other in EXPECTED_SUFFIXES:
        fixture.input.with_name(f"{fixture.name}{other}").unlink(missing_ok=True)
    target = fixture.input.with_name(f"{fixture.name}{suffix}")
    target.write_text(_pretty(actual), encoding="utf-8")
    return msgspec.structs.replace(fixture, expected=target, expected_code=code)


def _verdict(fixture: Fixture, execution: Execution, actual: Any) -> tuple[str, str]:
    """("", "") when the worker's result is the expected one; else why, and a diff."""
    name = fixture.name
    if actual is None:
        return execution.message or execution.code, ""
    if fixture.expected is None:
        return (
            f"no expected result: write {name}.output.json or {name}.rejected.json "
            "(or run with --update)",
            _diff(None, actual, name),
        )
    if execution.code != fixture.expected_code:
        detail = f": {execution.message}" if execution.message else ""
        message = f"expected {fixture.expected_code}, the worker says {execution.code}{detail}"
        return message, _diff(None, actual, name)
    try:
        expected = msgspec.json.decode(canonical_input(fixture.expected.read_bytes()))
    except ValueError as exc:
        return f"{fixture.expected.name} is {exc}", ""
    if canonical_json(expected) != canonical_json(actual):
        return "the result differs from the expected one", _diff(expected, actual, name)
    return "", ""


def _actual(execution: Execution) -> Any:
    """The document to compare: the output (ok) or the errors document (input-rejected)."""
    if execution.code == codes.OK:
        return execution.output
    if execution.code == "input-rejected":
        return {"errors": msgspec.to_builtins(list(execution.errors))}
    return None


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _diff(expected: Any, actual: Any, name: str) -> str:
    before = _pretty(expected).splitlines() if expected is not None else []
    lines = list(
        difflib.unified_diff(
            before,
            _pretty(actual).splitlines(),
            f"{name} expected",
            f"{name} actual",
            lineterm="",
            n=2,
        )
    )
    if len(lines) > _DIFF_LINES:
        lines = [*lines[:_DIFF_LINES], f"... {len(lines) - _DIFF_LINES} more lines"]
    return "\n".join(lines)
