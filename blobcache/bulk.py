"""Bulk operations over the registry's cache: whole-scope clears, batch clears and statistics.

Shared by the management commands, the REST API, the console and the notifications receiver.
Each operation is a walker: it decides which keys go in which batch, and the engine
(:mod:`blobcache.engine`) walks Redis with cursors (SCAN, SSCAN) in bounded chunks and sends each
batch through the client's store, which removes a digest's membership and repository hash
together (one atomic script, or ordered steps on Cluster): an interrupted run leaves every entry
either fully cleared or untouched, and running it again finishes the job. A
``KeyboardInterrupt`` (Ctrl-C, or a SIGTERM handler that raises one) is held back while a batch
is in flight and honoured between batches, so the counts in the returned :class:`ClearResult`
are exact even for an interrupted run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from blobcache import keys, metrics, signals
from blobcache.cache import DescriptorCache
from blobcache.digest import validate_digest
from blobcache.engine import (
    GLOBAL,
    MEMBERSHIP,
    REPOSITORY,
    SWEEP_SCAN_COUNT,
    ClearResult,
    LayoutKeys,
    MemberPage,
    Progress,
    Run,
    SetRemovals,
    batches,
    check_batch_size,
    is_valid_digest,
    shielded_from_interrupts,
)
from blobcache.exceptions import DescriptorCorrupt
from blobcache.reference import validate_repository_name
from blobcache.store.base import HASHES, ORPHANS, PAIRS, DigestsOutcome, Group
from blobcache.store.errors import translate_redis_errors

__all__ = [
    "GLOBAL",
    "MEMBERSHIP",
    "MEMORY_SAMPLES",
    "REPOSITORY",
    "SWEEP_SCAN_COUNT",
    "CacheStats",
    "ClearResult",
    "EntriesResult",
    "LayoutKeys",
    "Progress",
    "cache_stats",
    "check_batch_size",
    "clear_all",
    "clear_digests",
    "clear_entries",
    "clear_repository_scope",
    "database_size",
    "is_valid_digest",
    "repository_size",
    "shielded_from_interrupts",
]

# --- one repository's scope ----------------------------------------------------------------------


def _clear_scope(run: Run, repository: str, *, sweep: bool) -> None:
    """Clear a repository's whole scope: its set with SSCAN, then (``sweep``) the hashes that
    have no membership.

    The walk comes first: deleting the bulk of the keys while a SCAN of the keyspace runs would
    make that SCAN slower (the server shrinks its tables under it), and the sweep that follows
    then only deletes the few hashes left.
    """
    membership = keys.membership_key(repository)
    kind = run.key_type(membership)
    if kind == "set":
        # The real run deletes the set with its last member.
        run.count_would_delete(deleted_keys=1)
        for page in run.members(repository):
            if page.digests or page.extra_members:
                run.clear_groups([page.group(repository)], PAIRS)
            run.advance(len(page.scanned))
    elif kind != "none":
        run.delete_corrupt(membership)
    if sweep:
        _sweep_orphan_hashes(run, repository)


def _sweep_orphan_hashes(run: Run, repository: str) -> None:
    """The repository's hashes left after the walk, found by SCAN MATCH over the keyspace.

    These are hashes whose membership is gone (a set evicted by ``allkeys-lru``, older
    registries' leftovers), which no walk of the set can find. A dry run, which removed nothing,
    counts only hashes whose digest is not a member.
    """
    prefix = keys.repository_key(repository, "")
    pattern = keys.repository_hashes_pattern(repository)
    for found in run.scan(pattern, max(run.batch_size, SWEEP_SCAN_COUNT)):
        digests: dict[str, None] = {}
        for key in found:
            text = keys.key_text(key)
            digest = text[len(prefix) :]
            # The pattern's ``*`` also matches longer suffixes: only a valid digest counts.
            if text.startswith(prefix) and is_valid_digest(digest):
                digests[digest] = None
        if digests:
            run.clear_groups([Group(repository, list(digests))], ORPHANS)


# --- the whole layout ----------------------------------------------------------------------------


def _clear_layout(run: Run) -> None:
    """One SCAN pass over the database, clearing every key of the layout it meets."""
    for found in run.scan(None, run.batch_size):
        global_keys: list[str] = []
        hashes: dict[str, dict[str, None]] = {}
        sets: list[str] = []
        for key in found:
            layout_key = run.layout.classify(key)
            if layout_key is None:
                continue
            if layout_key.shape == GLOBAL:
                global_keys.append(key)
            elif layout_key.shape == MEMBERSHIP:
                sets.append(layout_key.repository)
            else:
                hashes.setdefault(layout_key.repository, {})[layout_key.digest] = None
        _clear_globals_and_hashes(run, global_keys, hashes)
        _clear_sets(run, sets)
        run.advance(len(found))


def _clear_globals_and_hashes(
    run: Run, global_keys: list[str], hashes: dict[str, dict[str, None]]
) -> None:
    if global_keys:
        with shielded_from_interrupts():
            # Each global key is one entry; a dry run counts the ones still there.
            removed = run.store.unlink(global_keys, run.clear)
            run.tally.add(removed, removed)
    # A hash's membership goes with it; a dry run counts members at their set instead.
    run.clear_groups([Group(name, list(digests)) for name, digests in hashes.items()], HASHES)


def _clear_sets(run: Run, names: list[str]) -> None:
    """Empty the sets met by the walk, member by member with their hashes.

    The first SSCAN page of every set goes in one round trip; the sets that fit in it (most of
    them) are then cleared together, and only large sets are walked on their own.
    """
    if not names:
        return
    # A membership key of another type answers WRONGTYPE: a corrupt entry, deleted.
    pages = run.store.read_each(
        [("sscan", (keys.membership_key(name), 0, None, run.batch_size)) for name in names]
    )
    whole: list[Group] = []
    for name, page in zip(names, pages, strict=True):
        if isinstance(page, Exception):
            run.delete_corrupt(keys.membership_key(name))
            continue
        next_cursor, found = page
        cursor = int(next_cursor)
        if not found:
            continue  # emptied meanwhile, by the hashes of an earlier step
        if run.dry_run:
            # The real run deletes the set with its last member.
            run.count_would_delete(len(MemberPage.of(found).digests), deleted_keys=1)
            if cursor:
                for rest in run.members(name, cursor):
                    run.count_would_delete(len(rest.digests))
        elif cursor == 0 and len(found) <= run.batch_size:
            whole.append(MemberPage.of(found).group(name))
        else:
            for batch in batches(found, run.batch_size):
                run.clear_groups([MemberPage.of(batch).group(name)], PAIRS)
            if cursor:
                for rest in run.members(name, cursor):
                    if rest.digests or rest.extra_members:
                        run.clear_groups([rest.group(name)], PAIRS)
    run.clear_groups(whole, PAIRS)


# --- lists of digests ----------------------------------------------------------------------------


def _settle(run: Run, outcome: DigestsOutcome, entries: list[int]) -> None:
    """Add a batch of Clear calls to the counts and to each digest's ``entries``."""
    for index, count in enumerate(outcome.entries):
        entries[index] += count
    run.tally.add(sum(outcome.entries), outcome.keys_deleted)


def _clear_global_entries(run: Run, batch: Sequence[str], entries: list[int]) -> None:
    """One global Clear per digest (callers hold signals back)."""
    _settle(run, run.store.clear_digests_global(batch, run.clear), entries)


def _clear_repository_entries(
    run: Run, repository: str, batch: Sequence[str], entries: list[int]
) -> int:
    """One repository-scoped Clear per digest; returns the members removed."""
    outcome = run.store.clear_digests_in({repository: list(batch)}, run.clear)[repository]
    if isinstance(outcome, DescriptorCorrupt):
        raise outcome
    _settle(run, outcome, entries)
    return outcome.members_removed


def _clear_in_repositories(
    run: Run, groups: dict[str, list[str]]
) -> dict[str, list[int] | DescriptorCorrupt]:
    """The 3.1+ repository Clear of each group's digests, one round trip for all groups.

    Each repository's part stays atomic on its own, so a repository whose membership key has
    the wrong type fails alone: its value is the error and nothing of it changed, while the
    other repositories are cleared.
    """
    result: dict[str, list[int] | DescriptorCorrupt] = {}
    with shielded_from_interrupts():
        outcomes = run.store.clear_digests_in(groups, run.clear)
        for name, outcome in outcomes.items():
            if isinstance(outcome, DescriptorCorrupt):
                result[name] = outcome
                continue
            entries = [0] * len(groups[name])
            _settle(run, outcome, entries)
            result[name] = entries
    return result


def _clear_everywhere(
    run: Run, batch: Sequence[str], found_entries: list[int], removals: dict[str, SetRemovals]
) -> None:
    """Clear the batch's digests in every repository: one SCAN over the repository keys.

    Membership sets are met by their key and asked which of the batch they hold (SMISMEMBER);
    repository hashes of the batch are met by their own key, so a hash whose repository has no
    set left (evicted, or an older registry's leftovers) goes too. ``removals`` (dry run only)
    tracks, per repository hit, the members a real run would remove, to count a set the real
    run would empty once the walk settles them.
    """
    position = {digest: index for index, digest in enumerate(batch)}
    count = max(run.batch_size, SWEEP_SCAN_COUNT)
    for found in run.scan(keys.REPOSITORY_KEYS_PATTERN, count):
        sets: list[str] = []
        targets: dict[str, list[str]] = {}
        for key in found:
            layout_key = run.layout.classify(key)
            if layout_key is None:
                continue
            name = layout_key.repository
            if layout_key.shape == MEMBERSHIP:
                sets.append(name)
            elif layout_key.shape == REPOSITORY and layout_key.digest in position:
                if layout_key.digest not in targets.setdefault(name, []):
                    targets[name].append(layout_key.digest)
        member_hits = _members_of(run, sets, batch, removals)
        if run.dry_run:
            for held in member_hits.values():
                for digest in held:
                    found_entries[position[digest]] += 1
                run.count_would_delete(len(held))
            counting = HASHES
        else:
            for name, held in member_hits.items():
                merged = targets.setdefault(name, [])
                merged.extend(digest for digest in held if digest not in merged)
            counting = PAIRS
        groups = [Group(name, digests) for name, digests in targets.items()]
        for group, flags in zip(groups, run.clear_groups(groups, counting), strict=True):
            for digest, flag in zip(group.digests, flags, strict=True):
                found_entries[position[digest]] += flag


def _members_of(
    run: Run, sets: list[str], batch: Sequence[str], removals: dict[str, SetRemovals]
) -> dict[str, list[str]]:
    """Which digests of ``batch`` each set holds (one read per set, grouped per node)."""
    if not sets:
        return {}
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("smismember", (keys.membership_key(name), list(batch))) for name in sets
    ]
    if run.dry_run:
        calls += [("scard", (keys.membership_key(name),)) for name in sets]
    replies = run.store.read_each(calls)
    sizes = replies[len(sets) :] if run.dry_run else [None] * len(sets)
    hits: dict[str, list[str]] = {}
    for name, flags, size in zip(sets, replies[: len(sets)], sizes, strict=True):
        # A membership key of the wrong type answers WRONGTYPE: it holds no members.
        if isinstance(flags, Exception):
            continue
        held = [digest for digest, flag in zip(batch, flags, strict=True) if int(flag)]
        if not held:
            continue
        hits[name] = held
        if run.dry_run:
            if name not in removals:
                # Nothing is removed in a dry run: the size read with the first hit is the
                # set's size when the walk began.
                removals[name] = run.removals_from(keys.membership_key(name), int(size))
            removals[name].add(len(held))
    return hits


