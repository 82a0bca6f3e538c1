"""Listings: exact pages, cursor pagination, bad parameters, and walks under concurrent writes."""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from rest_framework.test import APIClient

from tests.api.conftest import LAYER, OCTET, SHA256, SHA256_B, SHA384, body, envelope

MEMBERS = "/api/repositories/library/alpine/blobs"
MEMBERSHIP = "repository::library/alpine::blobs"


def digest_of(n: int) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def link(redis_client: redis.Redis, repository: str, digest: str, size: int = 1) -> None:
    """What a registry's repository-scoped SetDescriptor leaves behind."""
    pipe = redis_client.pipeline()
    pipe.sadd(f"repository::{repository}::blobs", digest)
    pipe.hset(f"blobs::{digest}", mapping={"digest": digest, "size": size})
    pipe.hsetnx(f"blobs::{digest}", "mediatype", OCTET)
    pipe.hset(f"repository::{repository}::blobs::{digest}", "mediatype", OCTET)
    pipe.execute()


def walk(api: APIClient, url: str, between: Any = None, limit: int = 10_000) -> list[list[Any]]:
    """Follow ``next`` links to the end; returns the pages' results."""
    pages: list[list[Any]] = []
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        data = response.json()
        assert set(data) == {"results", "next"}
        pages.append(data["results"])
        url = data["next"]
        if between is not None:
            between(len(pages))
        assert len(pages) < limit, "the walk does not end"
    return pages


