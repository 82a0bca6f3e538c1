"""Label values of every counter, counted where the work happens (manager, bulk, reconcile).

Counters are process-wide, so each test compares a snapshot before and after and asserts the
exact set of series that changed and by how much.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from prometheus_client import CollectorRegistry, generate_latest
from redis import exceptions as redis_errors

from blobcache import Descriptor, actor, bulk, metrics
from blobcache.cache import DescriptorCache
from blobcache.exceptions import (
    BlobUnknown,
    CacheUnavailable,
    DescriptorCorrupt,
    DigestInvalid,
    NameInvalid,
)
from blobcache.reconcile import reconcile

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
OCTET = "application/octet-stream"

Series = tuple[str, tuple[tuple[str, str], ...]]


def snapshot() -> dict[Series, float]:
    """Every counter and histogram count (sums and buckets hold times, not counts)."""
    values: dict[Series, float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name.endswith(("_created", "_sum", "_bucket")):
                continue
            values[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return values


def changes(before: dict[Series, float]) -> dict[str, float]:
    """``name{label=value,...}`` of each series that changed, with its increase."""
    found: dict[str, float] = {}
    for key, value in snapshot().items():
        delta = value - before.get(key, 0.0)
        if delta:
            name, labels = key
            found[name + "{" + ",".join(f"{k}={v}" for k, v in labels) + "}"] = delta
    return found


def counted(work: Callable[[], Any]) -> dict[str, float]:
    before = snapshot()
    work()
    return changes(before)


def op(operation: str, scope: str, outcome: str) -> str:
    return f"blobcache_operations_total{{operation={operation},outcome={outcome},scope={scope}}}"


def duration(operation: str, scope: str) -> str:
    return f"blobcache_operation_duration_seconds_count{{operation={operation},scope={scope}}}"


def cleared(interface: str) -> str:
    return f"blobcache_cleared_entries_total{{interface={interface}}}"


def raises(kind: type[BaseException], work: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        with pytest.raises(kind):
            work()

    return run


def descriptor(digest: str, size: int = 5) -> Descriptor:
    return Descriptor(digest, size, OCTET)


class TestCacheManager:
    def test_global_stat_set_clear(self, cache: DescriptorCache, redis_client: Any) -> None:
        assert counted(raises(BlobUnknown, lambda: cache.stat(D1))) == {
            op("stat", "global", "miss"): 1, duration("stat", "global"): 1,
        }
        assert counted(lambda: cache.put(D1, descriptor(D1))) == {
            op("set", "global", "ok"): 1, duration("set", "global"): 1,
        }
        assert counted(lambda: cache.stat(D1)) == {
            op("stat", "global", "hit"): 1, duration("stat", "global"): 1,
        }
        # Invalid input never reaches Redis: counted, not timed.
        assert counted(raises(DigestInvalid, lambda: cache.stat("sha256:nope"))) == {
            op("stat", "global", "invalid"): 1,
        }
        assert counted(lambda: cache.clear(D1)) == {
            op("clear", "global", "ok"): 1, duration("clear", "global"): 1, cleared("python"): 1,
        }
        assert counted(raises(BlobUnknown, lambda: cache.clear(D1))) == {
            op("clear", "global", "miss"): 1, duration("clear", "global"): 1,
        }
        redis_client.hset(f"blobs::{D2}", mapping={"digest": D2, "size": "x"})
        assert counted(raises(DescriptorCorrupt, lambda: cache.stat(D2))) == {
            op("stat", "global", "corrupt"): 1, duration("stat", "global"): 1,
        }

    def test_repository_operations_and_the_interface_of_a_clear(
        self, cache: DescriptorCache
    ) -> None:
        scoped = cache.repository_scoped("team/app")
        assert counted(lambda: scoped.put(D1, descriptor(D1))) == {
            op("set", "repository", "ok"): 1, duration("set", "repository"): 1,
        }
        assert counted(lambda: scoped.stat(D1)) == {
            op("stat", "repository", "hit"): 1, duration("stat", "repository"): 1,
        }
        assert counted(raises(BlobUnknown, lambda: scoped.stat(D2))) == {
            op("stat", "repository", "miss"): 1, duration("stat", "repository"): 1,
        }

        def clear_through_api(digest: str) -> Callable[[], None]:
            def clear() -> None:
                with actor.acting_as(actor.API, "alice"):
                    scoped.clear(digest)

            return clear

        # A 3.1+ repository clear removes the global entry too: two entries, as bulk counts.
        assert counted(clear_through_api(D1)) == {
            op("clear", "repository", "ok"): 1, duration("clear", "repository"): 1,
            cleared("api"): 2,
        }
        scoped.put(D3, descriptor(D3))
        cache.clear(D3)
        assert counted(clear_through_api(D3)) == {
            op("clear", "repository", "ok"): 1, duration("clear", "repository"): 1,
            cleared("api"): 1,
        }
        with pytest.raises(NameInvalid):
            cache.repository_scoped("UPPER")

    def test_unreachable_redis_counts_unavailable_and_the_error_kind(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        client = redis.Redis(port=port, socket_connect_timeout=0.2, retry_on_error=[])
        cache = DescriptorCache(client)
        assert counted(raises(CacheUnavailable, lambda: cache.stat(D1))) == {
            op("stat", "global", "unavailable"): 1, duration("stat", "global"): 1,
            "blobcache_redis_errors_total{kind=connection}": 1,
        }

    def test_switched_off_nothing_is_counted(self, cache: DescriptorCache) -> None:
        with override_settings(BLOBCACHE={**settings.BLOBCACHE, "METRICS": False}):
            assert counted(lambda: cache.put(D1, descriptor(D1))) == {}
            assert counted(lambda: cache.clear(D1)) == {}
        assert counted(raises(BlobUnknown, lambda: cache.clear(D1))) == {
            op("clear", "global", "miss"): 1, duration("clear", "global"): 1,
        }


class TestBulk:
    def test_digest_clears_count_as_clears_and_entries(self, cache: DescriptorCache) -> None:
        scoped = cache.repository_scoped("team/app")
        for digest in (D1, D2):
            scoped.put(digest, descriptor(digest))

        def clear_by_command() -> None:
            with actor.acting_as(actor.COMMAND, "ops (manage.py)"):
                result = bulk.clear_digests(cache, [D1, D2, D3], repository="team/app")
            # A 3.1+ repository clear also removes the global entry: two entries per digest.
            assert (result.cleared, result.unknown) == (4, 1)

        assert counted(clear_by_command) == {
            op("clear", "repository", "ok"): 2,
            op("clear", "repository", "miss"): 1,
            cleared("command"): 4,
        }

    def test_scope_clear_counts_entries_and_a_dry_run_nothing(
        self, cache: DescriptorCache
    ) -> None:
        scoped = cache.repository_scoped("team/app")
        for digest in (D1, D2, D3):
            scoped.put(digest, descriptor(digest))
        assert counted(lambda: bulk.clear_repository_scope(cache, "team/app", dry_run=True)) == {}
        assert counted(lambda: bulk.clear_repository_scope(cache, "team/app")) == {
            cleared("python"): 3,
        }
        cache.put(D1, descriptor(D1))
        assert counted(lambda: bulk.clear_all(cache)) == {cleared("python"): 3}


class TestReconcile:
    def test_cleared_entries_count_as_reconcile_and_by_reason(
        self, cache: DescriptorCache, tmp_path: Path
    ) -> None:
        (tmp_path / "docker" / "registry" / "v2").mkdir(parents=True)
        cache.put(D1, descriptor(D1))
        cache.put(D2, descriptor(D2))

        def reconcile_through_api() -> None:
            with actor.acting_as(actor.API, "alice"):
                assert reconcile(tmp_path).cleared == 2

        assert counted(reconcile_through_api) == {
            cleared("reconcile"): 2,
            "blobcache_reconcile_cleared_total{reason=global_data_missing}": 2,
        }


class TestLabels:
    @pytest.mark.parametrize(
        ("error", "kind"),
        [
            (redis_errors.ConnectionError("refused"), "connection"),
            (ConnectionRefusedError(111, "refused"), "connection"),
            (redis_errors.TimeoutError("Timeout reading from socket"), "timeout"),
            (TimeoutError("timed out"), "timeout"),
            (redis_errors.ReadOnlyError("You can't write against a read only replica."),
             "readonly"),
            (redis_errors.ResponseError("READONLY You can't write against a read only replica."),
             "readonly"),
            (redis_errors.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
             "oom"),
            (redis_errors.ResponseError("OOM command not allowed when used memory > 'maxmemory'."),
             "oom"),
            (redis_errors.BusyLoadingError("Redis is loading the dataset in memory"), "connection"),
            (redis_errors.ResponseError("NOAUTH Authentication required."), "other"),
            (redis_errors.ClusterDownError("CLUSTERDOWN The cluster is down"), "other"),
        ],
    )
    def test_redis_error_kinds(self, error: BaseException, kind: str) -> None:
        assert metrics.redis_error_kind(error) == kind

    def test_notification_events(self) -> None:
        def events() -> None:
            metrics.count_notification_event("delete", "cleared")
            metrics.count_notification_event("delete", "unknown")
            metrics.count_notification_event("push", "ignored")
            metrics.count_notification_event({"not": "an action"}, "ignored")
            metrics.count_notification_event("frobnicate", "ignored")
            metrics.count_notification_event("delete", "unavailable", 3)
            metrics.count_notification_event("delete", "corrupt", 0)

        assert counted(events) == {
            "blobcache_notifications_events_total{action=delete,outcome=cleared}": 1,
            "blobcache_notifications_events_total{action=delete,outcome=unknown}": 1,
            "blobcache_notifications_events_total{action=push,outcome=ignored}": 1,
            "blobcache_notifications_events_total{action=other,outcome=ignored}": 2,
            "blobcache_notifications_events_total{action=delete,outcome=unavailable}": 3,
        }
        with pytest.raises(ValueError, match="unknown notification outcome 'done'"):
            metrics.count_notification_event("delete", "done")

    def test_every_series_exists_from_the_start(self) -> None:
        names = {key for key in snapshot()}
        for operation, outcomes in metrics.OPERATION_OUTCOMES.items():
            for scope in metrics.SCOPES:
                for outcome in outcomes:
                    labels = (("operation", operation), ("outcome", outcome), ("scope", scope))
                    assert ("blobcache_operations_total", labels) in names
        for interface in ("api", "admin", "command", "notifications", "reconcile", "python"):
            assert ("blobcache_cleared_entries_total", (("interface", interface),)) in names
        for kind in ("connection", "timeout", "readonly", "oom", "other"):
            assert ("blobcache_redis_errors_total", (("kind", kind),)) in names

    def test_duration_buckets_resolve_sub_millisecond_calls(self) -> None:
        below_a_millisecond = [b for b in metrics.DURATION_BUCKETS if b < 0.001]
        assert below_a_millisecond == [0.0001, 0.00025, 0.0005, 0.00075]


class TestRegister:
    def test_a_hosts_registry_gets_counters_and_scrape_time_gauges(
        self, cache: DescriptorCache, db: Any
    ) -> None:
        host = CollectorRegistry()
        metrics.register(host)
        cache.put(D1, descriptor(D1))
        text = generate_latest(host).decode()
        assert 'blobcache_operations_total{operation="set",outcome="ok",scope="global"}' in text
        assert "\nblobcache_redis_up 1.0\n" in text
        assert "\nblobcache_reconcile_last_success_timestamp_seconds 0.0\n" in text
        # The same metric twice would be refused; a second registration is a host's bug.
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            metrics.register(host)
