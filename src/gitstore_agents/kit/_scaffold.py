"""``tasks new``: a module project from the templates shipped in the wheel."""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ..errors import GitStoreAgentsError

LANGUAGES = ("c", "zig")
"""Languages a project can be scaffolded in."""

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PLACEHOLDER = "@NAME@"
_KIT = resources.files(__package__ or "gitstore_agents.kit")
_BUILD = {
    "c": "python -m ziglang cc --target=wasm32-wasi -std=c11 -Os -s -Wall -Wextra "
    "-Wl,-z,stack-size=262144 -Igitstore main.c gitstore/*.c -o NAME.wasm",
    "zig": "python -m ziglang build-exe -target wasm32-wasi -O ReleaseSmall -fstrip -lc "
    "--stack 262144 -Igitstore -cflags -std=c11 -- main.zig gitstore/*.c -femit-bin=NAME.wasm",
}


class ProjectError(GitStoreAgentsError):
    """A module project is unusable: a bad name, an occupied directory, no module or fixtures."""

    code = "project-invalid"


def helper_files(lang: str) -> dict[str, Traversable]:
    """The helper library of ``lang``: file name to its packaged file."""
    files = {f.name: f for f in (_KIT / "c").iterdir() if f.name.endswith((".c", ".h"))}
    if lang == "zig":
        files["gitstore.zig"] = _KIT / "zig" / "gitstore.zig"
    return dict(sorted(files.items()))


def scaffold(name: str, lang: str, directory: Path) -> list[Path]:
    """Create the module project ``name`` in ``directory``; return the files written.

    Args:
        name: The extension's name (lower-case letters, digits and ``-``, at
            most 63): the module file is ``<name>.wasm`` and the module
            refuses inputs for any other extension.
        lang: ``c`` or ``zig``.
        directory: Where (must not exist, or be empty).

    Raises:
        ProjectError: a bad name or language, or a non-empty directory.
    """
    if not _NAME.fullmatch(name) or len(name) > 63:
        raise ProjectError(
            f"name={name!r}: use lower-case letters, digits and '-' (at most 63, "
            "starting and ending with a letter or digit); it names the extension"
        )
    if lang not in LANGUAGES:
        raise ProjectError(f"--lang {lang!r}: one of {', '.join(LANGUAGES)}")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ProjectError(f"{directory} exists and is not an empty directory")
    templates = _KIT / "templates"
    main = "main.c" if lang == "c" else "main.zig"
    planned: dict[str, str | bytes] = {
        main: _text(templates / lang / main, name),
        "build.py": _text(templates / lang / "build.py", name),
        "README.md": _text(templates / "common" / "README.md", name)
        .replace("@LANG@", "C" if lang == "c" else "Zig")
        .replace("@MAIN@", main)
        .replace("@BUILD@", _BUILD[lang].replace("NAME", name)),
        ".gitignore": ".zig-cache/\n",
    }
    for fixture in sorted((templates / "common" / "fixtures").iterdir(), key=lambda f: f.name):
        planned[f"fixtures/{fixture.name}"] = _text(fixture, name)
    for file_name, helper in helper_files(lang).items():
        planned[f"gitstore/{file_name}"] = helper.read_bytes()
    written: list[Path] = []
    try:
        for relative, content in planned.items():
            path = directory / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        # Take back what was written, so the same command can simply run again.
        for path in reversed(written):
            path.unlink(missing_ok=True)
        for parent in sorted({p.parent for p in written}, key=lambda p: -len(p.parts)):
            if parent != directory.parent and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
        raise ProjectError(
            f"cannot write the project into {directory}: {exc.strerror or exc}"
        ) from None
    return written


def _text(template: Traversable, name: str) -> str:
    return template.read_text(encoding="utf-8").replace(_PLACEHOLDER, name)
