"""A registry's filesystem storage written the way the registry lays it out, and the stale cache
the reconcile tests (of the function, the command, the API and the console) clear against it, on
the filesystem or in a bucket (:class:`tests.helpers.s3_tree.S3Tree`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from blobcache import Descriptor
from blobcache.cache import DescriptorCache
from blobcache.reconcile import (
    GLOBAL_DATA_MISSING,
    MEMBERSHIP_DATA_MISSING,
    MEMBERSHIP_UNLINKED,
    ORPHAN_REPOSITORY_HASH,
    ReconcileResult,
)
from tests.helpers.entries import D1, D2, D3, D4, D5, D6, digest
from tests.helpers.s3_tree import S3Tree

OCTET = "application/octet-stream"
ALPINE = "library/alpine"
APP = "team/app"


class StorageTree:
    """Writes the registry's files the way the registry lays them out."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.v2 = root / "docker" / "registry" / "v2"
        self.v2.mkdir(parents=True)

    def blob(self, digest: str, data: bytes = b"x") -> None:
        algorithm, _, encoded = digest.partition(":")
        path = self.v2 / "blobs" / algorithm / encoded[:2] / encoded / "data"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def layer(self, repository: str, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        return self._link(
            self.v2 / "repositories" / repository / "_layers" / algorithm / encoded, digest
        )

    def revision(self, repository: str, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        folder = self.v2 / "repositories" / repository / "_manifests" / "revisions"
        return self._link(folder / algorithm / encoded, digest)

    def alias(self, repository: str, alias: str, canonical: str) -> Path:
        """The layer link the registry writes for a blob pushed under another algorithm: at the
        alias's path, naming the canonical digest (the only one with data)."""
        algorithm, _, encoded = alias.partition(":")
        return self._link(
            self.v2 / "repositories" / repository / "_layers" / algorithm / encoded, canonical
        )

    @staticmethod
    def _link(folder: Path, digest: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "link"
        link.write_text(digest)
        return link

    def pushed(self, repository: str, digest: str) -> None:
        """A blob pushed to ``repository``: its data and the repository's layer link."""
        self.blob(digest)
        self.layer(repository, digest)


def cache_entry(cache: DescriptorCache, repository: str | None, key_digest: str) -> None:
    target = cache if repository is None else cache.repository_scoped(repository)
    target.set_descriptor(key_digest, Descriptor(key_digest, 10, OCTET))


def cache_sha512_alias(cache: DescriptorCache, storage: StorageTree | S3Tree) -> str:
    """D1's content cached in team/app under its sha512 digest, and the sha512 link the registry
    writes for such a push (it names D1); whether D1's own data and link exist is the caller's."""
    alias = digest(1, "sha512")
    cache.repository_scoped(APP).set_descriptor(alias, Descriptor(D1, 10, OCTET))
    storage.alias(APP, alias, D1)
    return alias


def populate_stale(cache: DescriptorCache, client: Any, tree: StorageTree | S3Tree) -> None:
    """One entry of each reason next to entries storage backs.

    - D1: pushed to library/alpine and team/app; team/app deleted it (its link is gone).
    - D2: pushed to library/alpine, then swept by GC: the link stays, the data is gone.
    - D3: a healthy layer of team/app.
    - D4: a repository hash without membership in team/app, not linked there.
    - D5: a global entry only (a manifest read by tag), then swept.
    - D6: a global entry only, still stored.
    """
    for repository, key_digest in ((ALPINE, D1), (APP, D1), (ALPINE, D2), (APP, D3)):
        cache_entry(cache, repository, key_digest)
    tree.pushed(ALPINE, D1)
    tree.layer(ALPINE, D2)
    tree.pushed(APP, D3)
    client.hset(f"repository::{APP}::blobs::{D4}", "mediatype", OCTET)
    cache_entry(cache, None, D5)
    cache_entry(cache, None, D6)
    tree.blob(D6)


def by_reason(result: ReconcileResult) -> list[tuple[str, str | None, str]]:
    return sorted((e.reason, e.repository, e.digest) for e in result.entries)


def assert_same_outcome(dry: ReconcileResult, real: ReconcileResult) -> None:
    """A dry run reports the real run's counts and entries (SCAN order may differ, and with it
    how many storage checks a run needs: an orphan hash met after its member was cleared is
    gone from the real run's walk)."""
    assert (dry.dry_run, real.dry_run) == (True, False)
    assert dry.summary() == {
        **real.summary(),
        "dry_run": True,
        "storage_requests": dry.storage_requests,
    }
    assert by_reason(dry) == by_reason(real)


EXPECTED_WHOLE = [
    (GLOBAL_DATA_MISSING, None, D2),
    (GLOBAL_DATA_MISSING, None, D5),
    (MEMBERSHIP_DATA_MISSING, ALPINE, D2),
    (MEMBERSHIP_UNLINKED, APP, D1),
    (ORPHAN_REPOSITORY_HASH, APP, D4),
]
#: The same as the JSON the command and the API print, and its counts per reason.
EXPECTED_DIGESTS = [
    {"reason": reason, "repository": repository, "digest": key_digest}
    for reason, repository, key_digest in EXPECTED_WHOLE
]
#: populate_stale's storage checks on the filesystem (one system call each): alpine's D1 (link,
#: data), D2 (link, data, and both again in the re-check), team/app's D1 (both link paths, twice),
#: D3 (link, data) and orphan D4 (both link paths, twice); the global D1, D3, D6 (data) and D2, D5
#: (data, twice).
EXPECTED_STORAGE_REQUESTS = 2 + 4 + 4 + 2 + 4 + 3 + 2 * 2
#: populate_stale on S3: two listings per repository (_layers and _manifests/revisions of
#: library/alpine and team/app); a one-key listing per data question (far fewer than
#: DIRECT_DATA_QUESTIONS, so blobs/ is not listed): alpine's D1 and D2, team/app's D3, the
#: global D1, D2, D3, D5 and D6; then the re-checks: alpine's D2 (its link, its data), team/app's
#: D1 and orphan D4 (both link paths), the global D2 and D5 (their data).
EXPECTED_S3_REQUESTS = 2 * 2 + 3 + 5 + 2 + 2 + 2 + 2
EXPECTED_REASONS = {
    MEMBERSHIP_UNLINKED: 1,
    MEMBERSHIP_DATA_MISSING: 1,
    ORPHAN_REPOSITORY_HASH: 1,
    GLOBAL_DATA_MISSING: 2,
}


def expected_stale_report(storage_requests: int) -> dict[str, Any]:
    """The JSON result of reconciling populate_stale's entries, as the command and API print it."""
    return {
        "cleared": 5,
        "keys_deleted": 5,
        "dry_run": False,
        "repository": None,
        "reasons": EXPECTED_REASONS,
        "skipped": 0,
        "storage_requests": storage_requests,
        "digests": EXPECTED_DIGESTS,
    }


def sorted_digests(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A result's digests in EXPECTED_WHOLE's order (SCAN order varies)."""
    return sorted(entries, key=lambda e: (e["reason"], e["repository"] or "", e["digest"]))


def in_order(document: dict[str, Any]) -> dict[str, Any]:
    """A JSON result with its digests sorted like EXPECTED_WHOLE."""
    document["digests"] = sorted_digests(document["digests"])
    return document
