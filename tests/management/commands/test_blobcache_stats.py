"""``blobcache_stats`` through call_command: exact numbers from one SCAN pass."""

from __future__ import annotations

import json

import redis

from blobcache import statistics
from blobcache.actor import command_user
from blobcache.models import CacheStatistics
from tests.helpers.commands import run
from tests.helpers.entries import NOT_LAYOUT


def layout_memory(client: redis.Redis) -> int:
    layout = [key for key in client.keys("*") if key not in NOT_LAYOUT]
    layout.remove("repository::foo/bar::blobs::garbage")
    return sum(client.memory_usage(key, samples=5) for key in layout)


def test_json(crowded: redis.Redis) -> None:
    outcome = run("blobcache_stats", "--format", "json")
    assert (outcome.status, outcome.stderr) == (0, "")
    assert json.loads(outcome.stdout) == {
        "descriptors": 4,
        "repositories": 3,
        "memberships": 6,
        "repository_descriptors": 6,
        "memory_bytes": layout_memory(crowded),
    }


def test_text_says_memory_is_sampled(crowded: redis.Redis) -> None:
    outcome = run("blobcache_stats")
    assert outcome.status == 0
    assert outcome.stdout == (
        "global descriptors:      4\n"
        "repositories:            3\n"
        "memberships:             6\n"
        "repository descriptors:  6\n"
        f"memory:                  {layout_memory(crowded)} bytes (MEMORY USAGE of the layout's "
        "keys; sets and hashes estimated from 5 sampled elements each)\n"
    )


def test_usage_error_exits_2(redis_client: redis.Redis) -> None:
    outcome = run("blobcache_stats", "--format", "csv")
    assert outcome.status == 2


def test_the_count_is_saved_as_the_commands(db: None, crowded: redis.Redis) -> None:
    outcome = run("blobcache_stats", "--format", "json")
    assert outcome.status == 0
    saved = statistics.latest()
    assert saved is not None
    assert json.loads(outcome.stdout) == {
        "descriptors": saved.descriptors,
        "repositories": saved.repositories,
        "memberships": saved.memberships,
        "repository_descriptors": saved.repository_hashes,
        "memory_bytes": saved.memory_bytes,
    }
    assert (saved.descriptors, saved.repositories, saved.memberships) == (4, 3, 6)
    assert (saved.interface, saved.user) == ("command", command_user())


def test_redis_down_saves_a_failed_count(db: None, stopped_redis: int) -> None:
    outcome = run("blobcache_stats")
    assert outcome.status == 3
    (row,) = CacheStatistics.objects.all()
    assert (row.state, row.interface) == ("failed", "command")
    assert row.error.startswith(f"cannot reach Redis at 127.0.0.1:{stopped_redis}: ")
