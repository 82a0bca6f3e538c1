"""Listings: bounded cost per page, pages never above their size, and complete walks.

The walks run on a database crowded with keys that are no membership set (global hashes,
repository hashes, other applications' keys), where a single SCAN reply often holds more
matches than a small page has room for: the surplus must wait in the position, not get lost.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import pytest
import redis

from blobcache import listing
from blobcache.cache import DescriptorCache
from blobcache.listing import (
    MAX_SCAN_CALLS,
    MAX_SCAN_COUNT,
    Page,
    PositionInvalid,
    ScanPosition,
)
from tests.redis_state import monitored

T = TypeVar("T")
OCTET = "application/octet-stream"


def digest_of(n: int) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def link(client: Any, repository: str, digest: str) -> None:
    """What a registry's repository-scoped SetDescriptor leaves behind (one key at a time, so
    that it also works on Cluster, where the three keys live in different slots)."""
    client.hset(f"blobs::{digest}", mapping={"digest": digest, "size": 1, "mediatype": OCTET})
    client.hset(f"repository::{repository}::blobs::{digest}", "mediatype", OCTET)
    client.sadd(f"repository::{repository}::blobs", digest)


def crowd(client: Any, keys: int) -> None:
    """Keys a repository listing must look past: global hashes and other applications' keys."""
    for start in range(0, keys, 500):
        pipeline = client.pipeline(transaction=False)
        for n in range(start, min(start + 500, keys)):
            if n % 4:
                digest = digest_of(-n)
                pipeline.hset(f"blobs::{digest}", mapping={"digest": digest, "size": 1})
            else:
                pipeline.set(f"session:{n}", "x")
        pipeline.execute()


def walk_all(
    fetch: Callable[[ScanPosition, int], Page[T]],
    page_size: int,
    between: Callable[[], None] | None = None,
    limit: int = 20_000,
) -> list[list[T]]:
    pages: list[list[T]] = []
    position: ScanPosition | None = ScanPosition()
    while position is not None:
        page = fetch(position, page_size)
        assert len(page.items) <= page_size
        pages.append(page.items)
        # Every position survives its trip through a URL.
        position = page.next and ScanPosition.decode(page.next.encode())
        if between is not None:
            between()
        assert len(pages) < limit, "the walk does not end"
    return pages


@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 5, 6, 7])
def test_repository_walks_of_small_pages_are_complete(
    cache: DescriptorCache, redis_client: Any, page_size: int
) -> None:
    crowd(redis_client, 3000)
    names = {f"org/repo{n}" for n in range(60)}
    for n, name in enumerate(names):
        link(redis_client, name, digest_of(n))
    pages = walk_all(lambda at, size: listing.list_repositories(cache, at, size), page_size)
    seen = [item.name for page in pages for item in page]
    assert set(seen) == names
    assert all(item.members == 1 for page in pages for item in page)


@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 5, 6, 7])
def test_member_walks_of_small_pages_are_complete(
    cache: DescriptorCache, redis_client: Any, page_size: int
) -> None:
    # On Redis 7.2+, 40 members stay a listpack (SSCAN answers them all at once, whatever
    # COUNT says); 300 make a hash table everywhere.
    for repository, size in (("small/set", 40), ("large/set", 300)):
        digests = {digest_of(n) for n in range(size)}
        pipeline = redis_client.pipeline(transaction=False)
        pipeline.sadd(f"repository::{repository}::blobs", *digests)
        pipeline.execute()
        scoped = cache.repository_scoped(repository)
        pages = walk_all(partial(listing.list_members, scoped), page_size)
        seen = [item.digest for page in pages for item in page]
        assert set(seen) == digests, repository
        # Nothing changed during the walk, so nothing comes twice.
        assert sorted(seen) == sorted(digests), repository


@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 5, 6, 7])
def test_a_reply_larger_than_the_page_is_paged_through_the_position(
    cache: DescriptorCache, redis_client: Any, page_size: int
) -> None:
    # Integer members make an intset, which SSCAN answers whole whatever COUNT says (as it does
    # a listpack on Redis 7.2+). Such members are no digests, but a listing shows them.
    members = {str(n) for n in range(1, 51)}
    redis_client.sadd("repository::odd/set::blobs", *members)
    scoped = cache.repository_scoped("odd/set")
    pages = walk_all(partial(listing.list_members, scoped), page_size)
    assert [len(page) for page in pages] == [page_size] * (50 // page_size) + (
        [50 % page_size] if 50 % page_size else []
    )
    assert sorted(item.digest for page in pages for item in page) == sorted(members)
    assert all(item.descriptor is None for page in pages for item in page)


@pytest.mark.parametrize("page_size", [1, 3, 7])
def test_member_walk_under_churn_returns_every_stable_member(
    cache: DescriptorCache, redis_client: Any, page_size: int
) -> None:
    rng = random.Random(page_size)
    membership = "repository::library/alpine::blobs"
    stable = {digest_of(n) for n in range(150)}
    volatile = [digest_of(n) for n in range(150, 300)]
    redis_client.sadd(membership, *stable, *volatile)
    fresh = iter(range(300, 1_000_000))
    added: set[str] = set()
    removed: set[str] = set()

    def churn() -> None:
        # Removals and additions both, so the table shrinks, grows and rehashes mid-walk.
        for _ in range(2):
            if volatile:
                victim = volatile.pop(rng.randrange(len(volatile)))
                redis_client.srem(membership, victim)
                removed.add(victim)
        digest = digest_of(next(fresh))
        redis_client.sadd(membership, digest)
        added.add(digest)

    scoped = cache.repository_scoped("library/alpine")
    pages = walk_all(lambda at, size: listing.list_members(scoped, at, size), page_size, churn)
    seen = {item.digest for page in pages for item in page}
    assert stable <= seen
    assert removed and added
    assert seen <= stable | set(volatile) | removed | added


