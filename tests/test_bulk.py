"""Bulk clears and statistics against a real Redis, asserting exact counts and exact state."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from blobcache import Descriptor, bulk, signals
from blobcache.bulk import ClearResult
from blobcache.cache import DescriptorCache
from blobcache.exceptions import CacheUnavailable, NameInvalid

LAYER = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"


def digest(number: int, algorithm: str = "sha256") -> str:
    """A valid digest made from a number, easy to read in a failing assertion."""
    length = {"sha256": 64, "sha384": 96, "sha512": 128}[algorithm]
    return f"{algorithm}:{number:0{length}x}"


D1, D2, D3, D4, D5 = (digest(n) for n in range(1, 6))
UPPER = "sha256:" + "AB" * 32  # written by registries 2.3 to 2.8.2, invalid for go-digest 1.0


def dump_redis(client: redis.Redis) -> dict[str, Any]:
    """Every key with its type and full value: two dumps compare equal only if nothing changed."""
    state: dict[str, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "hash":
            value: Any = client.hgetall(key)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "string":
            value = client.get(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        else:
            value = client.dump(key)
        state[key] = (kind, value)
    return state


def put(cache: DescriptorCache, repository: str | None, key_digest: str, size: int = 10) -> None:
    target = cache if repository is None else cache.repository_scoped(repository)
    target.set_descriptor(key_digest, Descriptor(key_digest, size, LAYER))


@pytest.fixture()
def populated(cache: DescriptorCache, redis_client: redis.Redis) -> redis.Redis:
    """Two repositories, global-only entries, and the stale shapes older registries leave."""
    for member in (D1, D2, D3):
        put(cache, "foo/bar", member)
    put(cache, "foo/bar2", D1)
    put(cache, None, D5)
    # A member without its hash (registry < 3.1 repository clear), a hash without membership.
    redis_client.sadd("repository::foo/bar::blobs", D4)
    redis_client.hset(f"repository::foo/bar::blobs::{D5}", "mediatype", CONFIG)
    # Not the layout: an invalid digest suffix, and keys of other apps.
    redis_client.hset("repository::foo/bar::blobs::garbage", "mediatype", CONFIG)
    redis_client.set("blobs:other", "x")
    return redis_client


class TestClearRepositoryScope:
    def test_clears_members_hashes_and_orphans_and_keeps_the_rest(
        self, cache: DescriptorCache, populated: redis.Redis
    ) -> None:
        before = dump_redis(populated)
        result = bulk.clear_repository_scope(cache, "foo/bar")
        # D1..D3 (membership and hash), D4 (membership only), D5 (hash only).
        assert result == ClearResult(cleared=5, keys_deleted=5, dry_run=False)
        assert result.as_dict() == {"cleared": 5, "keys_deleted": 5, "dry_run": False}
        gone = {
            "repository::foo/bar::blobs",
            *(f"repository::foo/bar::blobs::{d}" for d in (D1, D2, D3, D5)),
        }
        assert dump_redis(populated) == {k: v for k, v in before.items() if k not in gone}
        assert populated.hgetall(f"blobs::{D1}") == {"digest": D1, "size": "10", "mediatype": LAYER}

    def test_dry_run_reports_the_real_numbers_and_changes_nothing(
        self, cache: DescriptorCache, populated: redis.Redis
    ) -> None:
        before = dump_redis(populated)
        assert bulk.clear_repository_scope(cache, "foo/bar", dry_run=True) == ClearResult(
            5, 5, True
        )
        assert dump_redis(populated) == before

    @pytest.mark.parametrize("batch_size", [1, 2, 1000])
    def test_batch_size_does_not_change_the_outcome(
        self, cache: DescriptorCache, populated: redis.Redis, batch_size: int
    ) -> None:
        seen: list[int] = []
        result = bulk.clear_repository_scope(
            cache, "foo/bar", batch_size=batch_size, progress=seen.append
        )
        assert result == ClearResult(5, 5, False)
        assert sum(seen) == 4  # the members walked: D1..D4
        assert populated.exists("repository::foo/bar::blobs") == 0
        assert populated.keys("repository::foo/bar::*") == ["repository::foo/bar::blobs::garbage"]

    def test_large_set_in_batches(self, cache: DescriptorCache, redis_client: redis.Redis) -> None:
        members = [digest(n) for n in range(2500)]
        redis_client.sadd("repository::big::blobs", *members)
        with redis_client.pipeline() as pipe:
            for member in members[:2000]:
                pipe.hset(f"repository::big::blobs::{member}", "mediatype", LAYER)
            pipe.execute()
        dry = bulk.clear_repository_scope(cache, "big", dry_run=True, batch_size=300)
        real = bulk.clear_repository_scope(cache, "big", batch_size=300)
        assert dry == ClearResult(2500, 2001, True)
        assert real == ClearResult(2500, 2001, False)
        assert redis_client.dbsize() == 0

    def test_unknown_repository_clears_nothing(
        self, cache: DescriptorCache, populated: redis.Redis
    ) -> None:
        before = dump_redis(populated)
        assert bulk.clear_repository_scope(cache, "no/such") == ClearResult(0, 0, False)
        assert dump_redis(populated) == before

    @pytest.mark.parametrize("name", ["", "foo/Bar", "foo//bar", "a" * 64, "foo/bar:latest"])
    def test_invalid_name_is_rejected_before_redis(
        self, cache: DescriptorCache, populated: redis.Redis, name: str
    ) -> None:
        before = dump_redis(populated)
        with pytest.raises(NameInvalid):
            bulk.clear_repository_scope(cache, name)
        assert dump_redis(populated) == before

    def test_glob_characters_in_an_ipv6_name_are_escaped(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        # Unescaped, the pattern's "[::1]" would be a character class matching "1:5000/foo".
        redis_client.hset(f"repository::[::1]:5000/foo::blobs::{D1}", "mediatype", LAYER)
        redis_client.hset(f"repository::1:5000/foo::blobs::{D2}", "mediatype", LAYER)
        assert bulk.clear_repository_scope(cache, "[::1]:5000/foo") == ClearResult(1, 1, False)
        assert redis_client.keys("*") == [f"repository::1:5000/foo::blobs::{D2}"]

    def test_members_that_are_not_digests_go_with_the_set_uncounted(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.sadd("repository::old::blobs", UPPER, D1)
        redis_client.hset(f"repository::old::blobs::{UPPER}", "mediatype", LAYER)
        redis_client.hset(f"repository::old::blobs::{D1}", "mediatype", LAYER)
        assert bulk.clear_repository_scope(cache, "old", dry_run=True) == ClearResult(1, 2, True)
        assert bulk.clear_repository_scope(cache, "old") == ClearResult(1, 2, False)
        # The hash under an invalid digest is not a key of the layout: it stays.
        assert redis_client.keys("*") == [f"repository::old::blobs::{UPPER}"]

    def test_a_membership_key_of_the_wrong_type_is_deleted(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.set("repository::bad::blobs", "not a set")
        redis_client.hset(f"repository::bad::blobs::{D1}", "mediatype", LAYER)
        assert bulk.clear_repository_scope(cache, "bad", dry_run=True) == ClearResult(1, 2, True)
        assert bulk.clear_repository_scope(cache, "bad") == ClearResult(1, 2, False)
        assert redis_client.dbsize() == 0

    def test_signal_is_sent_after_a_real_clear_only(
        self, cache: DescriptorCache, populated: redis.Redis
    ) -> None:
        received: list[dict[str, Any]] = []

        def receiver(sender: Any, **kwargs: Any) -> None:
            received.append(kwargs)

        signals.repository_cleared.connect(receiver)
        try:
            bulk.clear_repository_scope(cache, "foo/bar", dry_run=True)
            bulk.clear_repository_scope(cache, "no/such")
            assert received == []
            bulk.clear_repository_scope(cache, "foo/bar")
        finally:
            signals.repository_cleared.disconnect(receiver)
        assert received == [
            {"signal": signals.repository_cleared, "repository": "foo/bar", "cleared": 5}
        ]

    def test_interrupt_between_batches_returns_exact_partial_counts(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        members = [digest(n) for n in range(10)]
        for member in members:
            put(cache, "part", member)

        def interrupt(done: int) -> None:
            raise KeyboardInterrupt

        result = bulk.clear_repository_scope(cache, "part", batch_size=4, progress=interrupt)
        assert result == ClearResult(4, 4, False, interrupted=True)
        assert result.as_dict() == {
            "cleared": 4,
            "keys_deleted": 4,
            "dry_run": False,
            "interrupted": True,
        }
        left = redis_client.smembers("repository::part::blobs")
        assert len(left) == 6
        # Every remaining member still has its hash, and no hash outlived its membership.
        hashes = {key.rsplit("::", 1)[1] for key in redis_client.keys("repository::part::blobs::*")}
        assert hashes == left
        assert bulk.clear_repository_scope(cache, "part") == ClearResult(6, 7, False)
        assert redis_client.keys("repository::*") == []

    def test_redis_down_is_cache_unavailable(self, unreachable_cache: DescriptorCache) -> None:
        with pytest.raises(CacheUnavailable) as error:
            bulk.clear_repository_scope(unreachable_cache, "foo/bar")
        assert str(error.value).startswith("cannot reach Redis at 127.0.0.1:")


@pytest.fixture()
def unreachable_cache() -> DescriptorCache:
    """A manager on a loopback port where nothing listens."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, protocol=2)
    return DescriptorCache(client)
