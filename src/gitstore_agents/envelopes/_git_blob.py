"""Git's blob hashing, to verify the ``blob_oid`` a push claims."""

from __future__ import annotations

import hashlib

from ..errors import GitStoreAgentsError


class BlobMismatchError(GitStoreAgentsError):
    """Inline content does not hash to the blob id the event claims."""

    code = "blob-oid-mismatch"


def git_blob_oid(content: bytes) -> str:
    """The sha1 object id git gives ``content`` as a blob."""
    header = b"blob %d\0" % len(content)
    return hashlib.sha1(header + content, usedforsecurity=False).hexdigest()


def verify_blob(path: str, blob_oid: str, content: bytes) -> None:
    """Raise ``BlobMismatchError`` naming ``path`` unless ``content`` is ``blob_oid``."""
    actual = git_blob_oid(content)
    if actual != blob_oid.lower():
        raise BlobMismatchError(
            f"blobs[path={path!r}].blob_oid is {blob_oid} but the content hashes to {actual}"
        )
