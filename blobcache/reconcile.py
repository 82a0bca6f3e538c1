"""Reconciliation: clear exactly the cache entries the registry's storage no longer backs.

``registry garbage-collect`` and out-of-band deletions never touch Redis
(distribution/distribution#2945, #4269), so the registry keeps answering 200 for blobs that are
gone, and registries before 3.1 bring a deleted blob back in the repository it was deleted from
(CVE-2026-35172). Portals used to flush every key after GC; :func:`reconcile` compares each
entry with storage instead:

* a repository's entry for a digest (its membership and its repository hash, cleared together)
  is backed while the repository links the digest (its ``_layers`` or its
  ``_manifests/revisions`` link exists) and the data of the blob the link names exists (an
  alias link names the canonical digest). GC leaves ``_layers`` links behind when it sweeps the
  data, hence the second condition;
* a global entry ``blobs::<digest>`` is backed while the blob's data exists (for an alias entry,
  the data of the canonical digest it names also counts).

Clearing an entry costs the registry one cache miss at most (it then asks storage and refills),
while a stale entry makes it serve a blob that is gone; so anything storage cannot back goes, and
anything it backs stays. When storage cannot be read, the run stops (``StorageUnavailable``)
rather than take an unreadable file for a missing one.

Races with a registry in service: the registry writes storage before the cache, so an entry that
is stale when its batch is deleted stays stale. Candidates are collected while walking Redis, then
storage is checked again just before their batch is deleted, and each batch is one Lua script
(membership and repository hash of a digest go together, or not at all). Redis is walked with
SCAN and SSCAN, never a whole set or key list in memory; with ``on_cleared`` the cleared entries
are handed over one by one instead of being collected in the result.

Each batch goes through the client's store (:mod:`blobcache.store`): one script on a single
server, ordered per-slot steps on Redis Cluster, where a set and its hashes live in different
slots.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from blobcache import audit, keys, metrics, signals
from blobcache.cache import (
    DescriptorCache,
    RepositoryScopedCache,
    get_descriptor_cache,
    translate_redis_errors,
)
from blobcache.engine import (
    GLOBAL,
    MEMBERSHIP,
    REPOSITORY,
    SWEEP_SCAN_COUNT,
    LayoutKeys,
    check_batch_size,
    is_valid_digest,
    shielded_from_interrupts,
)
from blobcache.models import RECONCILE, REPOSITORY_SCOPE
from blobcache.reference import validate_repository_name
from blobcache.storage import (
    Storage,
    StorageInvalid,
    StorageUnavailable,
    StorageView,
    open_storage,
)
from blobcache.store.base import HASH_DELETED, MEMBERS, ORPHANS, PRESENT

__all__ = [
    "GLOBAL_DATA_MISSING",
    "MEMBERSHIP_DATA_MISSING",
    "MEMBERSHIP_UNLINKED",
    "ORPHAN_REPOSITORY_HASH",
    "REASONS",
    "ClearedEntry",
    "ReconcileResult",
    "StorageInvalid",
    "StorageUnavailable",
    "reconcile",
]

#: A repository no longer links a digest it holds as a member (blob or manifest DELETE).
MEMBERSHIP_UNLINKED = "membership_unlinked"
#: A repository still links a member, but the blob's data is gone (swept by garbage-collect).
MEMBERSHIP_DATA_MISSING = "membership_data_missing"
#: A repository hash without membership, for a digest the repository's storage does not back.
ORPHAN_REPOSITORY_HASH = "orphan_repository_hash"
#: A global descriptor whose blob data is gone.
GLOBAL_DATA_MISSING = "global_data_missing"
REASONS = (
    MEMBERSHIP_UNLINKED,
    MEMBERSHIP_DATA_MISSING,
    ORPHAN_REPOSITORY_HASH,
    GLOBAL_DATA_MISSING,
)

Progress = Callable[[int], None]



@dataclass(frozen=True, slots=True)
class ClearedEntry:
    """One entry a reconciliation cleared (or, in a dry run, would clear)."""

    reason: str
    digest: str
    #: ``None`` for a global entry.
    repository: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "repository": self.repository, "digest": self.digest}


@dataclass(frozen=True)
class ReconcileResult:
    """What a reconciliation cleared, per reason; a dry run reports what the real run would.

    ``cleared`` counts entries as the clear command does (a global entry is one; each
    repository's membership and hash for a digest are one). ``skipped`` counts entries that
    cannot be mapped to storage and are left alone: set members that are not valid digests, and
    membership keys of the wrong type.
    """

    counts: Mapping[str, int]
    keys_deleted: int
    dry_run: bool
    repository: str | None = None
    interrupted: bool = False
    skipped: int = 0
    #: Requests made to storage: system calls for the filesystem, HTTP requests (retries
    #: included) for an object store.
    storage_requests: int = 0
    #: Empty when the caller took the entries through ``on_cleared``.
    entries: tuple[ClearedEntry, ...] = field(default=())

    @property
    def cleared(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict[str, Any]:
        """The counts without the entries; ``interrupted`` appears only when it is true."""
        summary: dict[str, Any] = {
            "cleared": self.cleared,
            "keys_deleted": self.keys_deleted,
            "dry_run": self.dry_run,
            "repository": self.repository,
            "reasons": {reason: self.counts.get(reason, 0) for reason in REASONS},
            "skipped": self.skipped,
            "storage_requests": self.storage_requests,
        }
        if self.interrupted:
            summary["interrupted"] = True
        return summary

    def as_dict(self) -> dict[str, Any]:
        return {**self.summary(), "digests": [entry.as_dict() for entry in self.entries]}


# A repository entry waiting for its batch: (repository, digest, reason).
_Candidate = tuple[str, str, str]


class _Reconciliation:
    """One run: the client, the storage, the counts, and the batch being filled."""

    def __init__(
        self,
        cache: DescriptorCache,
        storage: Storage,
        view: StorageView,
        *,
        dry_run: bool,
        batch_size: int,
        progress: Progress | None,
        on_cleared: Callable[[ClearedEntry], None] | None,
    ) -> None:
        self.client = cache.client
        self.store = cache.store
        self.storage = storage
        # The walk asks the view (listings, for an object store); a batch's re-check asks
        # storage itself, just before deleting.
        self.view = view
        self.requests_before = storage.requests
        self.dry_run = dry_run
        self.batch_size = batch_size
        self.progress = progress
        self.on_cleared = on_cleared
        self.collected: list[ClearedEntry] = []
        self.counts = dict.fromkeys(REASONS, 0)
        self.keys_deleted = 0
        self.skipped = 0
        self.layout = LayoutKeys()

    # --- what storage backs ---

    def repository_reason(
        self, repository: str, digest: str, *, recheck: bool = False
    ) -> str | None:
        """Why ``repository``'s entry for ``digest`` is stale, or None while storage backs it."""
        source: StorageView = self.storage if recheck else self.view
        linked = source.linked_blob(repository, digest)
        if linked is None:
            return MEMBERSHIP_UNLINKED
        if not source.has_blob_data(linked):
            return MEMBERSHIP_DATA_MISSING
        return None

    def global_backed(
        self, digest: str, canonical: str | None = None, *, recheck: bool = False
    ) -> bool:
        source: StorageView = self.storage if recheck else self.view
        if source.has_blob_data(digest):
            return True
        return canonical not in (None, digest) and source.has_blob_data(canonical)

    # --- bookkeeping ---

    def advance(self, done: int) -> None:
        if self.progress is not None and done:
            self.progress(done)

    def record(self, entry: ClearedEntry) -> None:
        self.counts[entry.reason] += 1
        if self.on_cleared is not None:
            self.on_cleared(entry)
        else:
            self.collected.append(entry)
        if not self.dry_run:
            metrics.count_reconcile_cleared(entry.reason)
            sender = DescriptorCache if entry.repository is None else RepositoryScopedCache
            signals.descriptor_cleared.send(
                sender=sender, digest=entry.digest, repository=entry.repository
            )

    def result(self, repository: str | None, interrupted: bool) -> ReconcileResult:
        return ReconcileResult(
            counts=dict(self.counts),
            keys_deleted=self.keys_deleted,
            dry_run=self.dry_run,
            repository=repository,
            interrupted=interrupted,
            skipped=self.skipped,
            storage_requests=self.storage.requests - self.requests_before,
            entries=tuple(self.collected),
        )

    # --- walks ---

    def scan(self, pattern: str, count: int) -> Iterator[list[Any]]:
        """The keys matching ``pattern`` in chunks of one batch (every node of a cluster)."""
        chunk: list[Any] = []
        for key in self.client.scan_iter(match=pattern, count=count):
            chunk.append(key)
            if len(chunk) >= self.batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def repository_members(self, repository: str) -> None:
        """Walk one membership set with SSCAN; stale members go in batches with their hashes."""
        membership = keys.membership_key(repository)
        kind = keys.key_text(self.client.type(membership))
        if kind == "none":
            return
        if kind != "set":
            self.skipped += 1
            return
        # A dry run removes nothing, so it decides at the end whether the real run would have
        # emptied (and so deleted) the set: when every member it counted was all there was.
        size = int(self.client.scard(membership)) if self.dry_run else 0
        removed = 0
        pending: list[_Candidate] = []
        examined = 0
        for member in self.client.sscan_iter(membership, count=self.batch_size):
            digest = keys.key_text(member)
            examined += 1
            if not is_valid_digest(digest):
                # The registries 2.3 to 2.8.2 accepted upper-case hex: no storage path to check.
                self.skipped += 1
            else:
                reason = self.repository_reason(repository, digest)
                if reason is not None:
                    pending.append((repository, digest, reason))
            if len(pending) >= self.batch_size:
                removed += self.repository_batch(MEMBERS, pending)
                pending = []
            if examined >= self.batch_size:
                self.advance(examined)
                examined = 0
        removed += self.repository_batch(MEMBERS, pending)
        self.advance(examined)
        if self.dry_run and size and removed == size:
            self.keys_deleted += 1

    def repository_orphans(self, repository: str) -> None:
        """Repository hashes without membership (older registries leave them), one sweep."""
        pattern = keys.repository_hashes_pattern(repository)
        pending: list[_Candidate] = []
        for chunk in self.scan(pattern, max(self.batch_size, SWEEP_SCAN_COUNT)):
            hashes: list[tuple[str, str]] = []
            for key in chunk:
                found = self.layout.classify(key)
                # The pattern's ``*`` also matches names that merely start with this one.
                if found and found.shape == REPOSITORY and found.repository == repository:
                    hashes.append((found.repository, found.digest))
            self.orphan_candidates(hashes, pending)
            if len(pending) >= self.batch_size:
                self.repository_batch(ORPHANS, pending)
                pending = []
        self.repository_batch(ORPHANS, pending)

    def orphan_candidates(self, hashes: list[tuple[str, str]], pending: list[_Candidate]) -> None:
        """Queue the hashes without membership that storage does not back.

        Membership is asked first (one SMISMEMBER per repository): a member's hash is its set
        walk's business, and most hashes have their member, so most storage checks are saved.
        The batch script asks again, atomically, before deleting anything.
        """
        if not hashes:
            return
        by_repository: dict[str, list[str]] = {}
        for name, digest in hashes:
            by_repository.setdefault(name, []).append(digest)
        pipe = self.client.pipeline(transaction=False)
        for name, digests in by_repository.items():
            pipe.smismember(keys.membership_key(name), digests)
        # A membership key of the wrong type answers WRONGTYPE: it holds no members.
        replies = pipe.execute(raise_on_error=False)
        for (name, digests), flags in zip(by_repository.items(), replies, strict=True):
            held = [False] * len(digests) if isinstance(flags, Exception) else flags
            for digest, member in zip(digests, held, strict=True):
                if not int(member) and self.repository_reason(name, digest) is not None:
                    pending.append((name, digest, ORPHAN_REPOSITORY_HASH))

    def every_repository(self) -> None:
        """One SCAN over the repository keys: each set is walked when met, hashes without
        membership are checked as orphans."""
        pending: list[_Candidate] = []
        for chunk in self.scan(keys.REPOSITORY_KEYS_PATTERN, self.batch_size):
            sets: list[str] = []
            hashes: list[tuple[str, str]] = []
            for key in chunk:
                found = self.layout.classify(key)
                if found is None:
                    continue
                if found.shape == MEMBERSHIP:
                    sets.append(found.repository)
                elif found.shape == REPOSITORY:
                    hashes.append((found.repository, found.digest))
            self.orphan_candidates(hashes, pending)
            if len(pending) >= self.batch_size:
                self.repository_batch(ORPHANS, pending)
                pending = []
            self.advance(len(hashes))
            for name in sets:
                self.repository_members(name)
        self.repository_batch(ORPHANS, pending)

    def every_global(self) -> None:
        pending: list[str] = []
        for chunk in self.scan(keys.global_key("*"), self.batch_size):
            for key in chunk:
                found = self.layout.classify(key)
                if found and found.shape == GLOBAL and not self.global_backed(found.digest):
                    pending.append(found.digest)
            if len(pending) >= self.batch_size:
                self.global_batch(pending)
                pending = []
            self.advance(len(chunk))
        self.global_batch(pending)

    # --- batches ---

    def repository_batch(self, kind: str, candidates: list[_Candidate]) -> int:
        """Re-check storage, then clear the batch atomically; returns members removed."""
        confirmed: list[_Candidate] = []
        for repository, digest, reason in candidates:
            now = self.repository_reason(repository, digest, recheck=True)
            if now is not None:
                confirmed.append((repository, digest, reason if kind == ORPHANS else now))
        if not confirmed:
            return 0
        removed = 0
        with shielded_from_interrupts():
            pairs = [(repository, digest) for repository, digest, _ in confirmed]
            outcome = self.store.reconcile_repository(kind, pairs, not self.dry_run)
            self.keys_deleted += outcome.sets_deleted
            for (repository, digest, reason), flag in zip(confirmed, outcome.flags, strict=True):
                if flag & PRESENT:
                    removed += 1
                if flag & HASH_DELETED:
                    self.keys_deleted += 1
                if flag:
                    self.record(ClearedEntry(reason, digest, repository))
        return removed

    def global_batch(self, candidates: list[str]) -> None:
        if not candidates:
            return
        global_keys = [keys.global_key(digest) for digest in candidates]
        pipe = self.client.pipeline(transaction=False)
        for key in global_keys:
            pipe.hget(key, keys.FIELD_DIGEST)
        # A key of another type answers WRONGTYPE here; the script leaves it alone anyway.
        canonical = [
            None if isinstance(value, Exception) or value is None else keys.key_text(value)
            for value in pipe.execute(raise_on_error=False)
        ]
        confirmed = [
            (key, digest)
            for key, digest, named in zip(global_keys, candidates, canonical, strict=True)
            if not self.global_backed(
                digest, named if named and is_valid_digest(named) else None, recheck=True
            )
        ]
        if not confirmed:
            return
        with shielded_from_interrupts():
            flags = self.store.reconcile_globals([key for key, _ in confirmed], not self.dry_run)
            for (_, digest), flag in zip(confirmed, flags, strict=True):
                if flag & HASH_DELETED:
                    self.keys_deleted += 1
                if flag:
                    self.record(ClearedEntry(GLOBAL_DATA_MISSING, digest))


def reconcile(
    storage: Storage | str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    repository: str | None = None,
    dry_run: bool = False,
    batch_size: int = 1000,
    progress: Progress | None = None,
    on_cleared: Callable[[ClearedEntry], None] | None = None,
    cache: DescriptorCache | None = None,
) -> ReconcileResult:
    """Clear the cache entries that the registry's storage no longer backs.

    Call it after the registry's ``garbage-collect``, or after deleting from storage by hand.
    ``storage`` is an opened :class:`~blobcache.storage.Storage` (used as it is), a filesystem
    storage root, a registry ``storage`` section (``{"s3": {"bucket": ...}}``), or None for
    the configured one (``BLOBCACHE["STORAGE"]`` or ``BLOBCACHE["STORAGE_ROOT"]``).
    With ``repository``, only that repository's entries are examined (its membership set, then
    its repository hashes); global entries, which every repository shares, are left alone.
    Everything is validated before the first Redis command: the name (``NameInvalid``), the
    batch size (``ValueError``) and the storage (``StorageInvalid``, or its subclass
    ``StorageUnconfigured`` when nothing usable is configured). A dry run changes
    nothing and reports what the real run would clear. ``progress`` receives the number of
    entries examined as the walk advances; ``on_cleared`` receives each cleared entry as its
    batch completes (the result's ``entries`` then stay empty, keeping memory bounded).

    Ctrl-C or SIGTERM (with a handler that raises ``KeyboardInterrupt``) stops between batches
    and returns with ``interrupted`` set; every batch is applied whole or not at all. Raises
    ``CacheUnavailable`` when Redis cannot answer and ``StorageUnavailable`` when storage cannot
    be read.

    Every call, failed ones included, is recorded as one ``reconcile`` row of the audit log
    (counts per reason and ``skipped``), attributed to the current :mod:`blobcache.actor`.
    """
    scope = REPOSITORY_SCOPE if repository is not None else ""
    with audit.recording(RECONCILE, scope=scope, repository=repository, dry_run=dry_run) as entry:
        name = None if repository is None else validate_repository_name(repository)
        check_batch_size(batch_size)
        opened = open_storage(storage)
        try:
            cache = cache if cache is not None else get_descriptor_cache()
            return _run(opened, entry, name, cache, dry_run, batch_size, progress, on_cleared)
        finally:
            if opened is not storage:
                opened.close()


def _run(
    storage: Storage,
    entry: audit.PendingEntry,
    name: str | None,
    cache: DescriptorCache,
    dry_run: bool,
    batch_size: int,
    progress: Progress | None,
    on_cleared: Callable[[ClearedEntry], None] | None,
) -> ReconcileResult:
    with storage.snapshot() as view:
        run = _Reconciliation(
            cache,
            storage,
            view,
            dry_run=dry_run,
            batch_size=batch_size,
            progress=progress,
            on_cleared=on_cleared,
        )
        interrupted = False
        try:
            with translate_redis_errors(cache.client):
                if name is not None:
                    run.repository_members(name)
                    run.repository_orphans(name)
                else:
                    run.every_repository()
                    run.every_global()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            # Batches are applied whole: a run that Redis or storage stopped midway is
            # recorded with what it had cleared by then.
            result = run.result(name, interrupted)
            entry.set_result(result)
            entry.counts = {**run.counts, "skipped": run.skipped}
        return result
