"""Reconciliation against a synthetic storage tree and a real Redis: exact counts, exact state.

The tree has the layout read off a running registry 2.8.2 (see blobcache/storage/filesystem.py);
the interop tests run the same function against the real registry's storage, and
tests/storage/test_s3.py runs the same scenarios in a bucket.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import override_settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from blobcache import Descriptor, actor, signals
from blobcache.cache import DescriptorCache, get_descriptor_cache
from blobcache.exceptions import CacheUnavailable, NameInvalid
from blobcache.reconcile import (
    GLOBAL_DATA_MISSING,
    MEMBERSHIP_DATA_MISSING,
    MEMBERSHIP_UNLINKED,
    ORPHAN_REPOSITORY_HASH,
    ClearedEntry,
    reconcile,
)
from blobcache.storage import RegistryStorage, StorageInvalid, StorageUnavailable
from blobcache.store.cluster import ClusterStore
from blobcache.testing import (
    Topology,
    django_settings_for,
    flush,
    free_port,
    raw_client_for,
    start_cluster,
)
from tests.audit_state import audit_row, audit_rows
from tests.helpers.entries import D1, D2, D3, D4, D5, UPPER, digest
from tests.helpers.storage_tree import (
    ALPINE,
    APP,
    EXPECTED_REASONS,
    EXPECTED_STORAGE_REQUESTS,
    EXPECTED_WHOLE,
    OCTET,
    StorageTree,
    assert_same_outcome,
    by_reason,
    cache_entry,
    cache_sha512_alias,
    populate_stale,
)
from tests.redis_state import dump


@pytest.fixture()
def dead_cache() -> DescriptorCache:
    """A manager on a loopback port nothing listens on (connection refused at once)."""
    client = redis.Redis(
        host="127.0.0.1",
        port=free_port(),
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    return DescriptorCache(client)


def repository_keys(repository: str, key_digest: str) -> set[str]:
    return {f"repository::{repository}::blobs::{key_digest}"}


class TestReasons:
    def test_whole_database_clears_each_stale_entry_and_nothing_else(
        self, stale: redis.Redis, tree: StorageTree
    ) -> None:
        before = dump(stale)
        result = reconcile(tree.root)

        assert by_reason(result) == EXPECTED_WHOLE
        assert result.counts == EXPECTED_REASONS
        assert result.cleared == 5
        # Keys: team/app's D1 and D4 hashes, alpine's D2 hash, the D2 and D5 global hashes.
        assert result.keys_deleted == 5
        assert (result.dry_run, result.interrupted, result.skipped) == (False, False, 0)
        assert result.storage_requests == EXPECTED_STORAGE_REQUESTS
        after = dump(stale)
        gone = {
            f"repository::{APP}::blobs::{D1}",
            f"repository::{APP}::blobs::{D4}",
            f"repository::{ALPINE}::blobs::{D2}",
            f"blobs::{D2}",
            f"blobs::{D5}",
        }
        assert set(before) - set(after) == gone
        assert set(after) - set(before) == set()
        assert stale.smembers(f"repository::{ALPINE}::blobs") == {D1}
        assert stale.smembers(f"repository::{APP}::blobs") == {D3}
        for key in set(after) - {f"repository::{ALPINE}::blobs", f"repository::{APP}::blobs"}:
            assert after[key] == before[key]

    def test_a_revision_link_backs_a_manifest_member(
        self, cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        cache_entry(cache, APP, D1)
        tree.blob(D1)
        tree.revision(APP, D1)
        before = dump(redis_client)
        assert reconcile(tree.root).cleared == 0
        assert dump(redis_client) == before

    def test_member_without_hash_and_set_emptied(
        self, cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        redis_client.sadd(f"repository::{APP}::blobs", D1, D2)
        redis_client.hset(f"repository::{APP}::blobs::{D2}", "mediatype", OCTET)
        result = reconcile(tree.root, repository=APP)
        assert by_reason(result) == [(MEMBERSHIP_UNLINKED, APP, D1), (MEMBERSHIP_UNLINKED, APP, D2)]
        # D2's hash and the set, emptied by its last member.
        assert result.keys_deleted == 2
        assert dump(redis_client) == {}

    def test_global_entry_keeps_foreign_fields_like_the_registry_clear(
        self, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": "3", "length": "3"})
        # A legacy hash without descriptor fields is no entry: nothing to clear.
        redis_client.hset(f"blobs::{D2}", mapping={"length": "3"})
        result = reconcile(tree.root)
        assert by_reason(result) == [(GLOBAL_DATA_MISSING, None, D1)]
        assert result.keys_deleted == 0
        assert redis_client.hgetall(f"blobs::{D1}") == {"length": "3"}
        assert redis_client.hgetall(f"blobs::{D2}") == {"length": "3"}

    def test_alias_entry_is_backed_by_its_canonical_digest(
        self, cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        alias = digest(7, "sha384")
        cache.set_descriptor(alias, Descriptor(D1, 10, OCTET))
        tree.blob(D1)
        before = dump(redis_client)
        assert reconcile(tree.root).cleared == 0
        assert dump(redis_client) == before

    def test_alias_link_names_the_blob_whose_data_backs_the_member(
        self, cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        # A push of D1's content under its sha512 digest, as the registry stores it: the data
        # and a link under sha256, and the sha512 link holding the sha256 digest.
        tree.pushed(APP, D1)
        alias = cache_sha512_alias(cache, tree)
        before = dump(redis_client)
        assert f"repository::{APP}::blobs::{alias}" in before
        result = reconcile(tree.root)
        assert (result.cleared, result.keys_deleted) == (0, 0)
        assert dump(redis_client) == before

    def test_alias_link_whose_canonical_data_is_gone_is_cleared(
        self, cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        alias = cache_sha512_alias(cache, tree)
        tree.layer(APP, D1)
        tree.blob(alias)  # data under the alias's own path does not back a link naming D1
        result = reconcile(tree.root, repository=APP)
        assert by_reason(result) == [
            (MEMBERSHIP_DATA_MISSING, APP, D1),
            (MEMBERSHIP_DATA_MISSING, APP, alias),
        ]

    def test_healthy_cache_is_untouched(
        self, cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        for key_digest in (D1, D2, D3):
            cache_entry(cache, ALPINE, key_digest)
            tree.pushed(ALPINE, key_digest)
        cache_entry(cache, None, D4)
        tree.blob(D4)
        redis_client.set("blobs:other", "x")
        redis_client.hset("repository::Not A Name::blobs::x", "a", "b")
        before = dump(redis_client)
        for dry_run in (True, False):
            result = reconcile(tree.root, dry_run=dry_run)
            assert result.summary() == {
                "cleared": 0,
                "keys_deleted": 0,
                "dry_run": dry_run,
                "repository": None,
                "reasons": dict.fromkeys(
                    [
                        MEMBERSHIP_UNLINKED,
                        MEMBERSHIP_DATA_MISSING,
                        ORPHAN_REPOSITORY_HASH,
                        GLOBAL_DATA_MISSING,
                    ],
                    0,
                ),
                "skipped": 0,
                # A link and a data check per repository entry, a data check per global one.
                "storage_requests": 3 * 2 + 4,
            }
        assert dump(redis_client) == before

    def test_what_cannot_be_checked_is_skipped_and_kept(
        self, cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        redis_client.sadd(f"repository::{APP}::blobs", UPPER, D1)
        redis_client.set(f"repository::{ALPINE}::blobs", "not a set")
        result = reconcile(tree.root)
        assert by_reason(result) == [(MEMBERSHIP_UNLINKED, APP, D1)]
        assert result.skipped == 2
        assert result.keys_deleted == 0
        assert redis_client.smembers(f"repository::{APP}::blobs") == {UPPER}
        assert redis_client.get(f"repository::{ALPINE}::blobs") == "not a set"


class TestDryRun:
    def test_reports_exactly_what_the_real_run_clears_and_changes_nothing(
        self, stale: redis.Redis, tree: StorageTree
    ) -> None:
        # A set emptied by the run, to check that its deletion is counted the same way.
        stale.sadd("repository::gone/repo::blobs", D5)
        before = dump(stale)
        dry = reconcile(tree.root, dry_run=True)
        assert dump(stale) == before
        real = reconcile(tree.root)
        assert_same_outcome(dry, real)
        assert by_reason(real) == sorted([*EXPECTED_WHOLE, (MEMBERSHIP_UNLINKED, "gone/repo", D5)])
        assert real.keys_deleted == 6
        assert stale.exists("repository::gone/repo::blobs") == 0

    def test_small_batches_give_the_same_result(
        self, cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        stale_digests = [digest(n) for n in range(100, 125)]
        kept = [digest(n) for n in range(200, 210)]
        for key_digest in stale_digests + kept:
            cache_entry(cache, APP, key_digest)
        for key_digest in kept:
            tree.pushed(APP, key_digest)
        for key_digest in stale_digests[:5]:
            redis_client.hset(f"repository::{ALPINE}::blobs::{key_digest}", "mediatype", OCTET)
        dry = reconcile(tree.root, dry_run=True, batch_size=3)
        real = reconcile(tree.root, batch_size=3)
        assert_same_outcome(dry, real)
        assert real.counts[MEMBERSHIP_UNLINKED] == 25
        assert real.counts[ORPHAN_REPOSITORY_HASH] == 5
        # Globals of the stale digests have no data either.
        assert real.counts[GLOBAL_DATA_MISSING] == 25
        assert redis_client.smembers(f"repository::{APP}::blobs") == set(kept)
        assert sorted(redis_client.keys(f"repository::{ALPINE}::*")) == []


class TestScope:
    def test_repository_scope_touches_only_that_repository(
        self, stale: redis.Redis, tree: StorageTree
    ) -> None:
        before = dump(stale)
        result = reconcile(tree.root, repository=APP)
        assert by_reason(result) == [
            (MEMBERSHIP_UNLINKED, APP, D1),
            (ORPHAN_REPOSITORY_HASH, APP, D4),
        ]
        assert result.repository == APP
        assert result.keys_deleted == 2
        after = dump(stale)
        assert set(before) - set(after) == {
            f"repository::{APP}::blobs::{D1}",
            f"repository::{APP}::blobs::{D4}",
        }
        # library/alpine's stale D2 and the stale globals stay for their own run.
        assert after[f"repository::{ALPINE}::blobs::{D2}"] == before[
            f"repository::{ALPINE}::blobs::{D2}"
        ]
        assert after[f"blobs::{D5}"] == before[f"blobs::{D5}"]

    def test_a_longer_name_with_the_same_prefix_is_another_repository(
        self, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        redis_client.hset(f"repository::{APP}-two::blobs::{D1}", "mediatype", OCTET)
        redis_client.hset(f"repository::{APP}/sub::blobs::{D1}", "mediatype", OCTET)
        before = dump(redis_client)
        assert reconcile(tree.root, repository=APP).cleared == 0
        assert dump(redis_client) == before


class TestSafety:
    def test_storage_is_checked_again_just_before_the_delete(
        self,
        cache: DescriptorCache,
        redis_client: redis.Redis,
        tree: StorageTree,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A push lands between the walk's check and the batch: its entry must survive."""
        cache_entry(cache, APP, D1)
        cache_entry(cache, APP, D2)
        tree.blob(D1)
        tree.blob(D2)
        real_linked_blob = RegistryStorage.linked_blob
        calls: list[str] = []

        def links_then_push(
            storage: RegistryStorage, repository: str, key_digest: str
        ) -> str | None:
            answer = real_linked_blob(storage, repository, key_digest)
            calls.append(key_digest)
            if key_digest == D1 and calls.count(D1) == 1:
                tree.layer(APP, D1)
            return answer

        monkeypatch.setattr(RegistryStorage, "linked_blob", links_then_push)
        result = reconcile(tree.root, repository=APP)
        assert by_reason(result) == [(MEMBERSHIP_UNLINKED, APP, D2)]
        # The walk's check and the re-check, for both (D1's hash still has its member, so the
        # orphan sweep leaves it to the set's walk).
        assert sorted(calls) == [D1, D1, D2, D2]
        assert redis_client.smembers(f"repository::{APP}::blobs") == {D1}
        assert redis_client.exists(f"repository::{APP}::blobs::{D1}") == 1

    def test_unreadable_storage_stops_the_run_before_any_clear(
        self, cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        cache_entry(cache, APP, D1)
        tree.layer(APP, D1)
        loop = tree.v2 / "blobs" / "sha256"
        loop.parent.mkdir(parents=True)
        os.symlink(loop, loop)
        before = dump(redis_client)
        with pytest.raises(StorageUnavailable, match="cannot read .*/blobs/sha256/00/"):
            reconcile(tree.root)
        assert dump(redis_client) == before

    def test_interrupt_stops_between_batches_with_exact_counts(
        self, cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        stale_digests = [digest(n) for n in range(100, 110)]
        for key_digest in stale_digests:
            cache_entry(cache, APP, key_digest)
        seen: list[int] = []

        def interrupt_after_first_batch(done: int) -> None:
            seen.append(done)
            raise KeyboardInterrupt

        result = reconcile(
            tree.root, repository=APP, batch_size=4, progress=interrupt_after_first_batch
        )
        assert result.interrupted is True
        assert seen == [4]
        assert result.cleared == 4
        assert result.summary()["interrupted"] is True
        left = redis_client.smembers(f"repository::{APP}::blobs")
        assert len(left) == 6
        # Every entry is whole or gone: each remaining member has its hash, no hash is orphaned.
        hash_keys = redis_client.keys(f"repository::{APP}::blobs::*")
        hashes = {key.rsplit("::", 1)[1] for key in hash_keys}
        assert hashes == left
        assert {e.digest for e in result.entries} == set(stale_digests) - left

        again = reconcile(tree.root, repository=APP)
        assert again.cleared == 6
        assert redis_client.exists(f"repository::{APP}::blobs") == 0


class TestValidation:
    @pytest.mark.parametrize(
        ("shape", "message"),
        [
            ("missing", "does not exist"),
            ("empty", "has no docker/registry/v2 folder"),
            ("file", "is not a directory"),
        ],
    )
    def test_bad_storage_root_changes_nothing(
        self, stale: redis.Redis, tmp_path: Path, shape: str, message: str
    ) -> None:
        root = tmp_path / shape
        if shape == "empty":
            root.mkdir()
        elif shape == "file":
            root.write_text("x")
        before = dump(stale)
        with pytest.raises(StorageInvalid, match=message):
            reconcile(root)
        assert dump(stale) == before

    def test_invalid_name_and_batch_size_are_rejected_before_redis(
        self, tree: StorageTree, dead_cache: DescriptorCache
    ) -> None:
        with pytest.raises(NameInvalid):
            reconcile(tree.root, repository="Team/App", cache=dead_cache)
        with pytest.raises(NameInvalid):
            reconcile(tree.root, repository="a//b", cache=dead_cache)
        with pytest.raises(ValueError, match="batch_size"):
            reconcile(tree.root, batch_size=0, cache=dead_cache)
        with pytest.raises(StorageInvalid):
            reconcile(tree.root / "nope", cache=dead_cache)

    def test_redis_down_is_cache_unavailable(
        self, tree: StorageTree, dead_cache: DescriptorCache
    ) -> None:
        with pytest.raises(CacheUnavailable, match=r"cannot reach Redis at 127\.0\.0\.1:\d+"):
            reconcile(tree.root, cache=dead_cache)


class TestReporting:
    def test_on_cleared_streams_entries_and_signals_fire_for_real_runs_only(
        self, stale: redis.Redis, tree: StorageTree
    ) -> None:
        heard: list[tuple[str, str | None]] = []

        def receiver(sender: Any, digest: str, repository: str | None, **kwargs: Any) -> None:
            heard.append((digest, repository))

        signals.descriptor_cleared.connect(receiver)
        try:
            streamed: list[ClearedEntry] = []
            dry = reconcile(tree.root, dry_run=True, on_cleared=streamed.append)
            assert heard == []
            assert dry.entries == ()
            assert sorted((e.reason, e.repository, e.digest) for e in streamed) == EXPECTED_WHOLE
            real = reconcile(tree.root)
        finally:
            signals.descriptor_cleared.disconnect(receiver)
        assert sorted(heard, key=str) == sorted(
            [(e.digest, e.repository) for e in real.entries], key=str
        )

    def test_as_dict(self, stale: redis.Redis, tree: StorageTree) -> None:
        result = reconcile(tree.root, repository=APP)
        assert result.as_dict() == {
            "cleared": 2,
            "keys_deleted": 2,
            "dry_run": False,
            "repository": APP,
            "reasons": {
                MEMBERSHIP_UNLINKED: 1,
                MEMBERSHIP_DATA_MISSING: 0,
                ORPHAN_REPOSITORY_HASH: 1,
                GLOBAL_DATA_MISSING: 0,
            },
            "skipped": 0,
            # D1: both link paths, walked and re-checked; D3: its link and data; D4: both link
            # paths, walked and re-checked.
            "storage_requests": 4 + 2 + 4,
            "digests": [
                {"reason": MEMBERSHIP_UNLINKED, "repository": APP, "digest": D1},
                {"reason": ORPHAN_REPOSITORY_HASH, "repository": APP, "digest": D4},
            ],
        }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    topology = start_cluster(tmp_path_factory.mktemp("cluster"), replicas_per_master=0)
    yield topology
    topology.stop()


def test_cluster_runs_the_same_reconciliation_in_per_slot_steps(
    cluster: Topology, tmp_path: Path
) -> None:
    """A set and its hashes live in different slots: no script spans them, same outcome."""
    client = raw_client_for(cluster)
    flush(client)
    storage = StorageTree(tmp_path / "storage")
    with override_settings(**django_settings_for(cluster)):
        cache = get_descriptor_cache()
        assert isinstance(cache.store, ClusterStore)
        populate_stale(cache, client, storage)
        client.sadd("repository::gone/repo::blobs", D5)
        before = dump(client)
        dry = reconcile(storage.root, dry_run=True, batch_size=2)
        assert dump(client) == before
        real = reconcile(storage.root, batch_size=2)
    assert_same_outcome(dry, real)
    assert by_reason(real) == sorted([*EXPECTED_WHOLE, (MEMBERSHIP_UNLINKED, "gone/repo", D5)])
    assert real.keys_deleted == 6
    after = dump(client)
    assert set(before) - set(after) == {
        f"repository::{APP}::blobs::{D1}",
        f"repository::{APP}::blobs::{D4}",
        f"repository::{ALPINE}::blobs::{D2}",
        "repository::gone/repo::blobs",
        f"blobs::{D2}",
        f"blobs::{D5}",
    }
    assert client.smembers(f"repository::{ALPINE}::blobs") == {D1}
    assert client.smembers(f"repository::{APP}::blobs") == {D3}
    client.close()


@pytest.mark.django_db
class TestAuditLog:
    """reconcile() records one row per call, for whichever actor is current."""

    def test_a_portals_own_call_is_python_and_the_console_is_admin(
        self, stale: redis.Redis, tree: StorageTree
    ) -> None:
        reconcile(tree.root, dry_run=True)
        with actor.acting_as(actor.ADMIN, "alice"):
            reconcile(tree.root, repository=APP)
        assert audit_rows() == [
            audit_row(
                "reconcile",
                cleared=5,
                keys_deleted=5,
                counts={**EXPECTED_REASONS, "skipped": 0},
                dry_run=True,
            ),
            audit_row(
                "reconcile",
                interface="admin",
                user="alice",
                scope="repository",
                repository=APP,
                cleared=2,
                keys_deleted=2,
                counts={
                    MEMBERSHIP_UNLINKED: 1,
                    MEMBERSHIP_DATA_MISSING: 0,
                    ORPHAN_REPOSITORY_HASH: 1,
                    GLOBAL_DATA_MISSING: 0,
                    "skipped": 0,
                },
            ),
        ]

    def test_an_interrupted_run_has_the_counts_it_reached(
        self, cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        for key_digest in [digest(n) for n in range(100, 110)]:
            cache_entry(cache, APP, key_digest)

        def interrupt(done: int) -> None:
            raise KeyboardInterrupt

        assert reconcile(tree.root, repository=APP, batch_size=4, progress=interrupt).interrupted
        (entry,) = audit_rows()
        assert (entry["outcome"], entry["cleared"], entry["keys_deleted"]) == ("interrupted", 4, 4)
        assert entry["counts"][MEMBERSHIP_UNLINKED] == 4
        assert redis_client.scard(f"repository::{APP}::blobs") == 6

    def test_failures_are_recorded_with_their_outcome(
        self, tree: StorageTree, tmp_path: Path, dead_cache: DescriptorCache
    ) -> None:
        with pytest.raises(StorageInvalid):
            reconcile(tmp_path / "nope", cache=dead_cache)
        with pytest.raises(NameInvalid):
            reconcile(tree.root, repository="Team/App", cache=dead_cache)
        with pytest.raises(CacheUnavailable):
            reconcile(tree.root, cache=dead_cache, dry_run=True)
        outcomes = [(row["outcome"], row["repository"], row["dry_run"]) for row in audit_rows()]
        assert outcomes == [
            ("invalid", "", False),
            ("invalid", "Team/App", False),
            ("unavailable", "", True),
        ]
        (_, _, down) = audit_rows()
        assert down["detail"].startswith("cannot reach Redis at 127.0.0.1:")
        assert (down["cleared"], down["keys_deleted"]) == (0, 0)
