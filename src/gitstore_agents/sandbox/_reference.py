"""The reference task modules shipped inside the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

REFERENCE_MODULES = ("markdown-compile", "catalog-enrich", "extension-sample")


def reference_module_path(name: str) -> Path:
    """Path of the packaged reference module ``name`` (e.g. ``markdown-compile``).

    Raises:
        KeyError: ``name`` is not a reference module.
    """
    if name not in REFERENCE_MODULES:
        raise KeyError(f"no reference module {name!r}; known: {', '.join(REFERENCE_MODULES)}")
    return Path(str(resources.files(__package__).joinpath("modules", f"{name}.wasm")))
