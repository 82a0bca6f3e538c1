"""Redis Cluster: ASK and MOVED redirections while a slot migrates between primaries.

The manager holds one RedisCluster client whose slot map goes stale when a slot moves; redis-py
follows ASK during the migration and refreshes its map on MOVED after it. Every operation must
keep answering with the right descriptor throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.test import override_settings

from blobcache import Descriptor, get_descriptor_cache
from blobcache.testing import Topology, django_settings_for, start_cluster

DIGEST = "sha256:" + "7c" * 32
DESCRIPTOR = Descriptor(DIGEST, 77, "application/octet-stream")


@pytest.fixture()
def cluster(tmp_path: Any) -> Iterator[Topology]:
    running = start_cluster(tmp_path)
    yield running
    running.stop()


def _primaries(topology: Topology) -> dict[str, redis.Redis]:
    primaries = {}
    for process in topology.processes:
        client = redis.Redis(port=process.port, decode_responses=True)
        if client.info("replication")["role"] == "master":
            primaries[client.cluster("myid")] = client
    return primaries


def _owner(primaries: dict[str, redis.Redis], slot: int) -> str:
    any_client = next(iter(primaries.values()))
    for start, end, primary, *_ in any_client.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return str(primary[2])
    raise AssertionError(f"slot {slot} has no owner")


def test_operations_follow_ask_and_moved_during_a_slot_migration(cluster: Topology) -> None:
    with override_settings(**django_settings_for(cluster)):
        cache = get_descriptor_cache()
        scoped = cache.repository_scoped("team/app")
        scoped.set_descriptor(DIGEST, DESCRIPTOR)
        assert scoped.stat(DIGEST) == DESCRIPTOR
        primaries = _primaries(cluster)
        key = f"blobs::{DIGEST}"
        slot = next(iter(primaries.values())).cluster("keyslot", key)
        source_id = _owner(primaries, slot)
        target_id = next(node for node in primaries if node != source_id)
        source, target = primaries[source_id], primaries[target_id]
        target_port = target.connection_pool.connection_kwargs["port"]

        target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        assert scoped.stat(DIGEST) == DESCRIPTOR  # still on the source
        keys_in_slot = source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
        assert key in keys_in_slot
        source.execute_command(
            "MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "KEYS", *keys_in_slot
        )
        # The source now answers ASK for this slot: reads and writes follow it.
        assert cache.stat(DIGEST) == DESCRIPTOR
        assert scoped.stat(DIGEST) == DESCRIPTOR
        scoped.set_descriptor(DIGEST, Descriptor(DIGEST, 78, "application/octet-stream"))
        assert cache.stat(DIGEST).size == 78

        for client in primaries.values():
            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        # The manager's slot map is stale: the source answers MOVED and the client refreshes.
        assert cache.stat(DIGEST).size == 78
        scoped.clear(DIGEST)
        assert target.exists(key) == 0
        assert not target.cluster("countkeysinslot", slot)
        scoped.set_descriptor(DIGEST, DESCRIPTOR)
        assert target.hgetall(key) == {"digest": DIGEST, "size": "77",
                                       "mediatype": "application/octet-stream"}
        assert source.cluster("countkeysinslot", slot) == 0
