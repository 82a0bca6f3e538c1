"""The registry's storage, read-only, behind one interface whatever the driver.

Reconciliation asks storage two questions: which blob does a repository's link to a digest
stand for (``linked_blob``), and does a blob's data exist (``has_blob_data``). A driver answers
them directly (one stat, one request) for the re-check just before a batch is deleted, and from
a :meth:`Storage.snapshot` while walking the cache: the filesystem answers a stat as cheaply as
any listing, so its snapshot is itself, while an object store answers from a few listings
spooled to disk, since one request per cache entry would cost money and hours.

Drivers: ``filesystem`` (:mod:`blobcache.storage.filesystem`) and ``s3``
(:mod:`blobcache.storage.s3`, on boto3). Another object store is one more module with a
:class:`Storage` subclass, registered in :data:`blobcache.storage.config.DRIVERS`.

Errors keep one meaning across drivers: :class:`StorageInvalid` when the configuration cannot
point at a registry's storage (retrying will not help), :class:`StorageUnavailable` when
storage cannot be read right now (permissions, I/O, an object store's 403, 5xx or timeout).
Neither is ever taken for "absent": that would clear entries storage still backs.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from typing import Protocol

from blobcache.digest import validate_digest

# The errors live with every other error (their codes and statuses) in blobcache.exceptions;
# they stay importable from here, where they arise.
from blobcache.exceptions import (
    DigestInvalid,
    StorageInvalid,
    StorageUnavailable,
    StorageUnconfigured,
)

__all__ = [
    "V2_PARTS",
    "RegistryStorage",
    "Storage",
    "StorageInvalid",
    "StorageUnavailable",
    "StorageUnconfigured",
    "StorageView",
    "configured_storage",
    "blob_data_name",
    "link_names",
    "link_target",
    "open_storage",
    "repository_name",
]

#: Under the configured root, the registry keeps everything in this folder.
V2_PARTS = ("docker", "registry", "v2")


def blob_data_name(digest: str) -> str:
    """Where the registry keeps a blob's data, under ``docker/registry/v2``: the first two hex
    digits make a folder level so that no folder holds every blob."""
    algorithm, _, encoded = digest.partition(":")
    return f"blobs/{algorithm}/{encoded[:2]}/{encoded}/data"


def repository_name(repository: str) -> str:
    """A repository's folder under ``docker/registry/v2``."""
    # The name grammar already rules these out; a path must never leave the tree.
    if any(part in ("", ".", "..") for part in repository.split("/")):
        raise ValueError(f"{repository!r} cannot be a repository folder")
    return f"repositories/{repository}"


def link_names(digest: str) -> tuple[str, str]:
    """The two links by which a repository holds ``digest``, under its folder: as a layer (or
    config) and as a manifest revision."""
    algorithm, _, encoded = digest.partition(":")
    return (
        f"_layers/{algorithm}/{encoded}/link",
        f"_manifests/revisions/{algorithm}/{encoded}/link",
    )


#: A link holds one digest (at most ``sha512:`` and 128 hex digits); more is not a link.
LINK_MAX = 200


def link_target(content: str | bytes, digest: str) -> str:
    """The digest a link to ``digest`` stands for, from the link's content.

    The registry writes the canonical digest into every link, so an alias link (a blob pushed
    under ``sha512``, whose data is stored under ``sha256`` only) names the blob whose data backs
    it. A link whose content is no digest is taken at its own digest, like the files the tests
    write.
    """
    if isinstance(content, bytes):
        content = content[:LINK_MAX].decode("utf-8", "replace")
    try:
        return validate_digest(content.strip())
    except DigestInvalid:
        return digest


class StorageView(Protocol):
    """What reconciliation asks storage. Digests and names must be validated by the caller."""

    def linked_blob(self, repository: str, digest: str) -> str | None:
        """The digest whose data backs ``repository``'s link to ``digest`` (the link's
        content: the canonical digest for an alias link), or None when it is not linked."""

    def has_blob_data(self, digest: str) -> bool:
        """Whether the blob's data exists."""


class Storage(abc.ABC):
    """One registry's storage, opened by a driver; it never writes."""

    #: The registry's name for the driver (the key under the configuration's ``storage``).
    driver: str = ""

    def __init__(self) -> None:
        #: Requests made to storage so far (system calls for the filesystem, HTTP requests
        #: including retries for an object store): what a run cost.
        self.requests = 0

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the storage is, for messages: never a credential."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise :class:`StorageInvalid` unless this is a registry's storage (it has
        ``docker/registry/v2``), :class:`StorageUnavailable` when that cannot be read."""

    @abc.abstractmethod
    def linked_blob(self, repository: str, digest: str) -> str | None:
        """As :meth:`StorageView.linked_blob`, asked of storage now."""

    @abc.abstractmethod
    def has_blob_data(self, digest: str) -> bool:
        """As :meth:`StorageView.has_blob_data`, asked of storage now."""

    def links(self, repository: str, digest: str) -> bool:
        """Whether ``repository`` links ``digest`` as a layer (or config) or as a manifest."""
        return self.linked_blob(repository, digest) is not None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[StorageView]:
        """Answers for one walk of the cache. By default storage itself, asked each time."""
        yield self

    def close(self) -> None:  # noqa: B027 - most drivers hold nothing to release
        """Release connections; the storage is not used afterwards."""


# The filesystem driver kept its historical name: callers and host projects import it.
from blobcache.storage.config import configured_storage, open_storage  # noqa: E402
from blobcache.storage.filesystem import FilesystemStorage as RegistryStorage  # noqa: E402
