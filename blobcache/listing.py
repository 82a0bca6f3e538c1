"""Paged walks over the registry's keys with SCAN cursors, never a whole set in memory.

A page is whatever a few SCAN/SSCAN calls return, so a walk inherits Redis's guarantee: every
element present for the whole walk is returned at least once (possibly more than once), whatever
is added or removed meanwhile. A page is never cut to ``page_size`` because dropping the tail of
a SCAN reply would break that guarantee; it may hold a few more (COUNT is only a hint).

On Redis Cluster a member listing works as on one server (a set lives on one node); the
repository listing walks the primaries one after the other, its cursor carrying the node's index
in the top byte and that node's own SCAN cursor below (Redis cursors stay far below 2**56).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis import exceptions as redis_errors

from blobcache import keys
from blobcache.cache import (
    DescriptorCache,
    RepositoryScopedCache,
    descriptor_from_fields,
    translate_redis_errors,
)
from blobcache.descriptor import Descriptor
from blobcache.exceptions import BlobUnknown, CacheUnavailable, DescriptorCorrupt

T = TypeVar("T")

#: Redis cursors are unsigned 64-bit integers; anything else makes SCAN fail.
CURSOR_MAX = 2**64 - 1
#: SCAN calls a single page may spend looking for matches before answering a short page.
MAX_SCAN_CALLS = 32
#: The most keys one SCAN call is asked to look at (about a millisecond of server time).
MAX_SCAN_COUNT = 10_000
#: Cluster: bits of the API cursor that hold a primary's own SCAN cursor.
NODE_CURSOR_BITS = 56


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    #: The cursor that continues the walk; 0 when the walk is complete.
    cursor: int


@dataclass(frozen=True, slots=True)
class Member:
    """A digest linked into a repository; ``descriptor`` is None for a miss or a corrupt entry."""

    digest: str
    descriptor: Descriptor | None


@dataclass(frozen=True, slots=True)
class RepositoryCount:
    name: str
    members: int


def _walk(
    scan: Callable[[int, int], tuple[int, Sequence[Any]]], cursor: int, page_size: int
) -> tuple[list[Any], int]:
    """Call ``scan(cursor, count)`` until a page is full, the walk ends or the budget is spent.

    COUNT starts at what is still missing, so a dense walk (SSCAN, or a keyspace of mostly
    repositories) overshoots ``page_size`` by a few elements only; when fewer than half of the
    keys looked at match (a keyspace of mostly ``blobs::`` hashes), COUNT doubles, trading a
    larger page for fewer round trips.
    """
    found: list[Any] = []
    count = page_size
    for _ in range(MAX_SCAN_CALLS):
        cursor, batch = scan(cursor, count)
        found.extend(batch)
        missing = page_size - len(found)
        if int(cursor) == 0 or missing <= 0:
            break
        count = min(count * 2, MAX_SCAN_COUNT) if 2 * len(batch) < count else missing
    return found, int(cursor)


def list_members(scoped: RepositoryScopedCache, cursor: int, page_size: int) -> Page[Member]:
    """One page of a repository's members with their descriptors, in two round trips.

    The descriptors of the whole page come from one pipeline; a member reads as the
    repository-scoped ``stat`` would read it (3.x rules), with a miss or corrupt entry as None.
    """
    client = scoped.client
    membership_key = keys.membership_key(scoped.repository)
    with translate_redis_errors(client):
        raw_digests, cursor = _walk(
            lambda at, count: client.sscan(membership_key, cursor=at, count=count),
            cursor,
            page_size,
        )
        digests = [keys.key_text(digest) for digest in raw_digests]
        pipeline = client.pipeline(transaction=False)
        for digest in digests:
            pipeline.hmget(keys.global_key(digest), keys.DESCRIPTOR_FIELDS)
            pipeline.hget(keys.repository_key(scoped.repository, digest), keys.FIELD_MEDIA_TYPE)
        replies = pipeline.execute(raise_on_error=False) if digests else []
    members = [
        Member(digest, _member_descriptor(replies[2 * index], replies[2 * index + 1]))
        for index, digest in enumerate(digests)
    ]
    return Page(members, cursor)


def _member_descriptor(fields: Any, override: Any) -> Descriptor | None:
    if isinstance(fields, redis_errors.ResponseError) or isinstance(
        override, redis_errors.ResponseError
    ):
        return None  # a key of the wrong type: corrupt
    if override is None:
        return None  # 3.x: a member without its repository hash is a miss
    digest, size, media_type = fields
    try:
        return descriptor_from_fields(digest, size, media_type, override)
    except (BlobUnknown, DescriptorCorrupt):
        return None


def list_repositories(
    cache: DescriptorCache, cursor: int, page_size: int, *, names: str = "*"
) -> Page[RepositoryCount]:
    """One page of repository names (from their membership sets) with their member counts.

    ``names`` is a SCAN MATCH glob over repository names (escape literal text with
    ``keys.glob_escape``); Redis filters while it walks, so a filter costs no extra round trip.
    """
    client = cache.client
    pattern = keys.membership_key(names)

    def scan(at: int, count: int) -> tuple[int, Sequence[Any]]:
        return client.scan(cursor=at, match=pattern, count=count, _type="set")

    with translate_redis_errors(client):
        raw_keys, cursor = _walk(
            _cluster_scan(client, pattern) if getattr(cache, "cluster", False) else scan,
            cursor,
            page_size,
        )
        pipeline = client.pipeline(transaction=False)
        for key in raw_keys:
            pipeline.scard(key)
        counts = pipeline.execute(raise_on_error=False) if raw_keys else []
    repositories = [
        RepositoryCount(keys.repository_of_membership_key(keys.key_text(key)), members)
        for key, members in zip(raw_keys, counts, strict=True)
        # A set removed (or replaced) since SCAN saw it no longer names a repository.
        if isinstance(members, int) and members > 0
    ]
    return Page(repositories, cursor)


def _cluster_scan(client: Any, pattern: str) -> Callable[[int, int], tuple[int, Sequence[Any]]]:
    """A SCAN over every primary in turn, behind one integer cursor."""
    primaries = sorted(client.get_primaries(), key=lambda node: node.name)
    mask = (1 << NODE_CURSOR_BITS) - 1

    def scan(at: int, count: int) -> tuple[int, Sequence[Any]]:
        index, node_cursor = at >> NODE_CURSOR_BITS, at & mask
        if index >= len(primaries):
            return 0, []
        node = primaries[index]
        cursors, batch = client.scan(
            cursor=node_cursor, match=pattern, count=count, _type="set", target_nodes=node
        )
        node_cursor = int(cursors[node.name])
        if node_cursor > mask:
            raise CacheUnavailable(f"the SCAN cursor of {node.name} does not fit a page cursor")
        if node_cursor == 0:
            index += 1
            if index == len(primaries):
                return 0, batch
        return (index << NODE_CURSOR_BITS) | node_cursor, batch

    return scan
