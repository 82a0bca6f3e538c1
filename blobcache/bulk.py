"""Bulk operations over the registry's cache: whole-scope clears, batch clears and statistics.

Shared by the management commands and the REST API. Everything here walks Redis with cursors
(SCAN, SSCAN) and works in batches, so memory stays bounded whatever the size of the database.
Each batch of writes is one atomic script that removes a digest's membership and repository hash
together: an interrupted run leaves every entry either fully cleared or untouched, and running it
again finishes the job. A ``KeyboardInterrupt`` (Ctrl-C, or a SIGTERM handler that raises one) is
held back while a batch is in flight and honoured between batches, so the counts in the returned
:class:`ClearResult` are exact even for an interrupted run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors

from blobcache import keys, metrics, scripts, signals
from blobcache.cache import DescriptorCache, translate_redis_errors
from blobcache.digest import validate_digest
from blobcache.exceptions import DescriptorCorrupt, DigestInvalid, NameInvalid
from blobcache.reference import validate_repository_name

Progress = Callable[[int], None]
#: One repository's part of a script call: its name, digests, and set members that are not
#: valid digests (removed with the set, never counted).
Group = tuple[str, Sequence[str], Sequence[Any]]

#: SCAN work per call when sweeping the keyspace for one repository's orphaned hashes. Larger
#: than a write batch because most keys scanned are not returned: fewer round trips, and each
#: call still takes the server about a millisecond.
SWEEP_SCAN_COUNT = 10_000

_CLEAR = "clear"
_COUNT = "count"
_PAIRS = "pairs"
_ORPHANS = "orphans"
_HASHES = "hashes"


@dataclass(frozen=True)
class ClearResult:
    """What a clear removed, or for a dry run what it would remove.

    ``cleared`` counts descriptor entries: a global entry is one, and each repository's entry for
    a digest (its membership and/or its repository hash) is one. ``keys_deleted`` counts Redis
    keys that existed before and not after. ``unknown`` counts requested digests that had no
    entry at all (only the digest-list clears set it).
    """

    cleared: int
    keys_deleted: int
    dry_run: bool
    interrupted: bool = False
    unknown: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The summary the commands print: ``interrupted`` appears only when it is true."""
        summary: dict[str, Any] = {
            "cleared": self.cleared,
            "keys_deleted": self.keys_deleted,
            "dry_run": self.dry_run,
        }
        if self.interrupted:
            summary["interrupted"] = True
        return summary


class _Tally:
    def __init__(self) -> None:
        self.cleared = 0
        self.keys_deleted = 0
        self.unknown = 0

    def add(self, cleared: int, keys_deleted: int) -> None:
        self.cleared += int(cleared)
        self.keys_deleted += int(keys_deleted)

    def result(self, dry_run: bool, interrupted: bool) -> ClearResult:
        return ClearResult(
            self.cleared, self.keys_deleted, dry_run, interrupted, unknown=self.unknown
        )


# --- interrupt handling --------------------------------------------------------------------------

_SHIELDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def shielded_from_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while one batch is sent and its reply read.

    Without this, Ctrl-C between sending a script and reading its reply would lose the batch's
    counts (the server still runs the script to the end). The signal is re-raised as soon as the
    batch is done, to whatever handler the caller had installed. Signal handlers can only be
    changed from the main thread; elsewhere (a WSGI worker thread) signals never arrive anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def remember(signum: int, frame: Any) -> None:
        pending.append(signum)

    previous = {signum: signal.signal(signum, remember) for signum in _SHIELDED_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            signal.raise_signal(pending[0])


# --- key names -----------------------------------------------------------------------------------


def is_valid_digest(text: str) -> bool:
    try:
        validate_digest(text)
    except DigestInvalid:
        return False
    return True


def _scan_chunks(client: Any, pattern: str | None, count: int, size: int) -> Iterator[list[Any]]:
    """The keyspace (every primary of a Cluster) in chunks of ``size`` keys."""
    chunk: list[Any] = []
    for key in client.scan_iter(match=pattern, count=count):
        chunk.append(key)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _each(client: Any, cluster: bool, calls: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    """Single-key read commands in one round trip (a pipeline), or one by one on a Cluster;
    each reply, or the ResponseError it raised (WRONGTYPE on a corrupt entry)."""
    if not cluster:
        pipe = client.pipeline(transaction=False)
        for name, args in calls:
            getattr(pipe, name)(*args)
        return list(pipe.execute(raise_on_error=False))
    replies: list[Any] = []
    for name, args in calls:
        try:
            replies.append(getattr(client, name)(*args))
        except redis_errors.ResponseError as error:
            replies.append(error)
    return replies


def _counted(clear: bool, kind: str, member: bool, existed: bool) -> tuple[int, int]:
    """(entry, key) counted for one digest, as clear_repository_batch.lua counts them."""
    if clear or kind == _PAIRS:
        return int(member or existed), int(existed)
    if kind == _HASHES:
        return int(existed and not member), int(existed)
    return int(existed and not member), int(existed and not member)


def _split_members(members: Sequence[Any]) -> tuple[list[str], list[Any]]:
    """Members that are valid digests (as text), and the others (raw, to SREM as they are)."""
    valid: list[str] = []
    invalid: list[Any] = []
    for member in members:
        text = keys.key_text(member)
        if is_valid_digest(text):
            valid.append(text)
        else:
            invalid.append(member)
    return valid, invalid


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")


# --- the layout's key shapes ---------------------------------------------------------------------

_GLOBAL_PREFIX = keys.global_key("")
_REPOSITORY_PREFIX = keys.REPOSITORY_PREFIX
_MEMBERSHIP_SUFFIX = keys.MEMBERSHIP_SUFFIX
# What separates a membership key from the digest in a repository hash key ("::").
_DIGEST_SEPARATOR = keys.repository_key("r", "")[len(keys.membership_key("r")) :]

GLOBAL = "global"
MEMBERSHIP = "membership"
REPOSITORY = "repository"

# Names met during a walk are validated once; the memo is dropped when it grows this large.
_NAME_MEMO_LIMIT = 100_000


class LayoutKeys:
    """Recognises the registry's three key shapes with a valid digest and repository name.

    A valid name never contains ``::blobs`` (a name has no ``::`` outside an IPv6 literal, whose
    hex digits exclude ``l``, ``o`` and ``s``), so splitting at its first occurrence is exact.
    """

    def __init__(self) -> None:
        self._names: dict[str, bool] = {}

    def is_name(self, name: str) -> bool:
        known = self._names.get(name)
        if known is None:
            if len(self._names) >= _NAME_MEMO_LIMIT:
                self._names.clear()
            try:
                validate_repository_name(name)
                known = True
            except NameInvalid:
                known = False
            self._names[name] = known
        return known

    def classify(self, key: Any) -> tuple[str, str, str] | None:
        """``(shape, repository, digest)`` of a layout key (empty strings where absent), or None."""
        text = keys.key_text(key)
        if text.startswith(_GLOBAL_PREFIX):
            digest = text[len(_GLOBAL_PREFIX) :]
            return (GLOBAL, "", digest) if is_valid_digest(digest) else None
        if not text.startswith(_REPOSITORY_PREFIX):
            return None
        rest = text[len(_REPOSITORY_PREFIX) :]
        cut = rest.find(_MEMBERSHIP_SUFFIX)
        if cut < 1:
            return None
        name = rest[:cut]
        tail = rest[cut + len(_MEMBERSHIP_SUFFIX) :]
        if not tail:
            return (MEMBERSHIP, name, "") if self.is_name(name) else None
        if not tail.startswith(_DIGEST_SEPARATOR):
            return None
        digest = tail[len(_DIGEST_SEPARATOR) :]
        if is_valid_digest(digest) and self.is_name(name):
            return (REPOSITORY, name, digest)
        return None


# --- one run -------------------------------------------------------------------------------------


class _Run:
    """The state of one bulk operation: client, scripts, mode, counts."""

    def __init__(
        self,
        cache: DescriptorCache,
        *,
        dry_run: bool,
        batch_size: int,
        progress: Progress | None,
    ) -> None:
        check_batch_size(batch_size)
        self.client = cache.client
        self.dry_run = dry_run
        self.mode = _COUNT if dry_run else _CLEAR
        self.batch_size = batch_size
        self.progress = progress
        self.tally = _Tally()
        self.layout = LayoutKeys()
        # On Cluster a set and its hashes live in different slots: no script can span them, so
        # batches run as per-entry steps, membership first (a reader checks membership before
        # the hashes, so it never meets a member without its hash). Atomic per entry only.
        self.cluster = bool(getattr(cache, "cluster", False))
        self.clear_repository_batch = self.client.register_script(
            scripts.load("clear_repository_batch")
        )
        self.clear_digests_batch = self.client.register_script(scripts.load("clear_digests_batch"))

    def complete(self, walk: Callable[[], None]) -> ClearResult:
        """Run ``walk``; an interrupt (held back while a batch is in flight) ends it early with
        the exact counts of the batches done."""
        interrupted = False
        try:
            with translate_redis_errors(self.client):
                walk()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            # What the finished batches removed is gone, even when a later batch failed.
            if not self.dry_run:
                metrics.count_cleared(self.tally.cleared)
        return self.tally.result(self.dry_run, interrupted)

    def advance(self, done: int) -> None:
        if self.progress is not None and done:
            self.progress(done)

    def key_type(self, key: str) -> str:
        return keys.key_text(self.client.type(key))

    def scan(self, pattern: str | None, count: int) -> Iterator[Sequence[Any]]:
        return _scan_chunks(self.client, pattern, count, self.batch_size)

    def each(self, calls: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        return _each(self.client, self.cluster, calls)

    def queue_groups(self, target: Any, groups: Sequence[Group], kind: str) -> list[list[Group]]:
        """Queue ``groups`` on ``target`` (a pipeline) as script calls of about one batch each.

        One call may hold many repositories: a whole-database walk meets hashes of hundreds of
        repositories per SCAN step, and a script call per repository would cost more than the
        deletions themselves.
        """
        calls: list[list[Group]] = []
        size = 0
        for group in groups:
            weight = len(group[1]) + len(group[2])
            if not calls or size + weight > self.batch_size:
                calls.append([])
                size = 0
            calls[-1].append(group)
            size += weight
        for call in calls:
            batch_keys: list[str] = []
            counts: list[int] = []
            values: list[Any] = []
            for name, digests, extras in call:
                batch_keys.append(keys.membership_key(name))
                batch_keys += [keys.repository_key(name, digest) for digest in digests]
                counts += [len(digests), len(extras)]
                values += [*digests, *extras]
            self.clear_repository_batch(
                keys=batch_keys, args=[self.mode, kind, len(call), *counts, *values], client=target
            )
        return calls

    def settle_groups(self, calls: list[list[Group]], replies: Sequence[Any]) -> list[list[int]]:
        """Add the calls' counts; return each group's per-digest flags."""
        flags: list[list[int]] = []
        for call, reply in zip(calls, replies, strict=True):
            self.tally.add(reply[0], reply[1])
            offset = 2
            for _, digests, _ in call:
                flags.append([int(flag) for flag in reply[offset : offset + len(digests)]])
                offset += len(digests)
        return flags

    def run_groups(self, groups: Sequence[Group], kind: str) -> list[list[int]]:
        """Run ``groups`` atomically per call, all calls in one round trip, counted whole."""
        if not groups:
            return []
        if self.cluster:
            return self.groups_in_steps(groups, kind)
        pipe = self.client.pipeline(transaction=False)
        calls = self.queue_groups(pipe, groups, kind)
        # Counting inside the shield: a signal held back is re-raised as the block ends.
        with shielded_from_interrupts():
            return self.settle_groups(calls, pipe.execute())

    def groups_in_steps(self, groups: Sequence[Group], kind: str) -> list[list[int]]:
        """The batch script's semantics for Cluster, one entry at a time, membership first."""
        clear = not self.dry_run
        result: list[list[int]] = []
        with shielded_from_interrupts():
            for name, digests, extras in groups:
                membership = keys.membership_key(name)
                is_set = self.key_type(membership) == "set"
                flags: list[int] = []
                for digest in digests:
                    member = False
                    if is_set and clear:
                        member = bool(self.client.srem(membership, digest))
                    elif is_set:
                        member = bool(self.client.sismember(membership, digest))
                    hash_key = keys.repository_key(name, digest)
                    if clear:
                        existed = bool(self.client.delete(hash_key))
                    else:
                        existed = bool(self.client.exists(hash_key))
                    flag, deleted = _counted(clear, kind, member, existed)
                    self.tally.add(flag, deleted)
                    flags.append(flag)
                if clear and is_set:
                    for extra in extras:
                        self.client.srem(membership, extra)
                    self.tally.add(0, int(not self.client.exists(membership)))
                result.append(flags)
        return result

    def repository_batch(
        self,
        repository: str,
        digests: Sequence[str],
        kind: str,
        extra_members: Sequence[Any] = (),
    ) -> None:
        """Run one atomic batch over ``digests`` of ``repository`` and add its counts."""
        if digests or extra_members:
            self.run_groups([(repository, digests, extra_members)], kind)

    def delete_corrupt(self, key: str) -> None:
        """A layout key of the wrong type is a corrupt entry: it goes, as the global clear does."""
        if self.dry_run:
            self.tally.add(0, 1)
            return
        with shielded_from_interrupts():
            self.tally.add(0, self.client.delete(key))

    def members(
        self, repository: str, cursor: int = 0
    ) -> Iterator[tuple[Sequence[Any], list[str], list[Any]]]:
        """A set's members by SSCAN, in batches split into valid digests and anything else."""
        membership = keys.membership_key(repository)
        while True:
            cursor, found = self.client.sscan(membership, cursor, count=self.batch_size)
            for batch in _batches(found, self.batch_size):
                yield (batch, *_split_members(batch))
            if int(cursor) == 0:
                return

    def repository_scope(self, repository: str, *, sweep: bool) -> None:
        """Clear a repository's whole scope: its set with SSCAN, then (``sweep``) the hashes
        that have no membership.

        The walk comes first: deleting the bulk of the keys while a SCAN of the keyspace runs
        would make that SCAN slower (the server shrinks its tables under it), and the sweep
        that follows then only deletes the few hashes left.
        """
        membership = keys.membership_key(repository)
        kind = self.key_type(membership)
        if kind == "set":
            if self.dry_run:
                # The real run deletes the set with its last member; count it once here.
                self.tally.add(0, 1)
            for batch, valid, invalid in self.members(repository):
                self.repository_batch(repository, valid, _PAIRS, invalid)
                self.advance(len(batch))
        elif kind != "none":
            self.delete_corrupt(membership)
        if sweep:
            self.repository_hashes(repository)

    def repository_hashes(self, repository: str) -> None:
        """The repository's hashes left after the walk, found by SCAN MATCH over the keyspace.

        These are hashes whose membership is gone (a set evicted by ``allkeys-lru``, older
        registries' leftovers), which no walk of the set can find. A dry run, which removed
        nothing, counts only hashes whose digest is not a member.
        """
        prefix = keys.repository_key(repository, "")
        pattern = keys.repository_hashes_pattern(repository)
        for found in self.scan(pattern, max(self.batch_size, SWEEP_SCAN_COUNT)):
            digests: dict[str, None] = {}
            for key in found:
                text = keys.key_text(key)
                digest = text[len(prefix) :]
                # The pattern's ``*`` also matches longer suffixes: only a valid digest counts.
                if text.startswith(prefix) and is_valid_digest(digest):
                    digests[digest] = None
            self.repository_batch(repository, list(digests), _ORPHANS)

    # --- the whole layout ---

    def everything(self) -> None:
        """One SCAN pass over the database, clearing every key of the layout it meets."""
        for found in self.scan(None, self.batch_size):
            global_keys: list[Any] = []
            hashes: dict[str, dict[str, None]] = {}
            sets: list[str] = []
            for key in found:
                shape = self.layout.classify(key)
                if shape is None:
                    continue
                kind, name, digest = shape
                if kind == GLOBAL:
                    global_keys.append(key)
                elif kind == MEMBERSHIP:
                    sets.append(name)
                else:
                    hashes.setdefault(name, {})[digest] = None
            self.everything_batch(global_keys, hashes)
            self.everything_sets(sets)
            self.advance(len(found))

    def everything_batch(self, global_keys: list[Any], hashes: dict[str, dict[str, None]]) -> None:
        if not global_keys and not hashes:
            return
        # A hash's membership goes with it; a dry run counts members at their set instead.
        groups: list[Group] = [(name, list(digests), ()) for name, digests in hashes.items()]
        if self.cluster:
            self.everything_batch_in_steps(global_keys, groups)
            return
        pipe = self.client.pipeline(transaction=False)
        if global_keys:
            # Each global key is one entry; a dry run counts the ones still there.
            if self.dry_run:
                pipe.exists(*global_keys)
            else:
                pipe.unlink(*global_keys)
        calls = self.queue_groups(pipe, groups, _HASHES)
        with shielded_from_interrupts():
            replies = pipe.execute()
            if global_keys:
                removed = int(replies.pop(0))
                self.tally.add(removed, removed)
            self.settle_groups(calls, replies)

    def everything_batch_in_steps(self, global_keys: list[Any], groups: list[Group]) -> None:
        if global_keys:
            with shielded_from_interrupts():
                # redis-py splits a multi-key EXISTS or UNLINK by slot and adds the replies up.
                if self.dry_run:
                    removed = int(self.client.exists(*global_keys))
                else:
                    removed = int(self.client.unlink(*global_keys))
                self.tally.add(removed, removed)
        self.run_groups(groups, _HASHES)

    def everything_sets(self, names: list[str]) -> None:
        """Empty the sets met by the walk, member by member with their hashes.

        The first SSCAN page of every set goes in one round trip; the sets that fit in it (most
        of them) are then cleared together, and only large sets are walked on their own.
        """
        if not names:
            return
        # A membership key of another type answers WRONGTYPE: a corrupt entry, deleted.
        pages = self.each(
            [("sscan", (keys.membership_key(name), 0, None, self.batch_size)) for name in names]
        )
        whole: list[Group] = []
        for name, page in zip(names, pages, strict=True):
            if isinstance(page, Exception):
                self.delete_corrupt(keys.membership_key(name))
                continue
            cursor, found = page
            if not found:
                continue  # emptied meanwhile, by the hashes of an earlier step
            if self.dry_run:
                # The real run deletes the set with its last member; count it once here.
                self.tally.add(0, 1)
                self.tally.add(len(_split_members(found)[0]), 0)
                if int(cursor):
                    for _, valid, _ in self.members(name, int(cursor)):
                        self.tally.add(len(valid), 0)
            elif int(cursor) == 0 and len(found) <= self.batch_size:
                whole.append((name, *_split_members(found)))
            else:
                for batch in _batches(found, self.batch_size):
                    self.run_groups([(name, *_split_members(batch))], _PAIRS)
                if int(cursor):
                    for _, valid, invalid in self.members(name, int(cursor)):
                        self.repository_batch(name, valid, _PAIRS, invalid)
        self.run_groups(whole, _PAIRS)

    # --- lists of digests ---

    def digests_global(self, batch: Sequence[str], entries: list[int]) -> None:
        """Add each digest's cleared global entries to ``entries`` (callers hold signals back)."""
        if self.cluster:
            # One key per call: a script may only touch keys of one slot.
            for index, digest in enumerate(batch):
                reply = self.clear_digests_batch(
                    keys=[keys.global_key(digest)], args=[self.mode, GLOBAL]
                )
                self.settle_digests(reply, entries, index)
            return
        reply = self.clear_digests_batch(
            keys=[keys.global_key(digest) for digest in batch], args=[self.mode, GLOBAL]
        )
        self.settle_digests(reply, entries)

    def digests_repository(self, repository: str, batch: Sequence[str], entries: list[int]) -> int:
        """Like :meth:`digests_global`, in one repository; returns the members removed."""
        if self.cluster:
            return self.digests_repository_in_steps(repository, batch, entries)
        reply = self.queue_digests_repository(self.client, repository, batch)
        self.settle_digests(reply, entries)
        return int(reply[1])

    def queue_digests_repository(self, target: Any, repository: str, batch: Sequence[str]) -> Any:
        """Call (or queue, when ``target`` is a pipeline) the repository batch script."""
        batch_keys = [keys.membership_key(repository)]
        for digest in batch:
            batch_keys += [keys.repository_key(repository, digest), keys.global_key(digest)]
        return self.clear_digests_batch(
            keys=batch_keys, args=[self.mode, REPOSITORY, *batch], client=target
        )

    def digests_repository_in_steps(
        self, repository: str, batch: Sequence[str], entries: list[int]
    ) -> int:
        """The 3.1+ repository Clear per digest for Cluster: membership, hash, global fields."""
        outcome = self.digests_repositories_in_steps({repository: list(batch)})[repository]
        if isinstance(outcome, DescriptorCorrupt):
            raise outcome
        for index, count in enumerate(outcome):
            entries[index] += count
        return sum(1 for count in outcome if count)

    def pipelined(self, calls: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """Commands in one pipeline (on a Cluster, redis-py sends one per node); each reply,
        or the ResponseError it raised."""
        if not calls:
            return []
        pipe = self.client.pipeline(transaction=False)
        for name, args in calls:
            getattr(pipe, name)(*args)
        replies = list(pipe.execute(raise_on_error=False))
        for reply in replies:
            if isinstance(reply, Exception) and not isinstance(reply, redis_errors.NoScriptError):
                # WRONGTYPE (a key replaced meanwhile) or an outage: the caller's translation.
                raise reply
        return replies

    def digests_repositories_in_steps(
        self, groups: dict[str, list[str]]
    ) -> dict[str, list[int] | DescriptorCorrupt]:
        """The batch script's repository Clear for Cluster, where no script spans the keys.

        Steps in the reader-safe order, each one pipeline for every group (redis-py sends it as
        one round trip per node): the sets' types, then the memberships (SREM says which digests
        were members), then those digests' repository hashes and global fields, then the sets
        again, to count the ones emptied. Each entry is cleared whole before the call returns;
        a reader in between sees a miss, never a member without its hash.
        """
        outcomes: dict[str, list[int] | DescriptorCorrupt] = {}
        names = list(groups)
        kinds = self.pipelined([("type", (keys.membership_key(name),)) for name in names])
        live: list[str] = []
        for name, kind in zip(names, kinds, strict=True):
            text = keys.key_text(kind)
            if text == "set":
                live.append(name)
            elif text == "none":
                outcomes[name] = [0] * len(groups[name])
            else:
                outcomes[name] = DescriptorCorrupt(
                    f"a cache key holds a value of the wrong type: {keys.membership_key(name)}"
                )
        leave = "sismember" if self.dry_run else "srem"
        flags = iter(
            self.pipelined(
                [
                    (leave, (keys.membership_key(name), digest))
                    for name in live
                    for digest in groups[name]
                ]
            )
        )
        members = {name: [bool(next(flags)) for _ in groups[name]] for name in live}
        if any(any(held) for held in members.values()):
            self.client.script_load(self.clear_digests_batch.script)
        calls: list[tuple[str, tuple[Any, ...]]] = []
        for name in live:
            for digest, member in zip(groups[name], members[name], strict=True):
                if member:
                    hash_key = keys.repository_key(name, digest)
                    calls.append(("exists" if self.dry_run else "delete", (hash_key,)))
                    # redis-py refuses ``evalsha`` in a Cluster pipeline because it cannot load
                    # a script there; it is loaded on every primary above, and a NOSCRIPT reply
                    # is redone below.
                    calls.append(
                        (
                            "execute_command",
                            (
                                "EVALSHA",
                                self.clear_digests_batch.sha,
                                1,
                                keys.global_key(digest),
                                self.mode,
                                GLOBAL,
                            ),
                        )
                    )
        replies = iter(self.pipelined(calls))
        for name in live:
            entries = [0] * len(groups[name])
            for index, (digest, member) in enumerate(
                zip(groups[name], members[name], strict=True)
            ):
                if not member:
                    continue
                existed, reply = next(replies), next(replies)
                if isinstance(reply, redis_errors.NoScriptError):
                    # A primary restarted since the load: it ran nothing, so running it is exact.
                    reply = self.clear_digests_batch(
                        keys=[keys.global_key(digest)], args=[self.mode, GLOBAL]
                    )
                entries[index] += 1
                self.tally.add(1, int(existed))
                self.settle_digests(reply, entries, index)
            outcomes[name] = entries
        if not self.dry_run:
            emptied = [name for name in live if any(members[name])]
            sizes = self.pipelined([("exists", (keys.membership_key(name),)) for name in emptied])
            self.tally.add(0, sum(1 for size in sizes if not size))
        return outcomes

    def digests_repositories(
        self, groups: dict[str, list[str]]
    ) -> dict[str, list[int] | DescriptorCorrupt]:
        """The 3.1+ repository Clear of each group's digests, one round trip for all groups.

        Each repository's part stays atomic on its own (one script call), so a repository whose
        membership key has the wrong type fails alone: its value is the error and nothing of it
        changed, while the other repositories are cleared.
        """
        if self.cluster:
            return self.digests_repositories_in_steps(groups)
        outcomes: dict[str, list[int] | DescriptorCorrupt] = {}
        pipe = self.client.pipeline(transaction=False)
        for name, digests in groups.items():
            self.queue_digests_repository(pipe, name, digests)
        with shielded_from_interrupts():
            replies = pipe.execute(raise_on_error=False)
        for (name, digests), reply in zip(groups.items(), replies, strict=True):
            entries = [0] * len(digests)
            try:
                if isinstance(reply, Exception):
                    # Turned into DescriptorCorrupt (BLOBCACHE_CORRUPT) or CacheUnavailable.
                    with translate_redis_errors(self.client):
                        raise reply
                self.settle_digests(reply, entries)
            except DescriptorCorrupt as error:
                outcomes[name] = error
            else:
                outcomes[name] = entries
        return outcomes

    def settle_digests(self, reply: list[Any], entries: list[int], first: int = 0) -> None:
        for index, count in enumerate(reply[2:], start=first):
            entries[index] += int(count)
            self.tally.add(count, 0)
        self.tally.add(0, reply[0])

    def digests_in_repositories(
        self, batch: Sequence[str], found_entries: list[int], remaining: dict[str, int]
    ) -> None:
        """Clear the batch's digests in every repository: one SCAN over the repository keys.

        Membership sets are met by their key and asked which of the batch they hold
        (SMISMEMBER); repository hashes of the batch are met by their own key, so a hash whose
        repository has no set left (evicted, or an older registry's leftovers) goes too.
        ``remaining`` (dry run only) tracks, per repository hit, the members a real run would
        still leave, to count a set the real run would empty.
        """
        position = {digest: index for index, digest in enumerate(batch)}
        count = max(self.batch_size, SWEEP_SCAN_COUNT)
        for found in self.scan(keys.REPOSITORY_KEYS_PATTERN, count):
            sets: list[str] = []
            targets: dict[str, list[str]] = {}
            for key in found:
                shape = self.layout.classify(key)
                if shape is None:
                    continue
                kind, name, digest = shape
                if kind == MEMBERSHIP:
                    sets.append(name)
                elif kind == REPOSITORY and digest in position:
                    if digest not in targets.setdefault(name, []):
                        targets[name].append(digest)
            member_hits = self.batch_members(sets, batch, remaining)
            if self.dry_run:
                for held in member_hits.values():
                    for digest in held:
                        found_entries[position[digest]] += 1
                    self.tally.add(len(held), 0)
                self.repository_batches(targets, _HASHES, position, found_entries)
            else:
                for name, held in member_hits.items():
                    merged = targets.setdefault(name, [])
                    merged.extend(digest for digest in held if digest not in merged)
                self.repository_batches(targets, _PAIRS, position, found_entries)

    def batch_members(
        self, sets: list[str], batch: Sequence[str], remaining: dict[str, int]
    ) -> dict[str, list[str]]:
        if not sets:
            return {}
        calls: list[tuple[str, tuple[Any, ...]]] = []
        for name in sets:
            calls.append(("smismember", (keys.membership_key(name), list(batch))))
            if self.dry_run:
                calls.append(("scard", (keys.membership_key(name),)))
        # A membership key of the wrong type answers WRONGTYPE: it holds no members.
        replies = self.each(calls)
        hits: dict[str, list[str]] = {}
        step = 2 if self.dry_run else 1
        for index, name in enumerate(sets):
            flags = replies[index * step]
            if isinstance(flags, Exception):
                continue
            held = [digest for digest, flag in zip(batch, flags, strict=True) if int(flag)]
            if not held:
                continue
            hits[name] = held
            if self.dry_run:
                left = remaining.get(name, int(replies[index * step + 1])) - len(held)
                remaining[name] = left
                if left == 0:
                    self.tally.add(0, 1)
        return hits

    def repository_batches(
        self,
        targets: dict[str, list[str]],
        kind: str,
        position: dict[str, int],
        found_entries: list[int],
    ) -> None:
        groups: list[Group] = [(name, digests, ()) for name, digests in targets.items()]
        for (_, digests, _), flags in zip(groups, self.run_groups(groups, kind), strict=True):
            for digest, flag in zip(digests, flags, strict=True):
                found_entries[position[digest]] += flag


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
    run = _Run(cache, dry_run=dry_run, batch_size=batch_size, progress=progress)
    result = run.complete(lambda: run.repository_scope(name, sweep=sweep))
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
    run = _Run(cache, dry_run=dry_run, batch_size=batch_size, progress=progress)
    return run.complete(run.everything)


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
    run = _Run(cache, dry_run=dry_run, batch_size=batch_size, progress=progress)

    def walk() -> None:
        members_before = 0
        members_removed = 0
        if name is not None and dry_run:
            members_before = repository_size(cache, name)
        remaining: dict[str, int] = {}
        for batch in _batches(unique, batch_size):
            entries = [0] * len(batch)
            try:
                if everywhere:
                    # A sweep over every repository key can be long: signals are honoured
                    # between its steps, each of which is counted whole.
                    with shielded_from_interrupts():
                        run.digests_global(batch, entries)
                    run.digests_in_repositories(batch, entries, remaining)
                with shielded_from_interrupts():
                    if name is not None:
                        members_removed += run.digests_repository(name, batch, entries)
                    elif not everywhere:
                        run.digests_global(batch, entries)
                    _report_unknown(run, batch, entries, on_unknown)
                if not dry_run:
                    _count_clears(name, batch, entries)
            finally:
                if not dry_run:
                    _announce(cache, batch, entries, name)
            run.advance(len(batch))
        if dry_run and members_before and members_removed == members_before:
            run.tally.add(0, 1)

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
    run = _Run(cache, dry_run=False, batch_size=batch_size, progress=progress)
    result = EntriesResult()

    def walk() -> None:
        for batch in _batches(pairs, batch_size):
            if stop is not None and stop.is_set():
                result.stopped = True
                return
            groups: dict[str, list[str]] = {}
            for name, digest in batch:
                groups.setdefault(name, []).append(digest)
            outcomes = run.digests_repositories(groups)
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
    run: _Run,
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
    check_batch_size(batch_size)
    layout = LayoutKeys()
    client = cache.client
    totals = {GLOBAL: 0, MEMBERSHIP: 0, REPOSITORY: 0}
    memberships = 0
    memory = 0
    cluster = bool(getattr(cache, "cluster", False))
    with translate_redis_errors(client):
        for found in _scan_chunks(client, None, batch_size, batch_size):
            calls: list[tuple[str, tuple[Any, ...]]] = []
            for key in found:
                shape = layout.classify(key)
                if shape is None:
                    continue
                totals[shape[0]] += 1
                calls.append(("memory_usage", (key, samples)))
                if shape[0] == MEMBERSHIP:
                    calls.append(("scard", (key,)))
            for (command, _), reply in zip(calls, _each(client, cluster, calls), strict=True):
                # A key gone since the SCAN answers None; a wrong-typed set, WRONGTYPE.
                if not isinstance(reply, int):
                    continue
                if command == "scard":
                    memberships += reply
                else:
                    memory += reply
            if progress is not None:
                progress(len(found))
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
