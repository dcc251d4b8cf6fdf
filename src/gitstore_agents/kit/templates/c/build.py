"""Build @NAME@.wasm with the ziglang package: ``python build.py``.

Needs ``pip install ziglang``. The flags are fixed and the sources passed
relative to this directory, so the same sources give the same bytes (the
same digest) on every machine with the same ziglang version.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELPERS = sorted(p.relative_to(HERE).as_posix() for p in (HERE / "gitstore").glob("*.c"))
COMMAND = [
    sys.executable, "-m", "ziglang", "cc",
    "--target=wasm32-wasi", "-std=c11", "-Os", "-s", "-Wall", "-Wextra",
    # Keeps the module's minimum memory small (wasm-ld reserves 1 MiB of stack otherwise).
    "-Wl,-z,stack-size=262144",
    "-Igitstore", "main.c", *HELPERS, "-o", "@NAME@.wasm",
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(subprocess.run(COMMAND, cwd=HERE, check=False).returncode)
