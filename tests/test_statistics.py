"""blobcache.statistics: the last full count saved in the database, running, done or failed."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis
from django.db import connection
from django.utils import timezone

from blobcache import actor, bulk, statistics
from blobcache.cache import DescriptorCache
from blobcache.exceptions import CacheUnavailable
from blobcache.models import CacheStatistics

pytestmark = pytest.mark.django_db

COUNTS = ("descriptors", "repositories", "memberships", "repository_hashes", "memory_bytes")


def counts(row: CacheStatistics) -> dict[str, Any]:
    return {name: getattr(row, name) for name in COUNTS}


def test_run_saves_the_counts_of_cache_stats(
    cache: DescriptorCache, populated: redis.Redis
) -> None:
    expected = bulk.cache_stats(cache)
    before = timezone.now()
    with actor.acting_as(actor.ADMIN, "alice"):
        row = statistics.run()
    (saved,) = CacheStatistics.objects.all()
    assert saved == row
    # populated: globals D1, D2, D3, D5; sets foo/bar (D1..D4) and foo/bar2 (D1); hashes for
    # foo/bar D1..D3 and the orphan D5, foo/bar2 D1 (the "garbage" hash is not the layout's).
    assert counts(saved) == {
        "descriptors": 4,
        "repositories": 2,
        "memberships": 5,
        "repository_hashes": 5,
        "memory_bytes": expected.memory_bytes,
    }
    assert expected.memory_bytes > 0
    assert (saved.state, saved.error, saved.interface, saved.user) == ("done", "", "admin", "alice")
    assert before <= saved.started_at <= saved.finished_at <= timezone.now()
    assert statistics.latest() == saved
    assert statistics.as_cache_stats(saved) == expected


def test_redis_down_saves_a_failed_row_and_raises(stopped_redis: int) -> None:
    with pytest.raises(CacheUnavailable):
        statistics.run()
    (row,) = CacheStatistics.objects.all()
    assert row.state == "failed"
    assert row.error.startswith(f"cannot reach Redis at 127.0.0.1:{stopped_redis}: ")
    assert counts(row) == dict.fromkeys(COUNTS)
    assert row.finished_at is not None
    assert (row.interface, row.user) == ("python", "")
    assert statistics.latest() is None


def test_start_is_a_running_row_attributed_to_the_actor() -> None:
    with actor.acting_as(actor.COMMAND, "ops (manage.py)"):
        row = statistics.start()
    row.refresh_from_db()
    assert (row.state, row.finished_at, row.interface, row.user) == (
        "running",
        None,
        "command",
        "ops (manage.py)",
    )
    assert counts(row) == dict.fromkeys(COUNTS)


def test_latest_is_the_last_done_count() -> None:
    stats = bulk.CacheStats(1, 2, 3, 4, 5)
    first = statistics.finish(statistics.start(), stats)
    second = statistics.finish(statistics.start(), bulk.CacheStats(6, 7, 8, 9, 10))
    statistics.start()  # still running
    statistics.fail(statistics.start(), "cannot reach Redis")
    assert statistics.latest() == second
    assert counts(first) == {
        "descriptors": 1,
        "repositories": 2,
        "memberships": 3,
        "repository_hashes": 4,
        "memory_bytes": 5,
    }


def test_as_cache_stats_refuses_an_unfinished_count() -> None:
    with pytest.raises(ValueError):
        statistics.as_cache_stats(statistics.start())


def test_the_count_survives_a_database_that_cannot_keep_it(
    cache: DescriptorCache, populated: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE blobcache_cachestatistics RENAME TO blobcache_elsewhere")
    with caplog.at_level(logging.ERROR, logger="blobcache.statistics"):
        row = statistics.run()
    assert row.pk is None
    assert (row.state, row.descriptors, row.repositories) == ("done", 4, 2)
    assert [record.levelno for record in caplog.records] == [logging.ERROR, logging.ERROR]
    assert "no such table: blobcache_cachestatistics" in caplog.records[-1].getMessage()
