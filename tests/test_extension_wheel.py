"""An author's path from the wheel alone: scaffold, build, test, push, enable, see results.

The wheel is built from this checkout and installed into a fresh venv outside
the source tree (its dependencies and ``ziglang`` are reused from the test
environment through a ``.pth`` line, so nothing is downloaded). Everything
the author runs is that venv's ``gitstore-agents``, from a directory of
their own; the results come from a real worker against a real nats-server.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from nats.aio.client import Client

from gitstore_agents.config import (
    EXTENSION_RUN,
    EXTENSION_RUNNER,
    MARKDOWN_COMPILER,
    PLANNER,
    Topology,
)

from .runtime_support import (
    REFERENCE_MODULES,
    make_event,
    publish_event,
    runtime_config,
    validation_requests,
    write_config,
)
from .support import eventually

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# The first Zig build compiles libc for wasm32-wasi into Zig's global cache.
BUILD_TIMEOUT_S = 600


def _run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=BUILD_TIMEOUT_S,
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _fresh_venv(tmp_path: Path, env: dict[str, str]) -> Path:
    """A venv with the wheel installed; dependencies from this environment's site-packages."""
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT], tmp_path, env
    )
    (wheel,) = wheels.glob("gitstore_agents-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            tmp_path,
            env,
        ).strip()
    )
    # After the venv's own site-packages: the wheel's package wins over the checkout's.
    ours = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (purelib / "test-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], tmp_path, env)
    where = _run(
        [python, "-c", "import gitstore_agents; print(gitstore_agents.__file__)"], tmp_path, env
    )
    assert Path(where.strip()).is_relative_to(venv), f"imported from {where}"
    return venv


def _start_worker(
    agents: Path, config_path: Path, cwd: Path, env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """The venv's worker running every role the extensions need (stderr to ``log_path``)."""
    roles = [
        arg for role in (PLANNER, MARKDOWN_COMPILER, EXTENSION_RUNNER) for arg in ("--role", role)
    ]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [str(agents), "worker", "--config", str(config_path), *roles],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


async def test_an_author_ships_a_c_and_a_zig_extension_from_the_wheel(
    tmp_path: Path, nats_url: str, nc: Client, topology: Topology
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITSTORE_", "PYTHON", "VIRTUAL_ENV"))
    }
    venv = _fresh_venv(tmp_path, env)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    agents = venv / "bin" / "gitstore-agents"
    python = venv / "bin" / "python"
    author = tmp_path / "author"
    author.mkdir()

    digests = {}
    for name, lang in (("title-c", "c"), ("title-zig", "zig")):
        _run([agents, "tasks", "new", name, "--lang", lang], author, env)
        project = author / name
        _run([python, "build.py"], project, env)
        tested = _run([agents, "sandbox", "test", "."], project, env)
        assert tested.splitlines()[-1].startswith("3 fixtures: 3 passed, 0 failed"), tested
        pushed = _run(
            [agents, "modules", "push", f"{name}.wasm", "--nats-url", nats_url,
             "--bucket", topology.modules_bucket],
            project,
            env,
        )  # fmt: skip
        digests[name] = pushed.strip()

    # Enable both, next to nothing else: compile results get one task per extension.
    extensions = [
        {"name": "title-c", "version": "0.1.0", "module": digests["title-c"],
         "parameters": {"min_title_length": 20}},
        {"name": "title-zig", "version": "0.1.0", "module": digests["title-zig"],
         "parameters": {"min_title_length": 5}},
    ]  # fmt: skip
    config = runtime_config(
        nats_url,
        topology,
        tmp_path,
        modules=REFERENCE_MODULES,
        follow_ups=(EXTENSION_RUN,),
        extensions=extensions,
    )
    config_path = write_config(tmp_path / "worker.yaml", config)
    _run([agents, "provision", "--config", config_path, "--no-modules"], author, env)
    worker = _start_worker(agents, config_path, author, env, tmp_path / "worker.log")
    try:
        js = nc.jetstream()
        await publish_event(js, topology, make_event(1))  # title "Product 1-0": 11 characters
        stored = await eventually(
            lambda: validation_requests(js, topology),
            lambda found: sum(r.kind == EXTENSION_RUN for r in found) == 2,
            timeout_s=60,
            what="both extensions' results",
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    results = {r.module_digest: r for r in stored if r.kind == EXTENSION_RUN}
    assert set(results) == set(digests.values())
    c_output = json.loads(bytes(results[digests["title-c"]].output))
    zig_output = json.loads(bytes(results[digests["title-zig"]].output))
    assert [f["code"] for f in c_output["findings"]] == ["title-too-short"]
    assert zig_output["findings"] == []
    assert c_output["resource"]["metadata"]["name"] == "product-1-0"
    assert zig_output["resource"] == c_output["resource"]