def clear_repository_scope(
    cache: DescriptorCache,
    repository: str,
    *,
    dry_run: bool = False,
    batch_size: int = 1000,
    progress: Progress | None = None,
    sweep: bool = True,
) -> ClearResult:
    """Clear a whole repository scope: its membership set and every repository hash.

    Global entries stay. The set is walked with SSCAN, so the writes grow with the repository,
    not with the database. Repository hashes without membership (a set evicted by
    ``allkeys-lru``, older registries' leftovers) cannot be found from the set: with ``sweep``
    one SCAN MATCH pass over the whole keyspace finds and removes them too. That pass costs the
    server about 0.7 s per million keys on Redis 7.0, whatever the repository's size, so it is
    the dominant cost of clearing a small repository in a large database.
    An unknown repository clears nothing. ``progress`` receives the number of members handled
    after each batch. Sends ``repository_cleared`` after a real clear that deleted anything.
    """
    name = validate_repository_name(repository)
    run = Run(cache, dry_run=dry_run, batch_size=batch_size, progress=progress)
    result = run.complete(lambda: _clear_scope(run, name, sweep=sweep))
    if not dry_run and result.keys_deleted:
        signals.repository_cleared.send(sender=type(cache), repository=name, cleared=result.cleared)
    return result


def clear_all(
    cache: DescriptorCache,
    *,
    dry_run: bool = False,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> ClearResult:
    """Delete every key of the registry's layout, and nothing else, in one SCAN pass.

    Only keys of the three shapes with a valid digest and repository name go: other apps' keys
    in the same database (Django's cache, sessions, ``blobs:other``, ``blobs::garbage``) stay.
    Never KEYS, FLUSHDB or FLUSHALL. Membership sets are emptied member by member together with
    the members' hashes, so an interrupted run leaves only whole entries behind. ``progress``
    receives the number of keys scanned.
    """
    run = Run(cache, dry_run=dry_run, batch_size=batch_size, progress=progress)
    return run.complete(lambda: _clear_layout(run))


def clear_digests(
    cache: DescriptorCache,
    digests: Iterable[str],
    *,
    repository: str | None = None,
    everywhere: bool = False,
    dry_run: bool = False,
    batch_size: int = 1000,
    progress: Progress | None = None,
    on_unknown: Callable[[str], None] | None = None,
) -> ClearResult:
    """Clear many digests, as one Clear call each would, in atomic batches.

    Global by default (3.x: HDEL of the descriptor fields); repository-scoped with
    ``repository`` (3.1+: membership, repository hash and global fields together); with
    ``everywhere``, the global entry and the digest's membership and hash in every repository.
    Every digest (and the name) is validated before anything is sent; duplicates count once.
    ``on_unknown`` is called with each digest that had no entry; ``progress`` with the number of
    digests done after each batch.
    """
    if everywhere and repository is not None:
        raise ValueError("a clear is either everywhere or in one repository, not both")
    name = None if repository is None else validate_repository_name(repository)
    unique = list(dict.fromkeys(validate_digest(digest) for digest in digests))
    run = Run(cache, dry_run=dry_run, batch_size=batch_size, progress=progress)

    def walk() -> None:
        members_before = 0
        members_removed = 0
        if name is not None and dry_run:
            members_before = repository_size(cache, name)
        removals: dict[str, SetRemovals] = {}
        try:
            for batch in batches(unique, batch_size):
                entries = [0] * len(batch)
                try:
                    if everywhere:
                        # A sweep over every repository key can be long: signals are honoured
                        # between its steps, each of which is counted whole.
                        with shielded_from_interrupts():
                            _clear_global_entries(run, batch, entries)
                        _clear_everywhere(run, batch, entries, removals)
                    with shielded_from_interrupts():
                        if name is not None:
                            members_removed += _clear_repository_entries(
                                run, name, batch, entries
                            )
                        elif not everywhere:
                            _clear_global_entries(run, batch, entries)
                        _report_unknown(run, batch, entries, on_unknown)
                    if not dry_run:
                        _count_clears(name, batch, entries)
                finally:
                    if not dry_run:
                        _announce(cache, batch, entries, name)
                run.advance(len(batch))
        finally:
            # The sets the finished batches would empty count, even when an interrupt ended
            # the walk early.
            for set_removals in removals.values():
                set_removals.settle()
        if members_before and members_removed == members_before:
            # The real run would have deleted the set with its last member.
            run.count_would_delete(deleted_keys=1)

    return run.complete(walk)


@dataclass
class EntriesResult:
    """What :func:`clear_entries` did, per requested entry (a repository and a digest)."""

    cleared: int = 0
    #: Entries that were not there: no membership of the digest in its repository.
    unknown: int = 0
    #: Entries of a repository whose membership key holds another type: left untouched.
    corrupt: int = 0
    #: ``stop`` was set and the batches after the one in flight did not run.
    stopped: bool = False


def clear_entries(
    cache: DescriptorCache,
    entries: Sequence[tuple[str, str]],
    *,
    batch_size: int = 500,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    on_corrupt: Callable[[str, Sequence[str], DescriptorCorrupt], None] | None = None,
) -> EntriesResult:
    """Repository-scoped clears of many ``(repository, digest)`` pairs, as one Clear call each.

    The registry 3.1+ semantics of :meth:`RepositoryScopedCache.clear`, ``batch_size`` pairs per
    round trip (one script call per repository of the batch; per-entry steps on Cluster), so a
    long list costs a few round trips instead of one per pair. A repository whose membership key
    has the wrong type is reported to ``on_corrupt`` and counted in ``corrupt``; the other
    repositories of its batch are still cleared. ``stop`` is looked at before each batch: once
    it is set, no further batch starts, so a caller that gave up waiting abandons at most the
    batch in flight. Pairs are validated first and must not repeat (duplicates count twice).
    ``progress`` receives the number of pairs done after each batch, before the
    ``descriptor_cleared`` signals of that batch are sent.
    """
    pairs = [
        (validate_repository_name(name), validate_digest(digest)) for name, digest in entries
    ]
    run = Run(cache, dry_run=False, batch_size=batch_size, progress=progress)
    result = EntriesResult()

    def walk() -> None:
        for batch in batches(pairs, batch_size):
            if stop is not None and stop.is_set():
                result.stopped = True
                return
            groups: dict[str, list[str]] = {}
            for name, digest in batch:
                groups.setdefault(name, []).append(digest)
            outcomes = _clear_in_repositories(run, groups)
            run.advance(len(batch))
            for name, outcome in outcomes.items():
                if isinstance(outcome, DescriptorCorrupt):
                    result.corrupt += len(groups[name])
                    metrics.count_operations(
                        metrics.CLEAR, metrics.REPOSITORY, metrics.CORRUPT, len(groups[name])
                    )
                    if on_corrupt is not None:
                        on_corrupt(name, groups[name], outcome)
                    continue
                cleared = sum(1 for count in outcome if count)
                result.cleared += cleared
                result.unknown += len(outcome) - cleared
                _count_clears(name, groups[name], outcome)
                _announce(cache, groups[name], outcome, name)

    run.complete(walk)
    return result


def _report_unknown(
    run: Run,
    batch: Sequence[str],
    entries: list[int],
    on_unknown: Callable[[str], None] | None,
) -> None:
    for digest, count in zip(batch, entries, strict=True):
        if not count:
            run.tally.unknown += 1
            if on_unknown is not None:
                on_unknown(digest)


def _count_clears(repository: str | None, batch: Sequence[str], entries: list[int]) -> None:
    """Each digest as one clear of the cache manager (``--everywhere`` as a global one)."""
    scope = metrics.GLOBAL if repository is None else metrics.REPOSITORY
    found = sum(1 for count in entries if count)
    metrics.count_operations(metrics.CLEAR, scope, metrics.OK, found)
    metrics.count_operations(metrics.CLEAR, scope, metrics.MISS, len(batch) - found)


def _announce(
    cache: DescriptorCache, batch: Sequence[str], entries: list[int], repository: str | None
) -> None:
    for digest, count in zip(batch, entries, strict=True):
        if count:
            signals.descriptor_cleared.send(
                sender=type(cache), digest=digest, repository=repository
            )


# --- statistics ----------------------------------------------------------------------------------

#: MEMORY USAGE's own default: nested values of a set or hash are estimated from this many.
MEMORY_SAMPLES = 5


@dataclass(frozen=True)
class CacheStats:
    """Counts of the layout's keys from one SCAN pass, and the memory those keys use."""

    descriptors: int
    repositories: int
    memberships: int
    repository_descriptors: int
    memory_bytes: int
    memory_samples: int = MEMORY_SAMPLES

    def as_dict(self) -> dict[str, int]:
        return {
            "descriptors": self.descriptors,
            "repositories": self.repositories,
            "memberships": self.memberships,
            "repository_descriptors": self.repository_descriptors,
            "memory_bytes": self.memory_bytes,
        }


def cache_stats(
    cache: DescriptorCache,
    *,
    batch_size: int = 1000,
    samples: int = MEMORY_SAMPLES,
    progress: Progress | None = None,
) -> CacheStats:
    """Global descriptors, repositories, memberships, repository hashes and their memory.

    ``memberships`` is the total of the sets' cardinalities; ``memory_bytes`` sums MEMORY USAGE
    of every layout key (with ``samples`` nested values sampled per key; 0 means all of them).
    ``progress`` receives the number of keys scanned.
    """
    run = Run(cache, dry_run=True, batch_size=batch_size, progress=progress)
    totals = {GLOBAL: 0, MEMBERSHIP: 0, REPOSITORY: 0}
    memberships = 0
    memory = 0
    with translate_redis_errors(cache.client):
        for found in run.scan(None, batch_size):
            calls: list[tuple[str, tuple[Any, ...]]] = []
            for key in found:
                layout_key = run.layout.classify(key)
                if layout_key is None:
                    continue
                totals[layout_key.shape] += 1
                calls.append(("memory_usage", (key, samples)))
                if layout_key.shape == MEMBERSHIP:
                    calls.append(("scard", (key,)))
            for (command, _), reply in zip(calls, run.store.read_each(calls), strict=True):
                # A key gone since the SCAN answers None; a wrong-typed set, WRONGTYPE.
                if not isinstance(reply, int):
                    continue
                if command == "scard":
                    memberships += reply
                else:
                    memory += reply
            run.advance(len(found))
    return CacheStats(
        descriptors=totals[GLOBAL],
        repositories=totals[MEMBERSHIP],
        memberships=memberships,
        repository_descriptors=totals[REPOSITORY],
        memory_bytes=memory,
        memory_samples=samples,
    )


def repository_size(cache: DescriptorCache, repository: str) -> int:
    """The number of members of a repository (SCARD), e.g. as a progress bar's total."""
    name = validate_repository_name(repository)
    with translate_redis_errors(cache.client):
        if keys.key_text(cache.client.type(keys.membership_key(name))) != "set":
            return 0
        return int(cache.client.scard(keys.membership_key(name)))


def database_size(cache: DescriptorCache) -> int:
    """The number of keys in the database (DBSIZE): a SCAN pass's length, for progress bars."""
    with translate_redis_errors(cache.client):
        return int(cache.client.dbsize())