class TestMembers:
    def test_unknown_repository_is_an_empty_page(self, api: APIClient) -> None:
        response = api.get(MEMBERS)
        assert response.status_code == 200
        assert response.json() == {"results": [], "next": None}

    def test_members_with_descriptors_and_nulls(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        api.put(f"{MEMBERS}/{SHA256}", {"size": 42, "mediaType": LAYER}, format="json")
        # A member whose global hash is gone (a registry blob DELETE leaves exactly this).
        redis_client.sadd(MEMBERSHIP, SHA256_B)
        redis_client.hset(f"repository::library/alpine::blobs::{SHA256_B}", "mediatype", OCTET)
        # A member without its repository hash: a miss under 3.x rules.
        redis_client.sadd(MEMBERSHIP, SHA384)
        redis_client.hset(f"blobs::{SHA384}", mapping={"digest": SHA384, "size": "3"})
        # Corrupt entries: a non-numeric size, and a global key of the wrong type.
        corrupt, wrong_type = digest_of(1), digest_of(2)
        link(redis_client, "library/alpine", corrupt)
        redis_client.hset(f"blobs::{corrupt}", "size", "x")
        link(redis_client, "library/alpine", wrong_type)
        redis_client.delete(f"blobs::{wrong_type}")
        redis_client.set(f"blobs::{wrong_type}", "oops")
        # Garbage that is no digest at all is still listed, with no descriptor.
        redis_client.sadd(MEMBERSHIP, "not-a-digest")

        response = api.get(MEMBERS)
        assert response.status_code == 200
        data = response.json()
        assert data["next"] is None
        assert sorted(data["results"], key=lambda item: item["digest"]) == sorted(
            [
                {"digest": SHA256, "descriptor": body(SHA256, 42, LAYER)},
                {"digest": SHA256_B, "descriptor": None},
                {"digest": SHA384, "descriptor": None},
                {"digest": corrupt, "descriptor": None},
                {"digest": wrong_type, "descriptor": None},
                {"digest": "not-a-digest", "descriptor": None},
            ],
            key=lambda item: item["digest"],
        )

    def test_repository_override_shows_as_the_scoped_stat_does(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        link(redis_client, "library/alpine", SHA256, 9)
        redis_client.hset(f"repository::library/alpine::blobs::{SHA256}", "mediatype", LAYER)
        assert api.get(MEMBERS).json() == {
            "results": [{"digest": SHA256, "descriptor": body(SHA256, 9, LAYER)}],
            "next": None,
        }
        assert api.get(f"{MEMBERS}/{SHA256}").json() == body(SHA256, 9, LAYER)

    def test_membership_key_of_the_wrong_type_is_409(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        redis_client.set(MEMBERSHIP, "x")
        response = api.get(MEMBERS)
        assert response.status_code == 409
        assert response.json()["errors"][0]["code"] == "DESCRIPTOR_CORRUPT"

    def test_pages_and_next_links(self, api: APIClient, redis_client: redis.Redis) -> None:
        digests = {digest_of(n) for n in range(250)}
        for digest in digests:
            link(redis_client, "library/alpine", digest)
        pages = walk(api, f"{MEMBERS}?page_size=100")
        seen = [item["digest"] for page in pages for item in page]
        assert set(seen) == digests
        assert all(item["descriptor"] is not None for page in pages for item in page)
        assert all(len(page) <= 100 for page in pages)
        assert len(pages) >= 3

    def test_next_is_absolute_and_keeps_the_page_size(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        for n in range(300):
            link(redis_client, "library/alpine", digest_of(n))
        data = api.get(f"{MEMBERS}/?page_size=10").json()
        parts = urlsplit(data["next"])
        assert (parts.scheme, parts.netloc, parts.path) == (
            "http",
            "testserver",
            "/api/repositories/library/alpine/blobs/",
        )
        query = parse_qs(parts.query)
        assert query["page_size"] == ["10"]
        assert re.fullmatch(r"[A-Za-z0-9_-]+", query["cursor"][0])
        assert len(data["results"]) == 10

    def test_default_page_size_is_100_and_pages_never_exceed_their_size(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        pipe = redis_client.pipeline()
        for n in range(3000):
            pipe.sadd(MEMBERSHIP, digest_of(n))
        pipe.execute()
        default = api.get(MEMBERS).json()
        assert len(default["results"]) == 100
        assert default["next"] is not None
        for size in (1, 7, 1000):
            page = api.get(f"{MEMBERS}?page_size={size}").json()
            assert len(page["results"]) == size
            assert page["next"] is not None

    def test_page_size_one_on_a_small_set(self, api: APIClient, redis_client: redis.Redis) -> None:
        # Redis 7.2+ keeps a small set as a listpack, which SSCAN answers whole whatever COUNT
        # says: the surplus waits in the cursor. Each page holds at most one member (the last
        # may be empty, where the walk's last buckets are) and each member comes exactly once.
        digests = {digest_of(n) for n in range(5)}
        for digest in digests:
            link(redis_client, "library/alpine", digest)
        first = api.get(f"{MEMBERS}?page_size=1").json()
        assert len(first["results"]) == 1
        pages = walk(api, f"{MEMBERS}?page_size=1")
        assert all(len(page) <= 1 for page in pages)
        assert sorted(item["digest"] for page in pages for item in page) == sorted(digests)

    @pytest.mark.parametrize("path", [MEMBERS, f"{MEMBERS}/{SHA256}"])
    def test_a_name_with_a_newline_is_refused_as_a_name(self, api: APIClient, path: str) -> None:
        response = api.get(path.replace("library/alpine", "library/al%0Apine"))
        assert response.status_code == 400
        assert response.json() == envelope(
            "NAME_INVALID", "invalid reference format: 'library/al\\npine' is not a repository name"
        )

    def test_empty_cursor_is_the_start(self, api: APIClient, redis_client: redis.Redis) -> None:
        link(redis_client, "library/alpine", SHA256, 5)
        assert api.get(f"{MEMBERS}?cursor=").json() == api.get(MEMBERS).json()


@pytest.mark.parametrize("url", [MEMBERS, "/api/repositories"])
@pytest.mark.parametrize(
    ("query", "code", "message", "parameter"),
    [
        ("cursor=abc", "CURSOR_INVALID", "cursor must be the cursor of a previous page's next "
         "link, got 'abc'", "cursor"),
        ("cursor=0", "CURSOR_INVALID", "cursor must be the cursor of a previous page's next "
         "link, got '0'", "cursor"),
        ("cursor=-1", "CURSOR_INVALID", "cursor must be the cursor of a previous page's next "
         "link, got '-1'", "cursor"),
        (f"cursor={2**64}", "CURSOR_INVALID", "cursor must be the cursor of a previous page's "
         f"next link, got '{2**64}'", "cursor"),
        ("cursor=%00", "CURSOR_INVALID", "cursor must be the cursor of a previous page's next "
         "link, got '\\x00'", "cursor"),
        # Well-formed tokens of another version and with unknown flags.
        ("cursor=AgAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "CURSOR_INVALID", "cursor must be the cursor of "
         "a previous page's next link, got 'AgAAAAAAAAAAAAAAAAAAAAAAAAAAAA'", "cursor"),
        ("cursor=AQAAAAAAAAAAAAAAAAAAAAAAAAAABA", "CURSOR_INVALID", "cursor must be the cursor of "
         "a previous page's next link, got 'AQAAAAAAAAAAAAAAAAAAAAAAAAAABA'", "cursor"),
        ("page_size=0", "PAGINATION_NUMBER_INVALID", "page_size must be a positive integer, got "
         "'0'", "page_size"),
        ("page_size=-5", "PAGINATION_NUMBER_INVALID", "page_size must be a positive integer, got "
         "'-5'", "page_size"),
        ("page_size=ten", "PAGINATION_NUMBER_INVALID", "page_size must be a positive integer, "
         "got 'ten'", "page_size"),
        ("page_size=2.5", "PAGINATION_NUMBER_INVALID", "page_size must be a positive integer, "
         "got '2.5'", "page_size"),
        ("page_size=1001", "PAGINATION_NUMBER_INVALID", "page_size must be at most 1000, got "
         "'1001'", "page_size"),
        ("page_size=100000", "PAGINATION_NUMBER_INVALID", "page_size must be at most 1000, got "
         "'100000'", "page_size"),
        ("page_size=01001", "PAGINATION_NUMBER_INVALID", "page_size must be at most 1000, got "
         "'01001'", "page_size"),
        (f"page_size={'9' * 5000}", "PAGINATION_NUMBER_INVALID", "page_size must be at most "
         f"1000, got '{'9' * 40}'", "page_size"),
    ],
)
def test_bad_cursor_or_page_size_is_400(
    api: APIClient, url: str, query: str, code: str, message: str, parameter: str
) -> None:
    response = api.get(f"{url}?{query}")
    assert response.status_code == 400
    assert response.json() == envelope(code, message, {"parameter": parameter})


def test_page_size_1000_and_leading_zeros_are_accepted(api: APIClient) -> None:
    assert api.get(f"{MEMBERS}?page_size=1000").status_code == 200
    assert api.get(f"{MEMBERS}?page_size=0001000").status_code == 200


class TestRepositories:
    def test_empty(self, api: APIClient) -> None:
        assert api.get("/api/repositories").json() == {"results": [], "next": None}

    def test_names_and_counts_only_from_membership_sets(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        link(redis_client, "library/alpine", SHA256)
        link(redis_client, "library/alpine", SHA256_B)
        link(redis_client, "team/blobs/app", SHA256)
        link(redis_client, "[::1]:5000/app", SHA384)
        redis_client.hset(f"blobs::{digest_of(7)}", mapping={"digest": digest_of(7), "size": 1})
        # Not membership sets: a key of another type, and an orphaned repository hash.
        redis_client.set("repository::broken::blobs", "x")
        # Sets whose name the registry would never route: every other route refuses them.
        for name in (b"Bad Name", b"*", b"UPPER", b"\xff\xfe/app", b"a" * 64, b"", b"x" * 300):
            redis_client.sadd(b"repository::" + name + b"::blobs", SHA256)
        redis_client.hset(f"repository::gone::blobs::{SHA256}", "mediatype", OCTET)
        data = api.get("/api/repositories").json()
        assert data["next"] is None
        assert sorted(data["results"], key=lambda item: item["name"]) == [
            {"name": "[::1]:5000/app", "members": 1},
            {"name": "library/alpine", "members": 2},
            {"name": "team/blobs/app", "members": 1},
        ]

    def test_pages(self, api: APIClient, redis_client: redis.Redis) -> None:
        names = {f"org/repo{n}" for n in range(250)}
        for name in names:
            link(redis_client, name, SHA256)
        pages = walk(api, "/api/repositories?page_size=40")
        seen = [item["name"] for page in pages for item in page]
        assert set(seen) == names
        assert all(item["members"] == 1 for page in pages for item in page)
        assert all(len(page) <= 40 for page in pages)
        assert len(pages) >= 7

    def test_sparse_keyspace_still_ends(self, api: APIClient, redis_client: redis.Redis) -> None:
        pipe = redis_client.pipeline()
        for n in range(20_000):
            pipe.hset(f"blobs::{digest_of(n)}", mapping={"digest": digest_of(n), "size": 1})
        pipe.execute()
        link(redis_client, "only/one", SHA256)
        pages = walk(api, "/api/repositories?page_size=10", limit=200)
        assert [item for page in pages for item in page] == [{"name": "only/one", "members": 1}]


class TestWalkUnderConcurrentWrites:
    """SCAN's guarantee, through the API: what is present for the whole walk appears."""

    def test_members(self, api: APIClient, redis_client: redis.Redis) -> None:
        rng = random.Random(3)
        stable = {digest_of(n) for n in range(400)}
        volatile = [digest_of(n) for n in range(400, 800)]
        for digest in stable | set(volatile):
            link(redis_client, "library/alpine", digest)
        fresh = iter(range(800, 100_000))
        removed: set[str] = set()
        added: set[str] = set()

        def churn(pages_so_far: int) -> None:
            # Removals shrink the table and additions grow it, so rehashing happens mid-walk.
            for _ in range(15):
                if volatile:
                    victim = volatile.pop(rng.randrange(len(volatile)))
                    redis_client.srem(MEMBERSHIP, victim)
                    removed.add(victim)
            for _ in range(60):
                digest = digest_of(next(fresh))
                link(redis_client, "library/alpine", digest)
                added.add(digest)

        pages = walk(api, f"{MEMBERS}?page_size=25", between=churn, limit=500)
        seen = {item["digest"] for page in pages for item in page}
        assert stable <= seen
        assert removed and added, "the walk saw no concurrent writes"
        assert redis_client.scard(MEMBERSHIP) == 400 + len(volatile) + len(added)
        # Nothing is invented: every digest listed was a member at some point.
        assert seen <= stable | set(volatile) | removed | added

    def test_repositories(self, api: APIClient, redis_client: redis.Redis) -> None:
        stable = {f"stable/r{n}" for n in range(300)}
        for name in stable:
            link(redis_client, name, SHA256)
        doomed = [f"doomed/r{n}" for n in range(300)]
        for name in doomed:
            link(redis_client, name, SHA256)
        fresh = iter(range(100_000))

        def churn(pages_so_far: int) -> None:
            for _ in range(20):
                if doomed:
                    redis_client.delete(f"repository::{doomed.pop()}::blobs")
            for _ in range(80):
                link(redis_client, f"fresh/r{next(fresh)}", SHA256)

        pages = walk(api, "/api/repositories?page_size=30", between=churn, limit=500)
        seen = {item["name"] for page in pages for item in page}
        assert stable <= seen
        assert not doomed or len(pages) < 15
