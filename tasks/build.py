"""Build the reference WASI task modules with the PyPI ``ziglang`` toolchain.

Usage:
    python tasks/build.py            # (re)build into src/gitstore_agents/sandbox/modules/
    python tasks/build.py --check    # build into a temp dir, fail if the committed bytes differ

The build is reproducible: fixed flags, sources passed as sorted paths relative
to ``tasks/`` (the compiler's working directory), no timestamps, and ``-s``
strips debug info and names, so no machine path reaches the module.
Standard library only, so it runs before the package is installed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TASKS_DIR.parent
MODULES_DIR = REPO_ROOT / "src" / "gitstore_agents" / "sandbox" / "modules"
# The helper library authors get in the wheel (docs/extensions.md); the reference tasks use it too.
KIT_C_DIR = REPO_ROOT / "src" / "gitstore_agents" / "kit" / "c"

# The committed modules are the output of exactly this toolchain version.
ZIGLANG_VERSION = "0.17.1"

CFLAGS = (
    "--target=wasm32-wasi",
    "-std=c11",
    "-Os",
    "-s",
    "-Wall",
    "-Wextra",
    # Without an explicit stack size wasm-ld reserves a stack that pushes the
    # module's minimum memory past the sandbox's memory caps.
    "-Wl,-z,stack-size=262144",
    f"-I{os.path.relpath(KIT_C_DIR, TASKS_DIR)}",
)


@dataclass(frozen=True)
class Task:
    """One reference module: its output name and its source directory."""

    name: str
    source_dir: str


TASKS = (
    Task("markdown-compile", "markdown_compile"),
    Task("catalog-enrich", "catalog_enrich"),
    Task("extension-sample", "extension_sample"),
)


def _relative(path: Path) -> str:
    return Path(os.path.relpath(path, TASKS_DIR)).as_posix()


def sources(task: Task) -> list[str]:
    """Sorted C sources of ``task`` (helper library and shared ones first), relative to tasks/."""
    kit = sorted(_relative(p) for p in KIT_C_DIR.glob("*.c"))
    common = kit + sorted(_relative(p) for p in (TASKS_DIR / "common").glob("*.c"))
    own = sorted(
        p.relative_to(TASKS_DIR).as_posix() for p in (TASKS_DIR / task.source_dir).glob("*.c")
    )
    return common + own


def check_toolchain() -> None:
    """Exit with a clear message unless the pinned ziglang is importable."""
    try:
        found = version("ziglang")
    except PackageNotFoundError:
        sys.exit(
            f"tasks/build.py: ziglang is not installed (pip install ziglang=={ZIGLANG_VERSION})"
        )
    if found != ZIGLANG_VERSION:
        sys.exit(
            f"tasks/build.py: ziglang {found} is installed but the modules are built with "
            f"{ZIGLANG_VERSION}; pip install ziglang=={ZIGLANG_VERSION}"
        )


def build(task: Task, out_dir: Path) -> Path:
    """Compile ``task`` to ``out_dir/<name>.wasm`` and return the path."""
    out = out_dir / f"{task.name}.wasm"
    cmd = [sys.executable, "-m", "ziglang", "cc", *CFLAGS, *sources(task), "-o", str(out)]
    env = dict(os.environ)
    # Keep zig's per-project cache out of the source tree.
    env.setdefault(
        "ZIG_LOCAL_CACHE_DIR", str(Path(tempfile.gettempdir()) / "gitstore-agents-zig-cache")
    )
    result = subprocess.run(
        cmd, cwd=TASKS_DIR, env=env, capture_output=True, text=True, check=False
    )
    if result.stderr:
        sys.stderr.write(result.stderr)
    if result.returncode != 0:
        sys.exit(f"tasks/build.py: building {task.name} failed (exit {result.returncode})")
    out.chmod(0o644)  # data, not an executable: keep git's mode stable
    return out


def main(argv: list[str] | None = None) -> int:
    """Build all modules, or with ``--check`` verify the committed ones."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="verify committed modules are reproducible"
    )
    args = parser.parse_args(argv)
    check_toolchain()
    if not args.check:
        MODULES_DIR.mkdir(parents=True, exist_ok=True)
        for task in TASKS:
            out = build(task, MODULES_DIR)
            print(f"built {out.relative_to(REPO_ROOT)} ({out.stat().st_size} bytes)")
        return 0
    mismatches = []
    with tempfile.TemporaryDirectory(prefix="gitstore-tasks-") as tmp:
        for task in TASKS:
            fresh = build(task, Path(tmp)).read_bytes()
            committed = MODULES_DIR / f"{task.name}.wasm"
            if not committed.exists():
                mismatches.append(f"{task.name}: {committed.relative_to(REPO_ROOT)} is missing")
            elif committed.read_bytes() != fresh:
                mismatches.append(f"{task.name}: committed module differs from a fresh build")
    for line in mismatches:
        print(line, file=sys.stderr)
    if mismatches:
        print("run `python tasks/build.py` and commit the modules", file=sys.stderr)
        return 1
    print(f"all {len(TASKS)} modules match a fresh build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
