"""The store interface: every primitive that touches more than one key, once per topology.

A store is chosen once, when the client is resolved (:func:`blobcache.store.store_for`), and the
cache manager, the bulk engine, the listings and reconcile call it without asking which topology
they are on. Each primitive has one meaning on every topology; what differs is how it is made
atomic: one Lua script on a single server (standalone, Sentinel), ordered per-slot steps on
Cluster, where the registry's keys for one blob hash to different slots.

The batch primitives take ``clear``: false is a dry run, which changes nothing and answers with
what the clear would do (the same code path on the server, so the two never disagree).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from blobcache import keys, scripts
from blobcache.descriptor import Descriptor
from blobcache.exceptions import DescriptorCorrupt

#: One page of a SCAN over the sets of one node: ``scan(node_index, cursor, count)``.
Scan = Callable[[int, int, int], tuple[int, Sequence[Any]]]

#: What a repository batch counts besides clearing (``clear_repository_groups``'s ``counting``):
#: every digest whose membership or hash exists, and its hash (a walk of the set);
PAIRS = "pairs"
#: each hash whose digest is not a member, and every hash met (a dry run of a walk of the
#: keyspace, which counts members where it meets their set);
HASHES = "hashes"
#: each hash whose digest is not a member, and only those hashes (a sweep after the set's walk).
ORPHANS = "orphans"

#: What a reconcile batch removes (``reconcile_repository``'s ``entries``): each digest's
#: membership and hash together, or only hashes whose digest is not a member.
MEMBERS = "members"

#: The scripts' words for what a batch of Clear calls covers: global entries, or one
#: repository's; and reconcile_batch.lua's for a batch of global entries.
DIGESTS_GLOBAL = "global"
DIGESTS_IN_REPOSITORY = "repository"
RECONCILE_GLOBALS = "globals"

#: Bits of a reconcile batch's per-entry flag: the membership (for a global entry: descriptor
#: fields) was there; the hash key is (would be) deleted.
PRESENT = 1
HASH_DELETED = 2


@dataclass(frozen=True)
class Group:
    """One repository's part of a repository batch."""

    repository: str
    digests: Sequence[str]
    #: Set members that are not valid digests: removed with the set, never counted.
    extra_members: Sequence[Any] = ()

    @property
    def weight(self) -> int:
        return len(self.digests) + len(self.extra_members)


@dataclass
class GroupsOutcome:
    """What a repository batch cleared (would clear): entries, keys, and per group and digest
    1 when the digest was one of the entries."""

    entries: int = 0
    keys_deleted: int = 0
    flags: list[list[int]] = field(default_factory=list)


@dataclass
class DigestsOutcome:
    """What a batch of Clear calls cleared: keys deleted, members removed, and per digest the
    descriptor entries cleared (0: an unknown blob)."""

    keys_deleted: int
    members_removed: int
    entries: list[int]


@dataclass
class ReconcileOutcome:
    """Membership sets emptied (deleted) by a reconcile batch, and per entry its flag bits."""

    sets_deleted: int
    flags: list[int]


class Scripts:
    """The Lua scripts of one client; redis-py runs them by SHA and reloads them on NOSCRIPT."""

    def __init__(self, client: Any) -> None:
        load = client.register_script
        self.stat_repository = load(scripts.load("stat_repository"))
        self.set_global = load(scripts.load("set_global"))
        self.set_repository = load(scripts.load("set_repository"))
        self.clear_global = load(scripts.load("clear_global"))
        self.clear_repository = load(scripts.load("clear_repository"))
        self.clear_repository_batch = load(scripts.load("clear_repository_batch"))
        self.clear_digests_batch = load(scripts.load("clear_digests_batch"))
        self.reconcile_batch = load(scripts.load("reconcile_batch"))


def mode(clear: bool) -> str:
    return "clear" if clear else "count"


def corrupt_membership(repository: str) -> DescriptorCorrupt:
    return DescriptorCorrupt(
        f"a cache key holds a value of the wrong type: {keys.membership_key(repository)}"
    )


