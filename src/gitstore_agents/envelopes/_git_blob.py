"""Git's blob hashing, to verify the ``blob_oid`` a push claims.

A blob's object id is the hash of ``b"blob <size>\\0" + content``: sha1 (40 hex)
in classic repositories, sha256 (64 hex) in ``--object-format=sha256`` ones;
the length of the claimed id says which. ``git hash-object FILE`` prints it.
"""

from __future__ import annotations

import hashlib

from ..errors import GitStoreAgentsError


class BlobMismatchError(GitStoreAgentsError):
    """Content does not hash to the blob id the event claims; a permanent error."""

    code = "blob-oid-mismatch"
    retryable = False


def git_blob_oid(content: bytes, *, object_format: str = "sha1") -> str:
    """The object id git gives ``content`` as a blob (``sha1`` or ``sha256`` format)."""
    header = b"blob %d\0" % len(content)
    if object_format == "sha256":
        return hashlib.sha256(header + content).hexdigest()
    if object_format == "sha1":
        return hashlib.sha1(header + content, usedforsecurity=False).hexdigest()
    raise ValueError(f"object_format={object_format!r} is not 'sha1' or 'sha256'")


def verify_blob(path: str, blob_oid: str, content: bytes) -> None:
    """Raise ``BlobMismatchError`` naming ``path`` unless ``content`` is ``blob_oid``.

    Raises:
        BlobMismatchError: the content hashes to another id.
    """
    object_format = "sha256" if len(blob_oid) == 64 else "sha1"
    actual = git_blob_oid(content, object_format=object_format)
    if actual != blob_oid.lower():
        raise BlobMismatchError(
            f"blobs[path={path!r}].blob_oid is {blob_oid} but the content hashes to {actual}"
        )
