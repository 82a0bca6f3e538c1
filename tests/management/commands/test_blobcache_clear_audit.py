"""The audit rows of ``blobcache_clear`` and ``blobcache_reconcile``: one per run, by mode."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from blobcache import audit
from blobcache.actor import command_user
from blobcache.cache import DescriptorCache, get_descriptor_cache
from blobcache.connection import describe_client
from tests.audit_state import audit_row, audit_rows
from tests.helpers.commands import run
from tests.helpers.entries import D1, D2, D5
from tests.helpers.storage_tree import APP, EXPECTED_REASONS, StorageTree

pytestmark = pytest.mark.django_db


def row(operation: str, **fields: Any) -> dict[str, Any]:
    """A row written by this test's OS user through a command."""
    return audit_row(operation, interface="command", user=command_user(), **fields)


def test_one_digest_is_a_clear(crowded: redis.Redis) -> None:
    assert run("blobcache_clear", D1).status == 0
    assert audit_rows() == [
        row(
            "clear",
            scope="global",
            digest=D1,
            cleared=1,
            keys_deleted=1,
            counts={"requested": 1, "unknown": 0},
        )
    ]


def test_several_digests_in_a_repository_with_an_unknown_one(crowded: redis.Redis) -> None:
    outcome = run("blobcache_clear", "--repository", "foo/baz", D1, D2, D2)
    assert outcome.status == 1
    assert audit_rows() == [
        row(
            "clear_digests",
            scope="repository",
            repository="foo/baz",
            cleared=2,
            keys_deleted=3,
            counts={"requested": 2, "unknown": 1},
            outcome="miss",
        )
    ]


def test_everywhere(crowded: redis.Redis) -> None:
    assert run("blobcache_clear", "--everywhere", D1, "--no-input").status == 0
    # D1: the global entry and its entries in foo/bar, foo/bar2 and foo/baz.
    assert audit_rows() == [
        row(
            "clear_everywhere",
            digest=D1,
            cleared=4,
            keys_deleted=6,
            counts={"requested": 1, "unknown": 0},
        )
    ]


def test_a_repository_scope_dry_then_real(crowded: redis.Redis) -> None:
    assert run("blobcache_clear", "--repository", "foo/bar", "--all", "--dry-run").status == 0
    assert run("blobcache_clear", "--repository", "foo/bar", "--all", "--no-input").status == 0
    # Without --sweep: members D1..D4 and the set; D5's hash without membership stays.
    fields = {"scope": "repository", "repository": "foo/bar", "cleared": 4, "keys_deleted": 4}
    assert audit_rows() == [
        row("clear_repository_scope", dry_run=True, **fields),
        row("clear_repository_scope", **fields),
    ]


def test_a_large_clear_is_one_row(cache: DescriptorCache, redis_client: redis.Redis) -> None:
    with redis_client.pipeline(transaction=False) as pipe:
        for number in range(3000):
            member = f"sha256:{number:064x}"
            pipe.hset(f"blobs::{member}", mapping={"digest": member, "size": 1})
        pipe.execute()
    outcome = run("blobcache_clear", "--all", "--no-input", "--batch-size", "100")
    assert outcome.status == 0
    assert redis_client.dbsize() == 0
    assert audit_rows() == [row("clear_all", cleared=3000, keys_deleted=3000)]


def test_a_refused_confirmation_is_recorded_and_nothing_changes(crowded: redis.Redis) -> None:
    before = crowded.dbsize()
    outcome = run("blobcache_clear", "--all")
    assert outcome.status == 1
    assert crowded.dbsize() == before
    assert audit_rows() == [
        row(
            "clear_all",
            outcome="refused",
            detail="refusing to delete every key of the registry's cache layout at "
            f"{describe_client(get_descriptor_cache().client)} without confirmation: "
            "standard input is not a terminal (pass --no-input to proceed)",
        )
    ]


@pytest.mark.standalone
def test_redis_down_is_unavailable(stopped_redis: int) -> None:
    outcome = run("blobcache_clear", "--repository", "foo/bar", "--all", "--no-input")
    assert outcome.status == 3
    (entry,) = audit_rows()
    assert (entry["operation"], entry["outcome"], entry["cleared"]) == (
        "clear_repository_scope",
        "unavailable",
        None,
    )
    assert entry["detail"].startswith(f"cannot reach Redis at 127.0.0.1:{stopped_redis}: ")


def test_usage_errors_write_no_row(redis_client: redis.Redis) -> None:
    assert run("blobcache_clear", "--all", D1).status == 2
    assert run("blobcache_clear", "not-a-digest").status == 2
    assert audit_rows() == []


def test_reconcile_dry_run_and_refusal(stale: redis.Redis, tree: StorageTree) -> None:
    root = str(tree.root)
    assert run("blobcache_reconcile", "--storage-root", root, "--dry-run").status == 0
    assert run("blobcache_reconcile", "--storage-root", root, "--repository", APP).status == 1
    (dry, refused) = audit_rows()
    assert dry == row(
        "reconcile",
        cleared=5,
        keys_deleted=5,
        counts={**EXPECTED_REASONS, "skipped": 0},
        dry_run=True,
    )
    assert refused["operation"] == "reconcile"
    assert (refused["scope"], refused["repository"], refused["outcome"]) == (
        "repository",
        APP,
        "refused",
    )
    assert refused["detail"].startswith("refusing to clear the cache entries of repository ")
    assert (refused["interface"], refused["user"]) == ("command", command_user())


def test_the_commands_actor_ends_with_the_command(crowded: redis.Redis) -> None:
    run("blobcache_clear", D5)
    audit.record("clear")
    assert [entry["interface"] for entry in audit_rows()] == ["command", "python"]
