"""Audio blob storage, addressed by key.

Workers get keys, never arrays: they read and write through `Storage` on their own node, so a
20 MB file never travels through the bridge. `LocalStorage` is a folder; on a multi-node Ray
cluster that folder must be a mount every node shares (NFS, EFS...), which is why the pool
refuses to start on several nodes unless `AUDIO_ENGINE_STORAGE_SHARED=true` says it is. An
S3-compatible store would implement the same four methods.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class Storage(Protocol):
    def path(self, key: str) -> Path: ...
    def writing(self, key: str) -> Iterator[Path]: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...


class LocalStorage:
    """A folder of blobs. Writes go to a temporary name and are renamed into place, so a
    reader never sees half a file and a crash never leaves one under a real key."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if not _KEY.match(key) or ".." in key.split("/"):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root / key

    @contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        """Yield a temporary path to write; on success it becomes `key` atomically."""
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
        try:
            yield tmp
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size