def test_repository_walk_under_churn_returns_every_stable_repository(
    cache: DescriptorCache, redis_client: Any
) -> None:
    crowd(redis_client, 2000)
    stable = {f"stable/r{n}" for n in range(80)}
    doomed = [f"doomed/r{n}" for n in range(80)]
    for n, name in enumerate([*stable, *doomed]):
        redis_client.sadd(f"repository::{name}::blobs", digest_of(n))
    fresh = iter(range(1_000_000))

    def churn() -> None:
        if doomed:
            redis_client.delete(f"repository::{doomed.pop()}::blobs")
        for _ in range(3):
            redis_client.sadd(f"repository::fresh/r{next(fresh)}::blobs", digest_of(1))

    pages = walk_all(lambda at, size: listing.list_repositories(cache, at, size), 3, churn)
    assert stable <= {item.name for page in pages for item in page}


def test_invalid_and_non_utf8_names_are_not_listed(
    cache: DescriptorCache, redis_client: Any
) -> None:
    link(redis_client, "library/alpine", digest_of(1))
    link(redis_client, "[::1]:5000/app", digest_of(2))
    for name in (b"Bad Name", b"*", b"\xff\xfe", b"a/\xc3", b"a" * 64, b"::", b"x" * 300):
        redis_client.sadd(b"repository::" + name + b"::blobs", digest_of(3))
    pages = walk_all(lambda at, size: listing.list_repositories(cache, at, size), 1000)
    assert sorted((item.name, item.members) for page in pages for item in page) == [
        ("[::1]:5000/app", 1),
        ("library/alpine", 1),
    ]


@pytest.mark.standalone
class TestCostPerPage:
    """Counted with MONITOR: each page makes a bounded number of SCAN calls of a bounded COUNT."""

    SCAN = re.compile(r"^(SCAN|SSCAN)\b.*\bCOUNT (\d+)", re.IGNORECASE)

    def pages_and_costs(
        self, redis_server: Any, fetch: Callable[[ScanPosition, int], Page[Any]], page_size: int
    ) -> tuple[list[list[Any]], list[list[int]]]:
        pages: list[list[Any]] = []
        counts: list[list[int]] = []
        position: ScanPosition | None = ScanPosition()
        while position is not None:
            with monitored(redis_server) as capture:
                page = fetch(position, page_size)
            commands = [line["command"] for line in capture.client]
            scans = [self.SCAN.match(command) for command in commands]
            counts.append([int(found.group(2)) for found in scans if found])
            # Besides the scans: at most one pipeline of the page's details.
            details = [command for command, found in zip(commands, scans, strict=True)
                       if not found]
            assert len(details) <= 2 * len(page.items), details[:5]
            pages.append(page.items)
            position = page.next
            assert len(pages) < 1000
        return pages, counts

    def test_repositories_in_a_sparse_keyspace(
        self, cache: DescriptorCache, redis_client: redis.Redis, redis_server: Any
    ) -> None:
        crowd(redis_client, 40_000)
        for n in range(3):
            link(redis_client, f"team/app{n}", digest_of(n))
        pages, counts = self.pages_and_costs(
            redis_server, lambda at, size: listing.list_repositories(cache, at, size), 1000
        )
        assert sorted(item.name for page in pages for item in page) == [
            "team/app0", "team/app1", "team/app2"
        ]
        assert all(1 <= len(calls) <= MAX_SCAN_CALLS for calls in counts)
        assert max(count for calls in counts for count in calls) == MAX_SCAN_COUNT <= 1000
        # 40,000 keys looked at 1,000 at a time at best: the walk takes many short pages.
        assert len(pages) >= 40_000 // (MAX_SCAN_CALLS * MAX_SCAN_COUNT)

    def test_members_of_a_large_set(
        self, cache: DescriptorCache, redis_client: redis.Redis, redis_server: Any
    ) -> None:
        digests = {digest_of(n) for n in range(5000)}
        redis_client.sadd("repository::big/one::blobs", *digests)
        scoped = cache.repository_scoped("big/one")
        pages, counts = self.pages_and_costs(
            redis_server, lambda at, size: listing.list_members(scoped, at, size), 1000
        )
        assert {item.digest for page in pages for item in page} == digests
        assert all(len(page) <= 1000 for page in pages)
        assert all(1 <= len(calls) <= MAX_SCAN_CALLS for calls in counts)
        assert all(count <= MAX_SCAN_COUNT <= 1000 for calls in counts for count in calls)
        assert max(len(page) for page in pages) == 1000


class TestPosition:
    def test_round_trip(self) -> None:
        for position in (
            ScanPosition(),
            ScanPosition(2, 2**64 - 1, 0, MAX_SCAN_COUNT, b"\x01" * 16),
            ScanPosition(0, 12345, 678, 7, b"\xff" * 16),
            ScanPosition(1, 99, None, 0),
        ):
            text = position.encode()
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text)
            assert ScanPosition.decode(text) == position

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "0",
            "%%%",
            "é" * 30,
            ScanPosition().encode() + "A",
            ScanPosition().encode()[:-1],
            "AQAAAAAAAAAAAAAAAAAAAAAAAAD7AA",  # COUNT 251
            "AQAAAAAAAAAAAAAAAAAAAAAAAAAFAgEBAQEBAQEBAQEBAQEBAQE",  # a sort key without an end
            ScanPosition(0, 5, 9, 10, b"\x01" * 16).encode()[:-2],
            "A" * 65,
        ],
    )
    def test_anything_else_is_refused(self, text: str) -> None:
        with pytest.raises(PositionInvalid):
            ScanPosition.decode(text)
