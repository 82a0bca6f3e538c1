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

Reconcile is three walkers over the bulk engine (:mod:`blobcache.engine`), which scans, pages
sets, counts and holds interrupts back: the repository memberships, the orphan repository hashes
and the global entries. Each batch goes through the client's store (:mod:`blobcache.store`): one
script on a single server, ordered per-slot steps on Redis Cluster, where a set and its hashes
live in different slots.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from blobcache import audit, keys, metrics, signals
from blobcache.cache import DescriptorCache, RepositoryScopedCache, get_descriptor_cache
from blobcache.engine import (
    GLOBAL,
    MEMBERSHIP,
    REPOSITORY,
    SWEEP_SCAN_COUNT,
    LayoutKey,
    Progress,
    Run,
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


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A repository entry the walk found stale, waiting for its batch's re-check."""

    repository: str
    digest: str
    reason: str


class _Reconciliation:
    """What one reconcile run adds to the engine's run: the storage it asks, and the cleared
    entries per reason."""

    def __init__(
        self,
        run: Run,
        storage: Storage,
        view: StorageView,
        on_cleared: Callable[[ClearedEntry], None] | None,
    ) -> None:
        self.run = run
        self.storage = storage
        # The walk asks the view (listings, for an object store); a batch's re-check asks
        # storage itself, just before deleting.
        self.view = view
        self.requests_before = storage.requests
        self.on_cleared = on_cleared
        self.collected: list[ClearedEntry] = []
        self.counts = dict.fromkeys(REASONS, 0)
        self.skipped = 0

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

    # --- what was cleared ---

    def record(self, entry: ClearedEntry) -> None:
        self.counts[entry.reason] += 1
        self.run.tally.add(1, 0)
        if self.on_cleared is not None:
            self.on_cleared(entry)
        else:
            self.collected.append(entry)
        if not self.run.dry_run:
            metrics.count_reconcile_cleared(entry.reason)
            sender = DescriptorCache if entry.repository is None else RepositoryScopedCache
            signals.descriptor_cleared.send(
                sender=sender, digest=entry.digest, repository=entry.repository
            )

    def result(self, repository: str | None, interrupted: bool) -> ReconcileResult:
        return ReconcileResult(
            counts=dict(self.counts),
            keys_deleted=self.run.tally.keys_deleted,
            dry_run=self.run.dry_run,
            repository=repository,
            interrupted=interrupted,
            skipped=self.skipped,
            storage_requests=self.storage.requests - self.requests_before,
            entries=tuple(self.collected),
        )


# --- repository entries --------------------------------------------------------------------------


def _walk_members(rec: _Reconciliation, repository: str) -> None:
    """Walk one membership set; stale members go in batches with their hashes."""
    run = rec.run
    membership = keys.membership_key(repository)
    kind = run.key_type(membership)
    if kind == "none":
        return
    if kind != "set":
        rec.skipped += 1
        return
    removals = run.removals_from(membership)
    pending: list[_Candidate] = []
    for page in run.members(repository):
        # The registries 2.3 to 2.8.2 accepted upper-case hex: no storage path to check.
        rec.skipped += len(page.extra_members)
        for digest in page.digests:
            reason = rec.repository_reason(repository, digest)
            if reason is not None:
                pending.append(_Candidate(repository, digest, reason))
            if len(pending) >= run.batch_size:
                removals.add(_clear_repository_batch(rec, MEMBERS, pending))
                pending = []
        run.advance(len(page.scanned))
    removals.add(_clear_repository_batch(rec, MEMBERS, pending))
    removals.settle()


def _sweep_orphans(rec: _Reconciliation, repository: str) -> None:
    """The repository's hashes without membership (older registries leave them), one sweep."""
    run = rec.run
    pattern = keys.repository_hashes_pattern(repository)
    pending: list[_Candidate] = []
    for chunk in run.scan(pattern, max(run.batch_size, SWEEP_SCAN_COUNT)):
        hashes: list[LayoutKey] = []
        for key in chunk:
            found = run.layout.classify(key)
            # The pattern's ``*`` also matches names that merely start with this one.
            if found and found.shape == REPOSITORY and found.repository == repository:
                hashes.append(found)
        _queue_orphans(rec, hashes, pending)
        if len(pending) >= run.batch_size:
            _clear_repository_batch(rec, ORPHANS, pending)
            pending = []
    _clear_repository_batch(rec, ORPHANS, pending)


def _queue_orphans(
    rec: _Reconciliation, hashes: list[LayoutKey], pending: list[_Candidate]
) -> None:
    """Queue the hashes without membership that storage does not back.

    Membership is asked first (one SMISMEMBER per repository): a member's hash is its set
    walk's business, and most hashes have their member, so most storage checks are saved.
    The batch asks again, atomically, before deleting anything.
    """
    if not hashes:
        return
    by_repository: dict[str, list[str]] = {}
    for found in hashes:
        by_repository.setdefault(found.repository, []).append(found.digest)
    replies = rec.run.store.read_each(
        [
            ("smismember", (keys.membership_key(name), digests))
            for name, digests in by_repository.items()
        ]
    )
    for (name, digests), flags in zip(by_repository.items(), replies, strict=True):
        # A membership key of the wrong type answers WRONGTYPE: it holds no members.
        held = [False] * len(digests) if isinstance(flags, Exception) else flags
        for digest, member in zip(digests, held, strict=True):
            if not int(member) and rec.repository_reason(name, digest) is not None:
                pending.append(_Candidate(name, digest, ORPHAN_REPOSITORY_HASH))


def _walk_repositories(rec: _Reconciliation) -> None:
    """One SCAN over the repository keys: each set is walked when met, hashes without
    membership are checked as orphans."""
    run = rec.run
    pending: list[_Candidate] = []
    for chunk in run.scan(keys.REPOSITORY_KEYS_PATTERN, run.batch_size):
        sets: list[str] = []
        hashes: list[LayoutKey] = []
        for key in chunk:
            found = run.layout.classify(key)
            if found is None:
                continue
            if found.shape == MEMBERSHIP:
                sets.append(found.repository)
            elif found.shape == REPOSITORY:
                hashes.append(found)
        _queue_orphans(rec, hashes, pending)
        if len(pending) >= run.batch_size:
            _clear_repository_batch(rec, ORPHANS, pending)
            pending = []
        run.advance(len(hashes))
        for name in sets:
            _walk_members(rec, name)
    _clear_repository_batch(rec, ORPHANS, pending)


def _clear_repository_batch(rec: _Reconciliation, kind: str, candidates: list[_Candidate]) -> int:
    """Re-check storage, then clear the batch atomically; returns the members removed."""
    confirmed: list[_Candidate] = []
    for candidate in candidates:
        now = rec.repository_reason(candidate.repository, candidate.digest, recheck=True)
        if now is not None:
            reason = candidate.reason if kind == ORPHANS else now
            confirmed.append(_Candidate(candidate.repository, candidate.digest, reason))
    if not confirmed:
        return 0
    run = rec.run
    removed = 0
    with shielded_from_interrupts():
        outcome = run.store.reconcile_repository(
            kind, [(entry.repository, entry.digest) for entry in confirmed], run.clear
        )
        run.tally.add(0, outcome.sets_deleted)
        for entry, flag in zip(confirmed, outcome.flags, strict=True):
            if flag & PRESENT:
                removed += 1
            if flag & HASH_DELETED:
                run.tally.add(0, 1)
            if flag:
                rec.record(ClearedEntry(entry.reason, entry.digest, entry.repository))
    return removed


# --- global entries ------------------------------------------------------------------------------


def _walk_globals(rec: _Reconciliation) -> None:
    run = rec.run
    pending: list[str] = []
    for chunk in run.scan(keys.global_key("*"), run.batch_size):
        for key in chunk:
            found = run.layout.classify(key)
            if found and found.shape == GLOBAL and not rec.global_backed(found.digest):
                pending.append(found.digest)
        if len(pending) >= run.batch_size:
            _clear_global_batch(rec, pending)
            pending = []
        run.advance(len(chunk))
    _clear_global_batch(rec, pending)


def _clear_global_batch(rec: _Reconciliation, candidates: list[str]) -> None:
    """Re-check storage (an alias entry is backed by its canonical digest's data too), then
    clear the batch."""
    if not candidates:
        return
    run = rec.run
    global_keys = [keys.global_key(digest) for digest in candidates]
    # A key of another type answers WRONGTYPE here; the batch leaves it alone anyway.
    named = run.store.read_each([("hget", (key, keys.FIELD_DIGEST)) for key in global_keys])
    confirmed: dict[str, str] = {}
    for key, digest, canonical in zip(global_keys, candidates, named, strict=True):
        canonical_text = (
            None
            if isinstance(canonical, Exception) or canonical is None
            else keys.key_text(canonical)
        )
        if canonical_text is not None and not is_valid_digest(canonical_text):
            canonical_text = None
        if not rec.global_backed(digest, canonical_text, recheck=True):
            confirmed[key] = digest
    if not confirmed:
        return
    with shielded_from_interrupts():
        flags = run.store.reconcile_globals(list(confirmed), run.clear)
        for digest, flag in zip(confirmed.values(), flags, strict=True):
            if flag & HASH_DELETED:
                run.tally.add(0, 1)
            if flag:
                rec.record(ClearedEntry(GLOBAL_DATA_MISSING, digest))


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
            run = Run(cache, dry_run=dry_run, batch_size=batch_size, progress=progress)
            return _run(opened, entry, name, run, on_cleared)
        finally:
            if opened is not storage:
                opened.close()


def _run(
    storage: Storage,
    audit_entry: audit.PendingEntry,
    name: str | None,
    run: Run,
    on_cleared: Callable[[ClearedEntry], None] | None,
) -> ReconcileResult:
    with storage.snapshot() as view:
        rec = _Reconciliation(run, storage, view, on_cleared)

        def walk() -> None:
            if name is not None:
                _walk_members(rec, name)
                _sweep_orphans(rec, name)
            else:
                _walk_repositories(rec)
                _walk_globals(rec)

        interrupted = False
        try:
            interrupted = run.walk(walk)
        finally:
            # Batches are applied whole: a run that Redis or storage stopped midway is
            # recorded with what it had cleared by then.
            result = rec.result(name, interrupted)
            audit_entry.set_result(result)
            audit_entry.counts = {**rec.counts, "skipped": rec.skipped}
        return result
