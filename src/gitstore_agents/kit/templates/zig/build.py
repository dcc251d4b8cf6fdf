"""Build @NAME@.wasm with the ziglang package: ``python build.py``.

Needs ``pip install ziglang``. The flags are fixed and the sources passed
relative to this directory, so the same sources give the same bytes (the
same digest) on every machine with the same ziglang version. The first
build compiles Zig's libc for wasm32-wasi into the global cache (~40 s).
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELPERS = sorted(p.relative_to(HERE).as_posix() for p in (HERE / "gitstore").glob("*.c"))
COMMAND = [
    sys.executable, "-m", "ziglang", "build-exe",
    "-target", "wasm32-wasi", "-O", "ReleaseSmall", "-fstrip", "-lc",
    # Keeps the module's minimum memory small.
    "--stack", "262144",
    "-Igitstore", "-cflags", "-std=c11", "--",
    "main.zig", *HELPERS, "-femit-bin=@NAME@.wasm",
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(subprocess.run(COMMAND, cwd=HERE, check=False).returncode)
