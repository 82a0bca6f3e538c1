"""Django settings and raw clients for each Redis topology the contract suite runs on.

The suite starts every topology itself (blobcache.testing): standalone, Sentinel (a master, a
replica, three sentinels) and Cluster (three masters with one replica each).
"""

from __future__ import annotations

import copy
from typing import Any

import redis
from django.conf import settings as django_settings
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

from blobcache.testing import Topology

TOPOLOGIES = ("standalone", "sentinel", "cluster")


def django_settings_for(topology: Topology) -> dict[str, Any]:
    """``override_settings`` kwargs that point blobcache at ``topology`` as a portal would."""
    caches = copy.deepcopy(django_settings.CACHES)
    default = caches["default"]
    if topology.kind == "standalone":
        default["LOCATION"] = f"redis://{topology.host}:{topology.port}/0"
        return {"CACHES": caches}
    if topology.kind == "sentinel":
        default["LOCATION"] = f"redis://{topology.service_name}/0"
        default["OPTIONS"].update(
            {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                "SENTINELS": list(topology.sentinels),
                "SENTINEL_KWARGS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
            }
        )
        return {"CACHES": caches}
    # Cluster: django-redis cannot talk to it, so blobcache's own cluster client is used.
    return {
        "BLOBCACHE": {
            **(getattr(django_settings, "BLOBCACHE", None) or {}),
            "CLIENT_FACTORY": "blobcache.connection.cluster_client",
            "CLUSTER_URL": f"redis://{topology.host}:{topology.port}/0",
        }
    }


class ClusterStateClient(RedisCluster):
    """A RedisCluster whose whole-database commands ask every primary, as a test's view of the
    data needs (redis-py sends KEYS and DBSIZE to one node unless told otherwise)."""

    def keys(self, pattern: Any = "*", **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", RedisCluster.PRIMARIES)
        return super().keys(pattern, **kwargs)

    def dbsize(self, **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", RedisCluster.PRIMARIES)
        return super().dbsize(**kwargs)


def raw_client_for(topology: Topology) -> Any:
    """A decoding client on the topology's primary (or the whole cluster) for asserting state."""
    if topology.kind == "cluster":
        return ClusterStateClient(host=topology.host, port=topology.port, decode_responses=True)
    if topology.kind == "sentinel":
        return Sentinel(topology.sentinels).master_for(
            topology.service_name, decode_responses=True, protocol=2
        )
    return redis.Redis(host=topology.host, port=topology.port, decode_responses=True, protocol=2)


def flush(client: Any) -> None:
    """Empty every primary of the topology (our own throwaway servers only)."""
    if isinstance(client, RedisCluster):
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
    else:
        client.flushall()
