"""Failover under a steady stream of operations: errors only inside the window, then recovery.

The window is measured and printed (run with ``-s`` to see it); the assertion bounds it loosely
because it depends on the sentinels' and the cluster's own timeouts, not on blobcache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from blobcache import Descriptor, get_descriptor_cache
from blobcache.exceptions import CacheUnavailable
from blobcache.testing import Topology, django_settings_for, start_cluster, start_sentinel

WINDOW_LIMIT = 20.0


@pytest.fixture(params=["sentinel", "cluster"])
def failover_topology(request: Any, tmp_path: Any) -> Iterator[Topology]:
    start = start_sentinel if request.param == "sentinel" else start_cluster
    running = start(tmp_path)
    yield running
    running.stop()


def _primary_holding(topology: Topology, key: str) -> Any:
    """The process that serves ``key`` now (the master, or the key's slot owner)."""
    import redis

    for process in topology.processes:
        client = redis.Redis(port=process.port, decode_responses=True)
        try:
            if topology.kind == "sentinel":
                if client.info("replication")["role"] == "master" and not client.info(
                    "server"
                ).get("redis_mode") == "sentinel":
                    return process
            elif client.info("replication")["role"] == "master":
                slot = client.cluster("keyslot", key)
                if client.cluster("countkeysinslot", slot) or _owns(client, slot):
                    return process
        except redis.ResponseError:
            continue
        finally:
            client.close()
    raise AssertionError("no primary found")


def _owns(client: Any, slot: int) -> bool:
    own_id = client.cluster("myid")
    for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return primary[2] == own_id
    return False


def test_operations_fail_only_inside_the_failover_window(failover_topology: Topology) -> None:
    topology = failover_topology
    digest = "sha256:" + "5a" * 32
    descriptor = Descriptor(digest, 42, "application/octet-stream")
    failures: list[float] = []
    successes: list[float] = []
    stop = threading.Event()
    with override_settings(**django_settings_for(topology)):
        cache = get_descriptor_cache()
        scoped = cache.repository_scoped("team/app")
        scoped.set_descriptor(digest, descriptor)
        victim = _primary_holding(topology, f"blobs::{digest}")

        def stream() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    scoped.set_descriptor(digest, descriptor)
                    assert scoped.stat(digest) == descriptor
                    successes.append(started)
                except CacheUnavailable:
                    failures.append(started)
                    time.sleep(0.05)

        worker = threading.Thread(target=stream)
        worker.start()
        time.sleep(1.0)
        killed_at = time.monotonic()
        victim.kill()
        deadline = killed_at + WINDOW_LIMIT + 10
        # Wait for recovery: a run of successes after the kill.
        while time.monotonic() < deadline:
            recent = [t for t in successes if t > killed_at]
            if len(recent) > 50 and (not failures or recent[-1] > failures[-1] + 2):
                break
            time.sleep(0.2)
        stop.set()
        worker.join(timeout=10)
    assert successes and min(successes) < killed_at, "operations ran before the failover"
    after = [t for t in failures if t >= killed_at - 1.0]
    assert failures == after, "no failure before the master was killed"
    window = (max(after) - killed_at) if after else 0.0
    print(f"\n{topology.kind} failover window: {window:.2f} s, {len(after)} failed operations")
    assert window < WINDOW_LIMIT
    # Recovery without a restart of the app: a long run of successes after the last failure.
    last_failure = max(after) if after else killed_at
    assert len([t for t in successes if t > last_failure]) > 50
