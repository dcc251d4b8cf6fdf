"""Module references in the configuration: where a task kind's WASI module comes from."""

from __future__ import annotations

import enum
import re

import msgspec

from ..errors import ConfigError
from ..sandbox import REFERENCE_MODULES

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class ModuleSource(enum.StrEnum):
    """Where module bytes are read from."""

    REFERENCE = "reference"
    OBJECT_STORE = "sha256"
    FILE = "file"


class ModuleRef(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed ``reference:<name>`` / ``sha256:<hex>`` / ``file:<path>`` reference.

    Attributes:
        source: Where the bytes come from.
        value: The reference name, the full ``sha256:<hex>`` digest, or the path.
    """

    source: ModuleSource
    value: str

    def __str__(self) -> str:
        if self.source is ModuleSource.OBJECT_STORE:
            return self.value
        return f"{self.source}:{self.value}"


def parse_module_ref(text: str, *, field: str = "module") -> ModuleRef:
    """Parse a module reference.

    Raises:
        ConfigError: naming ``field`` when the reference is malformed or names
            no packaged reference module.
    """
    scheme, sep, rest = text.partition(":")
    if sep and scheme == ModuleSource.REFERENCE:
        if rest not in REFERENCE_MODULES:
            raise ConfigError(
                f"{field}={text!r} names no reference module; known: {', '.join(REFERENCE_MODULES)}"
            )
        return ModuleRef(source=ModuleSource.REFERENCE, value=rest)
    if sep and scheme == ModuleSource.OBJECT_STORE:
        if not _DIGEST.match(text):
            raise ConfigError(f"{field}={text!r} is not a digest of the form sha256:<64 hex>")
        return ModuleRef(source=ModuleSource.OBJECT_STORE, value=text)
    if sep and scheme == ModuleSource.FILE and rest:
        return ModuleRef(source=ModuleSource.FILE, value=rest)
    raise ConfigError(
        f"{field}={text!r} is not a module reference "
        "(reference:<name>, sha256:<64 hex> or file:<path>)"
    )
