"""The engine every bulk walk runs on: scan in chunks, run a batch through the store, count.

A walk (a whole-scope clear, a digest-list clear, statistics, reconcile) only decides which
keys go in which batch. This module does the rest, once: SCAN and SSCAN in bounded chunks, each
batch sent through the client's :class:`~blobcache.store.base.Store` while SIGINT and SIGTERM
are held back, so the counts are exact even for an interrupted run, and the dry-run counting
that a walk cannot read from the store's replies (a set the real run would empty).

::

    walker (bulk.py, reconcile.py) --batches--> Run (counts, interrupts) --primitives--> Store
                                                                                   /      \\
                                                             ScriptedStore (Lua)   ClusterStore
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from blobcache import keys, metrics
from blobcache.cache import DescriptorCache
from blobcache.digest import validate_digest
from blobcache.exceptions import DigestInvalid, NameInvalid
from blobcache.reference import validate_repository_name
from blobcache.store.base import Group
from blobcache.store.errors import translate_redis_errors

Progress = Callable[[int], None]

#: SCAN work per call when sweeping the keyspace for a few keys (one repository's orphaned
#: hashes, one batch's digests). Larger than a write batch because most keys scanned are not
#: returned: fewer round trips, and each call still takes the server about a millisecond.
SWEEP_SCAN_COUNT = 10_000


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


# --- interrupt handling --------------------------------------------------------------------------

_SHIELDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signal_handlers(signums: Sequence[int], handler: Any) -> Iterator[None]:
    """``handler`` for ``signums`` during the block, the previous handlers restored after it.

    Signal handlers can only be changed from the main thread; elsewhere (a WSGI worker thread)
    signals never arrive anyway, so the block runs with the handlers as they are.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, previous_handler in previous.items():
            signal.signal(signum, previous_handler)


@contextmanager
def shielded_from_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while one batch is sent and its reply read.

    Without this, Ctrl-C between sending a script and reading its reply would lose the batch's
    counts (the server still runs the script to the end). The signal is re-raised as soon as the
    batch is done, to whatever handler the caller had installed.
    """
    pending: list[int] = []

    def remember(signum: int, frame: Any) -> None:
        pending.append(signum)

    try:
        with signal_handlers(_SHIELDED_SIGNALS, remember):
            yield
    finally:
        if pending:
            signal.raise_signal(pending[0])


# --- what a walk meets ---------------------------------------------------------------------------


def is_valid_digest(text: str) -> bool:
    try:
        validate_digest(text)
    except DigestInvalid:
        return False
    return True


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_GLOBAL_PREFIX = keys.global_key("")
# What separates a membership key from the digest in a repository hash key ("::").
_DIGEST_SEPARATOR = keys.repository_key("r", "")[len(keys.membership_key("r")) :]

#: The layout's three key shapes (:attr:`LayoutKey.shape`).
GLOBAL = "global"
MEMBERSHIP = "membership"
REPOSITORY = "repository"

# Names met during a walk are validated once; the memo is dropped when it grows this large.
_NAME_MEMO_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class LayoutKey:
    """A key of the registry's layout: its shape, and its repository and digest ("" if none)."""

    shape: str
    repository: str
    digest: str


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

    def classify(self, key: Any) -> LayoutKey | None:
        """The layout key ``key`` is, or None for anything else (other apps' keys included)."""
        text = keys.key_text(key)
        if text.startswith(_GLOBAL_PREFIX):
            digest = text[len(_GLOBAL_PREFIX) :]
            return LayoutKey(GLOBAL, "", digest) if is_valid_digest(digest) else None
        if not text.startswith(keys.REPOSITORY_PREFIX):
            return None
        rest = text[len(keys.REPOSITORY_PREFIX) :]
        cut = rest.find(keys.MEMBERSHIP_SUFFIX)
        if cut < 1:
            return None
        name = rest[:cut]
        tail = rest[cut + len(keys.MEMBERSHIP_SUFFIX) :]
        if not tail:
            return LayoutKey(MEMBERSHIP, name, "") if self.is_name(name) else None
        if not tail.startswith(_DIGEST_SEPARATOR):
            return None
        digest = tail[len(_DIGEST_SEPARATOR) :]
        if is_valid_digest(digest) and self.is_name(name):
            return LayoutKey(REPOSITORY, name, digest)
        return None


@dataclass(frozen=True)
class MemberPage:
    """One SSCAN batch of a membership set."""

    scanned: Sequence[Any]
    #: The members that are valid digests, as text.
    digests: list[str]
    #: The others, raw (to SREM as they are): removed with the set, never counted.
    extra_members: list[Any]

    @classmethod
    def of(cls, members: Sequence[Any]) -> MemberPage:
        digests: list[str] = []
        extra: list[Any] = []
        for member in members:
            text = keys.key_text(member)
            if is_valid_digest(text):
                digests.append(text)
            else:
                extra.append(member)
        return cls(members, digests, extra)

    def group(self, repository: str) -> Group:
        return Group(repository, self.digests, self.extra_members)


