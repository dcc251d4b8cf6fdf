"""Compiled modules on disk, so a restarted worker skips Cranelift.

``wasmtime.Module.deserialize`` trusts its input completely: bytes that are not
an artifact this engine wrote are undefined behaviour, not an error. So an
artifact is only ever read back after three checks:

* its file name is the key: module digest + engine fingerprint (wasmtime
  version, target, every code-affecting setting), so another engine's
  artifacts are never candidates;
* the file starts with a header holding the sha256 of (key, artifact), checked
  before deserializing, so a truncated, corrupted or renamed file is refused;
* the directory is created ``0700`` and refused if group- or world-writable,
  since the checksum detects accidents, not a hostile writer.

Files are written to a temporary name and renamed, so a reader never sees a
half-written artifact. Anything unexpected means "not cached": the caller
compiles again and rewrites the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_MAGIC = b"GSACWASM1\n"
_HASH_SIZE = 32


def default_cache_dir() -> Path:
    """``$GITSTORE_MODULE_CACHE``, else ``$XDG_CACHE_HOME/gitstore-agents/modules``."""
    explicit = os.environ.get("GITSTORE_MODULE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gitstore-agents" / "modules"


class ArtifactCache:
    """Serialized compiled modules under ``directory``, keyed by digest and engine.

    Args:
        directory: Where artifacts live (created ``0700`` if missing).
        fingerprint: The engine fingerprint the artifacts must match.
    """

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = directory
        self.fingerprint = fingerprint
        self.usable = _prepare(directory)

    def path(self, digest: str) -> Path:
        """File holding the artifact of module ``digest`` for this engine."""
        return self.directory / f"{digest.removeprefix('sha256:')}.{self.fingerprint}.cwasm"

    def _key(self, digest: str) -> bytes:
        return f"{digest}\n{self.fingerprint}\n".encode()

    def load(self, digest: str) -> bytes | None:
        """The verified artifact of ``digest``, or None (missing, corrupt, or cache unusable)."""
        if not self.usable:
            return None
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("module cache unreadable", path=str(path), error=str(exc))
            return None
        header = len(_MAGIC) + _HASH_SIZE
        artifact = data[header:]
        expected = data[len(_MAGIC) : header]
        if not data.startswith(_MAGIC) or _checksum(self._key(digest), artifact) != expected:
            log.warning("module cache entry corrupt; recompiling", path=str(path))
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return artifact

    def store(self, digest: str, artifact: bytes) -> None:
        """Write the artifact of ``digest`` atomically (best effort: errors are logged)."""
        if not self.usable:
            return
        path = self.path(digest)
        content = _MAGIC + _checksum(self._key(digest), artifact) + artifact
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".cwasm")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(content)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("module cache not written", path=str(path), error=str(exc))


def _checksum(key: bytes, artifact: bytes) -> bytes:
    digest = hashlib.sha256(key)
    digest.update(artifact)
    return digest.digest()


def _prepare(directory: Path) -> bool:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = directory.stat().st_mode
    except OSError as exc:
        log.warning("module cache disabled", directory=str(directory), error=str(exc))
        return False
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.warning(
            "module cache disabled: directory is writable by others",
            directory=str(directory),
            mode=oct(stat.S_IMODE(mode)),
        )
        return False
    return True
