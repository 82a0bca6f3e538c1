"""Bulk clears and statistics against a real Redis, asserting exact counts and exact state."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from blobcache import bulk, signals
from blobcache.bulk import ClearResult
from blobcache.cache import DescriptorCache
from blobcache.exceptions import (
    CacheUnavailable,
    DescriptorCorrupt,
    DigestInvalidLength,
    NameInvalid,
)
from tests.helpers.entries import (
    D1,
    D2,
    D3,
    D4,
    D5,
    LAYER,
    NOT_LAYOUT,
    UPPER,
    digest,
    put,
)
from tests.redis_state import dump


class TestClearRepositoryScope:
    def test_clears_members_hashes_and_orphans_and_keeps_the_rest(
        self, cache: DescriptorCache, populated: redis.Redis
    ) -> None:
        before = dump(populated)
        result = bulk.clear_repository_scope(cache, "foo/bar")
        # D1..D3 (membership and hash), D4 (membership only), D5 (hash only).
        assert result == ClearResult(cleared=5, keys_deleted=5, dry_run=False)
        assert result.as_dict() == {"cleared": 5, "keys_deleted": 5, "dry_run": False}
        gone = {
            "repository::foo/bar::blobs",
            *(f"repository::foo/bar::blobs::{d}" for d in (D1, D2, D3, D5)),
        }
        assert dump(populated) == {k: v for k, v in before.items() if k not in gone}
        assert populated.hgetall(f"blobs::{D1}") == {"digest": D1, "size": "10", "mediatype": LAYER}

    def test_dry_run_reports_the_real_numbers_and_changes_nothing(
        self, cache: DescriptorCache, populated: redis.Redis
    ) -> None:
        before = dump(populated)
        assert bulk.clear_repository_scope(cache, "foo/bar", dry_run=True) == ClearResult(
            5, 5, True
        )
        assert dump(populated) == before

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

    def test_without_the_sweep_hashes_without_membership_stay(
        self, cache: DescriptorCache, populated: redis.Redis
    ) -> None:
        dry = bulk.clear_repository_scope(cache, "foo/bar", dry_run=True, sweep=False)
        real = bulk.clear_repository_scope(cache, "foo/bar", sweep=False)
        # D1..D4 through the set; D5's hash has no membership and is left.
        assert dry == ClearResult(4, 4, True)
        assert real == ClearResult(4, 4, False)
        assert set(populated.keys("repository::foo/bar::*")) == {
            f"repository::foo/bar::blobs::{D5}",
            "repository::foo/bar::blobs::garbage",
        }

    def test_unknown_repository_clears_nothing(
        self, cache: DescriptorCache, populated: redis.Redis
    ) -> None:
        before = dump(populated)
        assert bulk.clear_repository_scope(cache, "no/such") == ClearResult(0, 0, False)
        assert dump(populated) == before

    @pytest.mark.parametrize("name", ["", "foo/Bar", "foo//bar", "a" * 64, "foo/bar:latest"])
    def test_invalid_name_is_rejected_before_redis(
        self, cache: DescriptorCache, populated: redis.Redis, name: str
    ) -> None:
        before = dump(populated)
        with pytest.raises(NameInvalid):
            bulk.clear_repository_scope(cache, name)
        assert dump(populated) == before

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


def survivors(client: redis.Redis) -> set[str]:
    return set(client.keys("*"))


class TestClearAll:
    def test_deletes_the_layout_and_nothing_else(
        self, cache: DescriptorCache, crowded: redis.Redis
    ) -> None:
        # Globals D1, D2, D3, D5; foo/bar: D1..D4 members, D5 orphan hash; foo/bar2 and foo/baz: D1.
        expected = ClearResult(cleared=4 + 5 + 1 + 1, keys_deleted=4 + 5 + 2 + 2, dry_run=False)
        assert bulk.clear_all(cache) == expected
        assert survivors(crowded) == set(NOT_LAYOUT) | {"repository::foo/bar::blobs::garbage"}

    @pytest.mark.parametrize("batch_size", [1, 3, 1000])
    def test_dry_run_reports_the_real_numbers(
        self, cache: DescriptorCache, crowded: redis.Redis, batch_size: int
    ) -> None:
        before = dump(crowded)
        dry = bulk.clear_all(cache, dry_run=True, batch_size=batch_size)
        assert dump(crowded) == before
        real = bulk.clear_all(cache, batch_size=batch_size)
        assert dry == ClearResult(11, 13, True)
        assert real == ClearResult(11, 13, False)

    def test_many_keys_in_small_batches(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        with redis_client.pipeline(transaction=False) as pipe:
            for n in range(3000):
                pipe.hset(f"blobs::{digest(n)}", mapping={"digest": digest(n), "size": n})
                repository = f"team/app{n % 7}"
                if n % 3:
                    pipe.sadd(f"repository::{repository}::blobs", digest(n))
                if n % 5:
                    pipe.hset(f"repository::{repository}::blobs::{digest(n)}", "mediatype", LAYER)
                pipe.set(f":1:session{n}", "x")
            pipe.execute()
        entries = 3000 + sum(1 for n in range(3000) if n % 3 or n % 5)
        layout_keys = 3000 + 7 + sum(1 for n in range(3000) if n % 5)
        seen: list[int] = []
        assert bulk.clear_all(cache, dry_run=True, batch_size=100) == ClearResult(
            entries, layout_keys, True
        )
        result = bulk.clear_all(cache, batch_size=100, progress=seen.append)
        assert result == ClearResult(entries, layout_keys, False)
        assert redis_client.dbsize() == 3000
        assert redis_client.keys("blobs*") == [] and redis_client.keys("repository*") == []
        # Progress counts keys scanned: each key that was not deleted by an earlier batch (hashes
        # go with their set) at least once.
        assert sum(seen) >= 3000 + 3000 + 7

    def test_interrupted_run_leaves_whole_entries_and_a_rerun_finishes(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        for n in range(200):
            put(cache, f"repo{n % 4}", digest(n))
        dry = bulk.clear_all(cache, dry_run=True)
        calls = 0

        def interrupt_after_a_while(done: int) -> None:
            nonlocal calls
            calls += 1
            if calls == 5:
                raise KeyboardInterrupt

        first = bulk.clear_all(cache, batch_size=20, progress=interrupt_after_a_while)
        assert first.interrupted
        assert 0 < first.keys_deleted < dry.keys_deleted
        for n in range(4):
            members = redis_client.smembers(f"repository::repo{n}::blobs")
            hashes = {
                key.rsplit("::", 1)[1]
                for key in redis_client.keys(f"repository::repo{n}::blobs::*")
            }
            assert members == hashes
        second = bulk.clear_all(cache)
        assert first.cleared + second.cleared == dry.cleared == 400
        assert first.keys_deleted + second.keys_deleted == dry.keys_deleted == 404
        assert redis_client.dbsize() == 0

    def test_a_membership_key_of_the_wrong_type_is_deleted(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.set("repository::bad::blobs", "x")
        redis_client.hset(f"repository::bad::blobs::{D1}", "mediatype", LAYER)
        redis_client.set(f"blobs::{D1}", "x")
        assert bulk.clear_all(cache, dry_run=True) == ClearResult(2, 3, True)
        assert bulk.clear_all(cache) == ClearResult(2, 3, False)
        assert redis_client.dbsize() == 0

    def test_redis_down_is_cache_unavailable(self, unreachable_cache: DescriptorCache) -> None:
        with pytest.raises(CacheUnavailable):
            bulk.clear_all(unreachable_cache)


class TestClearDigests:
    def test_global_clear_keeps_repository_keys(
        self, cache: DescriptorCache, crowded: redis.Redis
    ) -> None:
        crowded.hset(f"blobs::{D3}", "length", "10")  # a field the registry's clear leaves behind
        unknown: list[str] = []
        before = dump(crowded)
        result = bulk.clear_digests(cache, [D1, D4, D3, D5, D1], on_unknown=unknown.append)
        assert result == ClearResult(cleared=3, keys_deleted=2, dry_run=False, unknown=1)
        assert unknown == [D4]
        after = dump(crowded)
        assert set(before) - set(after) == {f"blobs::{D1}", f"blobs::{D5}"}
        assert crowded.hgetall(f"blobs::{D3}") == {"length": "10"}
        assert {k: v for k, v in before.items() if k in after and k != f"blobs::{D3}"} == {
            k: v for k, v in after.items() if k != f"blobs::{D3}"
        }

    def test_repository_clear_has_3_1_semantics(
        self, cache: DescriptorCache, crowded: redis.Redis
    ) -> None:
        unknown: list[str] = []
        # D1: membership, hash and global entry; D4: membership only; D5: not a member.
        result = bulk.clear_digests(
            cache, [D1, D4, D5], repository="foo/bar", on_unknown=unknown.append
        )
        assert result == ClearResult(cleared=3, keys_deleted=2, dry_run=False, unknown=1)
        assert unknown == [D5]
        assert sorted(crowded.smembers("repository::foo/bar::blobs")) == [D2, D3]
        assert crowded.exists(f"repository::foo/bar::blobs::{D1}", f"blobs::{D1}") == 0
        assert crowded.exists(f"repository::foo/bar::blobs::{D5}", f"blobs::{D5}") == 2
        assert crowded.sismember("repository::foo/bar2::blobs", D1)

    def test_repository_clear_of_the_last_members_deletes_the_set(
        self, cache: DescriptorCache, crowded: redis.Redis
    ) -> None:
        before = dump(crowded)
        dry = bulk.clear_digests(cache, [D1], repository="foo/baz", dry_run=True)
        assert dump(crowded) == before
        real = bulk.clear_digests(cache, [D1], repository="foo/baz")
        # The repository entry and the global entry; the hash, the global key and the set.
        assert dry == ClearResult(2, 3, True)
        assert real == ClearResult(2, 3, False)
        assert crowded.keys("repository::foo/baz*") == []

    def test_everywhere_counts_each_holder(
        self, cache: DescriptorCache, crowded: redis.Redis
    ) -> None:
        # A hash whose repository lost its set (evicted by allkeys-lru) is found too.
        crowded.hset(f"repository::evicted/app::blobs::{D1}", "mediatype", LAYER)
        before = dump(crowded)
        dry = bulk.clear_digests(cache, [D1], everywhere=True, dry_run=True)
        assert dump(crowded) == before
        real = bulk.clear_digests(cache, [D1], everywhere=True)
        # Global, foo/bar, foo/bar2, foo/baz, evicted/app; keys: 1 + 4 hashes + 2 emptied sets.
        assert dry == ClearResult(5, 7, True)
        assert real == ClearResult(5, 7, False)
        assert crowded.keys(f"*{D1}") == ["repository::Foo Bar::blobs::" + D1]
        assert crowded.exists("repository::foo/bar2::blobs", "repository::foo/baz::blobs") == 0

    def test_everywhere_on_three_repositories_and_global_clears_four(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        for repository in ("a/one", "a/two", "a/three"):
            put(cache, repository, D1)
            put(cache, repository, D2)
        result = bulk.clear_digests(cache, [D1, D3], everywhere=True, on_unknown=print)
        assert result == ClearResult(cleared=4, keys_deleted=4, dry_run=False, unknown=1)
        assert sorted(redis_client.keys("*")) == sorted(
            [f"blobs::{D2}"]
            + [f"repository::{r}::blobs" for r in ("a/one", "a/two", "a/three")]
            + [f"repository::{r}::blobs::{D2}" for r in ("a/one", "a/two", "a/three")]
        )

    @pytest.mark.parametrize("batch_size", [1, 2, 1000])
    def test_everywhere_in_batches_dry_and_real_agree(
        self, cache: DescriptorCache, redis_client: redis.Redis, batch_size: int
    ) -> None:
        digests = [digest(n) for n in range(12)]
        for n, member in enumerate(digests):
            for repository in ("x/a", "x/b", "x/c")[: n % 3 + 1]:
                put(cache, repository, member)
        redis_client.sadd("repository::x/c::blobs", digest(99))
        expected_entries = 12 + sum(n % 3 + 1 for n in range(12))
        dry = bulk.clear_digests(
            cache, digests, everywhere=True, dry_run=True, batch_size=batch_size
        )
        real = bulk.clear_digests(cache, digests, everywhere=True, batch_size=batch_size)
        # Keys: 12 globals, one hash per entry, and the sets of x/a and x/b (x/c keeps D5).
        assert dry == ClearResult(expected_entries, expected_entries + 2, True)
        assert real == ClearResult(expected_entries, expected_entries + 2, False)
        assert redis_client.keys("*") == ["repository::x/c::blobs"]

    def test_invalid_input_changes_nothing(
        self, cache: DescriptorCache, crowded: redis.Redis
    ) -> None:
        before = dump(crowded)
        with pytest.raises(DigestInvalidLength):
            bulk.clear_digests(cache, [D1, "sha256:abc"])
        with pytest.raises(NameInvalid):
            bulk.clear_digests(cache, [D1], repository="Foo/Bar")
        with pytest.raises(ValueError):
            bulk.clear_digests(cache, [D1], batch_size=0)
        assert dump(crowded) == before

    def test_a_corrupt_membership_key_is_reported(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.set("repository::bad::blobs", "x")
        with pytest.raises(DescriptorCorrupt):
            bulk.clear_digests(cache, [D1], repository="bad")
        assert redis_client.get("repository::bad::blobs") == "x"

    def test_signals_for_cleared_digests(
        self, cache: DescriptorCache, crowded: redis.Redis
    ) -> None:
        received: list[tuple[str, str | None]] = []

        def receiver(sender: Any, digest: str, repository: str | None, **kwargs: Any) -> None:
            received.append((digest, repository))

        signals.descriptor_cleared.connect(receiver)
        try:
            bulk.clear_digests(cache, [D1, D4], repository="foo/bar", dry_run=True)
            bulk.clear_digests(cache, [D1, D4, D5], repository="foo/bar")
        finally:
            signals.descriptor_cleared.disconnect(receiver)
        assert received == [(D1, "foo/bar"), (D4, "foo/bar")]


class TestClearEntries:
    """Many repository-scoped clears at once: the receiver's deletes."""

    def test_exact_state_counts_and_signals_across_batches(
        self, cache: DescriptorCache, crowded: redis.Redis
    ) -> None:
        received: list[tuple[str, str | None]] = []

        def receiver(sender: Any, digest: str, repository: str | None, **kwargs: Any) -> None:
            received.append((digest, repository))

        before = dump(crowded)
        pairs = [("foo/bar", D1), ("foo/bar2", D1), ("foo/bar", D4), ("foo/bar", D5)]
        done: list[int] = []
        signals.descriptor_cleared.connect(receiver)
        try:
            result = bulk.clear_entries(cache, pairs, batch_size=3, progress=done.append)
        finally:
            signals.descriptor_cleared.disconnect(receiver)
        # D5 is a hash without membership in foo/bar: a 3.1+ Clear leaves it (unknown).
        assert result == bulk.EntriesResult(cleared=3, unknown=1)
        assert done == [3, 1]
        assert received == [(D1, "foo/bar"), (D4, "foo/bar"), (D1, "foo/bar2")]
        after = dump(crowded)
        assert set(before) - set(after) == {
            f"blobs::{D1}",
            f"repository::foo/bar::blobs::{D1}",
            "repository::foo/bar2::blobs",
            f"repository::foo/bar2::blobs::{D1}",
        }
        assert crowded.smembers("repository::foo/bar::blobs") == {D2, D3}

    def test_a_corrupt_repository_is_reported_and_the_others_cleared(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        put(cache, "foo/bar", D1)
        redis_client.set("repository::bad::blobs", "x")
        corrupt: list[tuple[str, list[str]]] = []
        result = bulk.clear_entries(
            cache,
            [("bad", D1), ("bad", D2), ("foo/bar", D1)],
            on_corrupt=lambda name, digests, error: corrupt.append((name, list(digests))),
        )
        assert result == bulk.EntriesResult(cleared=1, corrupt=2)
        assert corrupt == [("bad", [D1, D2])]
        assert dump(redis_client) == {"repository::bad::blobs": ("string", "x", -1)}

    def test_a_stop_set_before_a_batch_ends_the_run_there(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        for member in (D1, D2, D3):
            put(cache, "foo/bar", member)
        stop = threading.Event()
        result = bulk.clear_entries(
            cache,
            [("foo/bar", D1), ("foo/bar", D2), ("foo/bar", D3)],
            batch_size=2,
            stop=stop,
            progress=lambda done: stop.set(),
        )
        assert result == bulk.EntriesResult(cleared=2, stopped=True)
        assert redis_client.smembers("repository::foo/bar::blobs") == {D3}

    def test_scripts_lost_by_a_restarted_server_are_run_again(
        self, cache: DescriptorCache, redis_client: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A primary that restarts between the load and the batch answers NOSCRIPT."""
        for member in (D1, D2):
            put(cache, "foo/bar", member)
        redis_client.script_flush()
        real_load = cache.client.script_load
        loads: list[str] = []

        def load_then_forget(script: Any) -> Any:
            sha = real_load(script)
            loads.append(sha)
            if len(loads) == 1:
                redis_client.script_flush()
            return sha

        monkeypatch.setattr(cache.client, "script_load", load_then_forget)
        result = bulk.clear_entries(cache, [("foo/bar", D1), ("foo/bar", D2)])
        assert result == bulk.EntriesResult(cleared=2)
        assert dump(redis_client) == {}

    def test_invalid_pairs_change_nothing(
        self, cache: DescriptorCache, crowded: redis.Redis
    ) -> None:
        before = dump(crowded)
        with pytest.raises(NameInvalid):
            bulk.clear_entries(cache, [("foo/bar", D1), ("Foo/Bar", D1)])
        with pytest.raises(DigestInvalidLength):
            bulk.clear_entries(cache, [("foo/bar", "sha256:abc")])
        assert dump(crowded) == before


class TestCacheStats:
    def test_counts_and_memory_of_the_layout_only(
        self, cache: DescriptorCache, crowded: redis.Redis
    ) -> None:
        layout = [f"blobs::{d}" for d in (D1, D2, D3, D5)]
        layout += [f"repository::{r}::blobs" for r in ("foo/bar", "foo/bar2", "foo/baz")]
        layout += [f"repository::foo/bar::blobs::{d}" for d in (D1, D2, D3, D5)]
        layout += [f"repository::{r}::blobs::{D1}" for r in ("foo/bar2", "foo/baz")]
        memory = sum(crowded.memory_usage(key, samples=5) for key in layout)
        stats = bulk.cache_stats(cache, batch_size=2)
        assert stats.as_dict() == {
            "descriptors": 4,
            "repositories": 3,
            "memberships": 6,
            "repository_descriptors": 6,
            "memory_bytes": memory,
        }

    def test_empty_database(self, cache: DescriptorCache, redis_client: redis.Redis) -> None:
        assert bulk.cache_stats(cache).as_dict() == {
            "descriptors": 0,
            "repositories": 0,
            "memberships": 0,
            "repository_descriptors": 0,
            "memory_bytes": 0,
        }
