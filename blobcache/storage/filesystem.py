"""The ``filesystem`` driver: the registry's storage folder, read with ``stat`` and small reads.

The layout was read off a running registry 2.8.2 (``storage.filesystem.rootdirectory``)::

    docker/registry/v2/blobs/<alg>/<first two hex>/<hex>/data
    docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
    docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link

What the registry does to it (observed, and what reconciliation relies on): a blob DELETE removes
the repository's ``_layers/.../link`` file and keeps its folder; a manifest DELETE removes the
``revisions/.../link`` file; ``garbage-collect`` removes whole ``blobs/<alg>/<xx>/<hex>`` folders
and leaves every ``_layers`` link behind, so after a sweep a repository can still link a digest
whose data is gone. Nothing here writes to storage.

A blob pushed under another algorithm than the canonical one (``sha512`` for a ``sha256`` blob)
has its data under the canonical digest only; the repository links the alias with a ``link`` file
whose content names the canonical digest, as it does for every link. So the blob a link stands
for is the one its content names, and that blob's data decides.

Every question is answered with ``stat`` or one small read on one path, so a check costs a few
system calls and no memory. Only "no such file" (or "not a directory" on the way) means absent;
any other error (permissions, I/O, a symlink loop) raises :class:`StorageUnavailable`, because
taking it for "absent" would clear entries the storage still backs.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from blobcache.storage import (
    LINK_MAX,
    V2_PARTS,
    Storage,
    StorageInvalid,
    StorageUnavailable,
    blob_data_name,
    link_names,
    link_target,
    repository_name,
)

_ABSENT = (errno.ENOENT, errno.ENOTDIR)


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except OSError as error:
        if error.errno in _ABSENT:
            return False
        raise StorageUnavailable(f"cannot read {path}: {error.strerror or error}") from error
    return True


def _read_link(path: str) -> bytes | None:
    """A link file's content, or None when there is no such file."""
    try:
        with open(path, "rb") as link:
            content = link.read(LINK_MAX)
    except OSError as error:
        if error.errno in _ABSENT:
            return None
        raise StorageUnavailable(f"cannot read {path}: {error.strerror or error}") from error
    return content


class FilesystemStorage(Storage):
    """One registry's storage tree (``storage.filesystem.rootdirectory``).

    Paths are built as plain strings: a reconciliation checks hundreds of thousands of them, and
    ``pathlib`` would cost several times the ``stat`` calls themselves.
    """

    driver = "filesystem"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(root)
        self.v2 = self.root.joinpath(*V2_PARTS)

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> FilesystemStorage:
        """The storage at ``root``, checked (:meth:`check`) before anything relies on it."""
        if not str(root):
            raise StorageInvalid("the storage root must not be empty")
        storage = cls(root)
        storage.check()
        return storage

    def describe(self) -> str:
        return str(self.root)

    def check(self) -> None:
        """A registry creates ``docker/registry/v2`` with its first push, so a root without it
        is either a typo or an empty registry; refusing both keeps a wrong path from clearing
        the whole cache."""
        if not _exists(str(self.root)):
            raise StorageInvalid(f"the storage root {self.root} does not exist")
        if not self.root.is_dir():
            raise StorageInvalid(f"the storage root {self.root} is not a directory")
        if not _exists(str(self.v2)) or not self.v2.is_dir():
            raise StorageInvalid(
                f"{self.root} has no {'/'.join(V2_PARTS)} folder: give the registry's "
                "storage.filesystem.rootdirectory (a registry creates that folder on its "
                "first push)"
            )

    def blob_data_path(self, digest: str) -> str:
        return f"{self.v2}/{blob_data_name(digest)}"

    def repository_path(self, repository: str) -> str:
        return f"{self.v2}/{repository_name(repository)}"

    def layer_link_path(self, repository: str, digest: str) -> str:
        return f"{self.repository_path(repository)}/{link_names(digest)[0]}"

    def revision_link_path(self, repository: str, digest: str) -> str:
        return f"{self.repository_path(repository)}/{link_names(digest)[1]}"

    def has_blob_data(self, digest: str) -> bool:
        self.requests += 1
        return _exists(self.blob_data_path(digest))

    def linked_blob(self, repository: str, digest: str) -> str | None:
        for path in (
            self.layer_link_path(repository, digest),
            self.revision_link_path(repository, digest),
        ):
            self.requests += 1
            content = _read_link(path)
            if content is not None:
                return link_target(content, digest)
        return None
