"""The store contract, on every topology: both stores give the same replies and leave the same
Redis state; the Cluster store's steps are few."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from blobcache import Descriptor
from blobcache.cache import DescriptorCache
from blobcache.store.base import HASH_DELETED, MEMBERS, PRESENT, DigestsOutcome, ReconcileOutcome
from blobcache.store.cluster import ClusterStore
from blobcache.store.scripted import ScriptedStore
from blobcache.testing import Topology

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
OCTET = "application/octet-stream"
REPO = "team/app"
MEMBERSHIP = f"repository::{REPO}::blobs"


def put(cache: DescriptorCache, digest: str) -> None:
    cache.repository_scoped(REPO).set_descriptor(digest, Descriptor(digest, 1, OCTET))


def test_the_store_is_chosen_by_the_topology(cache: DescriptorCache, topology: Topology) -> None:
    expected = ClusterStore if topology.kind == "cluster" else ScriptedStore
    assert type(cache.store) is expected


def test_an_entry_met_twice_in_a_reconcile_batch_is_cleared_once(
    cache: DescriptorCache, redis_client: redis.Redis
) -> None:
    # SSCAN may return a member twice; the second time it is already gone.
    put(cache, D1)
    outcome = cache.store.reconcile_repository(MEMBERS, [(REPO, D1), (REPO, D1)], True)
    assert outcome == ReconcileOutcome(sets_deleted=1, flags=[PRESENT | HASH_DELETED, 0])
    assert redis_client.exists(MEMBERSHIP, f"{MEMBERSHIP}::{D1}") == 0
    assert redis_client.hgetall(f"blobs::{D1}") == {"digest": D1, "size": "1", "mediatype": OCTET}


@pytest.mark.parametrize("clear", [False, True], ids=["dry run", "clear"])
def test_a_stale_repository_hash_of_another_type_goes_whole(
    cache: DescriptorCache, redis_client: redis.Redis, clear: bool
) -> None:
    put(cache, D1)
    redis_client.delete(f"{MEMBERSHIP}::{D1}")
    redis_client.set(f"{MEMBERSHIP}::{D1}", "not a hash")
    redis_client.set(f"{MEMBERSHIP}::{D2}", "not a hash either")
    outcome = cache.store.reconcile_repository(MEMBERS, [(REPO, D1), (REPO, D2)], clear)
    assert outcome == ReconcileOutcome(
        sets_deleted=int(clear), flags=[PRESENT | HASH_DELETED, HASH_DELETED]
    )
    assert redis_client.exists(MEMBERSHIP, f"{MEMBERSHIP}::{D1}", f"{MEMBERSHIP}::{D2}") == (
        0 if clear else 3
    )


@pytest.mark.parametrize("clear", [False, True], ids=["dry run", "clear"])
def test_a_global_key_of_another_type_goes_whole_with_every_global_clear(
    cache: DescriptorCache, redis_client: redis.Redis, clear: bool
) -> None:
    # One policy for the registry's global Clear, wherever it runs: a corrupt entry is removed.
    redis_client.set(f"blobs::{D1}", "not a hash")
    redis_client.hset(f"blobs::{D2}", mapping={"digest": D2, "size": "1", "length": "1"})
    assert cache.store.reconcile_globals([f"blobs::{D1}", f"blobs::{D2}"], clear) == [
        PRESENT | HASH_DELETED,
        PRESENT,
    ]
    expected_after = {"length": "1"} if clear else {"digest": D2, "size": "1", "length": "1"}
    assert redis_client.hgetall(f"blobs::{D2}") == expected_after
    assert redis_client.exists(f"blobs::{D1}") == int(not clear)
    redis_client.set(f"blobs::{D1}", "not a hash")
    assert cache.store.clear_digests_global([D1], clear) == DigestsOutcome(
        keys_deleted=1, members_removed=0, entries=[1]
    )
    assert redis_client.exists(f"blobs::{D1}") == int(not clear)


@pytest.mark.cluster  # off Cluster a stat is one script, one reply (test_cache_roundtrips.py)
def test_a_cluster_repository_stat_waits_for_two_replies(
    cache: DescriptorCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(cache.store, ClusterStore)
    put(cache, D1)
    steps: list[list[str]] = []
    step = ClusterStore._step

    def counted(self: ClusterStore, commands: Any) -> list[Any]:
        steps.append([sent[0] for _, sent in commands])
        return step(self, commands)

    monkeypatch.setattr(ClusterStore, "_step", counted)
    scoped = cache.repository_scoped(REPO)
    assert scoped.stat(D1) == Descriptor(D1, 1, OCTET)
    assert steps == [["SISMEMBER"], ["HMGET", "HGET"]]
    steps.clear()
    scoped.set_descriptor(D1, Descriptor(D1, 1, OCTET))
    assert steps == [["EVALSHA", "HSET"], ["SADD"]]
    steps.clear()
    scoped.clear(D1)
    assert steps == [["SREM"], ["DEL", "EVALSHA"]]