# --- one run -------------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.cleared = 0
        self.keys_deleted = 0
        self.unknown = 0

    def add(self, cleared: int, keys_deleted: int) -> None:
        self.cleared += int(cleared)
        self.keys_deleted += int(keys_deleted)


class Run:
    """One bulk operation: its store, mode (clear or dry run), batch size and counts."""

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
        self.store = cache.store
        self.dry_run = dry_run
        #: What the store is asked to do: clear, or (a dry run) count what a clear would do.
        self.clear = not dry_run
        self.batch_size = batch_size
        self.progress = progress
        self.tally = Tally()
        self.layout = LayoutKeys()

    def walk(self, walk: Callable[[], None]) -> bool:
        """Run ``walk``, Redis errors translated; True when an interrupt (held back while a
        batch is in flight) ended it early, with the exact counts of the batches done."""
        try:
            with translate_redis_errors(self.client):
                walk()
        except KeyboardInterrupt:
            return True
        return False

    def complete(self, walk: Callable[[], None]) -> ClearResult:
        """A clear's run: ``walk``, then its counts and the cleared-entries metric."""
        try:
            interrupted = self.walk(walk)
        finally:
            # What the finished batches removed is gone, even when a later batch failed.
            if not self.dry_run:
                metrics.count_cleared(self.tally.cleared)
        tally = self.tally
        return ClearResult(
            tally.cleared, tally.keys_deleted, self.dry_run, interrupted, unknown=tally.unknown
        )

    def advance(self, done: int) -> None:
        if self.progress is not None and done:
            self.progress(done)

    # --- walking ---

    def key_type(self, key: str) -> str:
        return keys.key_text(self.client.type(key))

    def scan(self, pattern: str | None, count: int) -> Iterator[list[Any]]:
        """The keyspace (every primary of a Cluster) in chunks of one batch."""
        chunk: list[Any] = []
        for key in self.client.scan_iter(match=pattern, count=count):
            chunk.append(key)
            if len(chunk) >= self.batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def members(self, repository: str, cursor: int = 0) -> Iterator[MemberPage]:
        """A set's members by SSCAN from ``cursor``, in batches."""
        membership = keys.membership_key(repository)
        while True:
            cursor, found = self.client.sscan(membership, cursor, count=self.batch_size)
            for batch in batches(found, self.batch_size):
                yield MemberPage.of(batch)
            if int(cursor) == 0:
                return

    # --- batches ---

    def clear_groups(self, groups: Sequence[Group], counting: str) -> list[list[int]]:
        """One repository batch through the store, counted whole; each group's digest flags."""
        if not groups:
            return []
        with shielded_from_interrupts():
            outcome = self.store.clear_repository_groups(
                groups, self.clear, counting, self.batch_size
            )
            self.tally.add(outcome.entries, outcome.keys_deleted)
        return outcome.flags

    def delete_corrupt(self, key: str) -> None:
        """A layout key of the wrong type is a corrupt entry: it goes, as the global clear does."""
        with shielded_from_interrupts():
            self.tally.add(0, self.store.unlink([key], self.clear) if self.clear else 1)

    def removals_from(self, membership_key: str, size_before: int | None = None) -> SetRemovals:
        """Track the members a walk removes from one set, for a dry run's count of the set.

        ``size_before`` is the set's size when the walk began, when the caller already read it
        (in the same round trip as its members); otherwise a dry run asks for it here.
        """
        return SetRemovals(self, membership_key, size_before)

    def count_would_delete(self, entries: int = 0, deleted_keys: int = 0) -> None:
        """A dry run's count of what the store's replies cannot say: keys the real run would
        delete with their last member, entries a walk counts where it meets them."""
        if self.dry_run:
            self.tally.add(entries, deleted_keys)


class SetRemovals:
    """The members a walk removes from one set, when it may leave some behind.

    A dry run removes nothing, so it decides at the end whether the real run would have emptied
    (and so deleted) the set: when the members it counted were all there was when it began.
    """

    def __init__(self, run: Run, membership_key: str, size_before: int | None = None) -> None:
        self.run = run
        if not run.dry_run:
            size_before = 0
        elif size_before is None:
            size_before = int(run.client.scard(membership_key))
        self.size_before = size_before
        self.removed = 0

    def add(self, removed: int) -> None:
        self.removed += removed

    def settle(self) -> None:
        if self.size_before and self.removed == self.size_before:
            self.run.count_would_delete(deleted_keys=1)
