"""``check --deploy``: the one check that talks to Redis (reachability, eviction policy)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.checks import run_checks
from django.test import override_settings
from redis.cluster import RedisCluster

from blobcache.checks import W001, W002
from blobcache.testing import Topology, caches_for, free_port


def blobcache_messages(*, deploy: bool) -> list[Any]:
    return [
        message
        for message in run_checks(include_deployment_checks=deploy)
        if message.id.startswith("blobcache.")
    ]


def set_policy(client: Any, policy: str) -> None:
    if isinstance(client, RedisCluster):
        client.config_set("maxmemory-policy", policy, target_nodes=RedisCluster.PRIMARIES)
    else:
        client.config_set("maxmemory-policy", policy)


@pytest.fixture()
def lru(redis_client: Any) -> Iterator[Any]:
    set_policy(redis_client, "allkeys-lru")
    yield redis_client
    set_policy(redis_client, "noeviction")


def test_the_registry_policy_passes(lru: Any) -> None:
    assert blobcache_messages(deploy=True) == []


def test_noeviction_is_a_warning(topology: Topology, redis_client: Any) -> None:
    set_policy(redis_client, "noeviction")
    (message,) = blobcache_messages(deploy=True)
    assert message.id == W002
    if topology.kind == "cluster":
        # One entry per primary: "host:port: noeviction, ...".
        assert message.msg.count(": noeviction") == 3
        assert message.msg.endswith(", not allkeys-lru.")
    else:
        assert message.msg == "Redis maxmemory-policy is noeviction, not allkeys-lru."
    assert "allkeys-lru" in message.hint


def test_only_the_wrong_primary_is_named(topology: Topology, lru: Any) -> None:
    if topology.kind == "cluster":
        primary = lru.get_primaries()[0]
        lru.config_set("maxmemory-policy", "volatile-lru", target_nodes=primary)
        where = f"{primary.name}: volatile-lru"
    else:
        lru.config_set("maxmemory-policy", "volatile-lru")
        where = "volatile-lru"
    (message,) = blobcache_messages(deploy=True)
    assert message.msg == f"Redis maxmemory-policy is {where}, not allkeys-lru."


@pytest.mark.standalone
def test_unreachable_redis_is_a_warning_only_under_deploy(redis_client: Any) -> None:
    port = free_port()
    with override_settings(CACHES=caches_for(f"redis://:secret@127.0.0.1:{port}/0")):
        # The ordinary checks run before every command and never open a connection.
        assert blobcache_messages(deploy=False) == []
        (message,) = blobcache_messages(deploy=True)
    assert message.id == W001
    assert message.msg.startswith(f"cannot reach Redis at 127.0.0.1:{port}: ")
    assert "secret" not in message.msg