class Store(ABC):
    """The multi-key primitives over one client; single-key ones are shared here."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.scripts = Scripts(client)

    # --- one entry (the cache manager) ---

    def stat_global(self, global_key: str) -> list[Any]:
        """``HMGET`` of the descriptor fields: ``[digest, size, mediatype]``."""
        return list(self.client.hmget(global_key, keys.DESCRIPTOR_FIELDS))

    @abstractmethod
    def stat_repository(
        self, membership_key: str, global_key: str, repository_key: str, digest: str
    ) -> list[Any]:
        """``[0]`` for a non-member, else ``[1, digest, size, mediatype, repository mediatype]``."""

    def set_global(self, global_key: str, descriptor: Descriptor) -> list[Any]:
        """``[existed, digest, size, mediatype]`` read after the write."""
        reply = self.scripts.set_global(
            keys=[global_key],
            args=[descriptor.digest, descriptor.size, descriptor.media_type],
        )
        return list(reply)

    @abstractmethod
    def set_repository(
        self, write_keys: Sequence[str], digest: str, descriptor: Descriptor
    ) -> list[Any]:
        """``[existed, digest, size, mediatype, repository mediatype]`` for ``digest``.

        ``write_keys``: the membership set, the global and repository hashes of ``digest``, and
        for an alias write those of the canonical digest too.
        """

    def clear_global(self, global_key: str) -> int:
        """1 when there was an entry to clear, 0 for an unknown blob."""
        return int(self.scripts.clear_global(keys=[global_key]))

    @abstractmethod
    def clear_repository(
        self, membership_key: str, repository_key: str, global_key: str, digest: str
    ) -> int:
        """0 for a non-member (nothing changed), 1, or 2 when the global entry went too."""

    # --- many entries (bulk and reconcile) ---

    @abstractmethod
    def clear_repository_groups(
        self, groups: Sequence[Group], clear: bool, counting: str, batch_size: int
    ) -> GroupsOutcome:
        """Remove each group's digests' memberships and hashes together, and its extra members.

        ``counting`` (:data:`PAIRS`, :data:`HASHES`, :data:`ORPHANS`) says what a dry run
        counts; a clear always counts as ``PAIRS``. A membership key of another type holds no
        members here: the caller deletes it on its own.
        """

    @abstractmethod
    def clear_digests_global(self, digests: Sequence[str], clear: bool) -> DigestsOutcome:
        """One global Clear per digest."""

    @abstractmethod
    def clear_digests_in(
        self, groups: dict[str, list[str]], clear: bool
    ) -> dict[str, DigestsOutcome | DescriptorCorrupt]:
        """One repository-scoped Clear per digest of each repository; a repository whose
        membership key has the wrong type fails alone and nothing of it changes."""

    @abstractmethod
    def reconcile_repository(
        self, entries: str, pairs: Sequence[tuple[str, str]], clear: bool
    ) -> ReconcileOutcome:
        """Remove ``(repository, digest)`` entries storage does not back (:data:`MEMBERS` or
        :data:`ORPHANS`). A membership key of another type holds no members (it is left alone);
        a repository hash of another type goes whole, as with every Clear."""

    @abstractmethod
    def reconcile_globals(self, global_keys: Sequence[str], clear: bool) -> list[int]:
        """The global Clear of each key, as flag bits (:data:`PRESENT`, :data:`HASH_DELETED`)."""

    def unlink(self, layout_keys: Sequence[Any], clear: bool) -> int:
        """Keys removed (for a dry run: still there). redis-py splits a multi-key call by slot
        on Cluster and adds the replies up."""
        if not layout_keys:
            return 0
        if clear:
            return int(self.client.unlink(*layout_keys))
        return int(self.client.exists(*layout_keys))

    # --- reads ---

    def read_each(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """Single-key read commands (redis-py method names) in one pipeline, which on Cluster
        redis-py sends as one round trip per node; each reply, or the ResponseError it raised
        (WRONGTYPE on a corrupt entry)."""
        if not calls:
            return []
        pipe = self.client.pipeline(transaction=False)
        for name, args in calls:
            getattr(pipe, name)(*args)
        return list(pipe.execute(raise_on_error=False))

    @abstractmethod
    def on_primaries(self, command: str, *args: Any) -> dict[str, Any]:
        """``command`` on every primary, by node name (one entry, ``""``, off Cluster)."""

    @abstractmethod
    def set_scan(self, pattern: str) -> tuple[Scan, int]:
        """A SCAN of the sets matching ``pattern``, one node at a time, and the node count."""
