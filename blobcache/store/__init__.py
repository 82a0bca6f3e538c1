"""One store per Redis topology, chosen once when the client is resolved.

:class:`~blobcache.store.scripted.ScriptedStore` (standalone, Sentinel) runs each multi-key
primitive as one Lua script; :class:`~blobcache.store.cluster.ClusterStore` runs it as ordered
per-slot steps. Callers hold a :class:`~blobcache.store.base.Store` and never ask which.
"""

from __future__ import annotations

from typing import Any

from redis.cluster import RedisCluster

from blobcache.store.base import Store
from blobcache.store.cluster import ClusterStore
from blobcache.store.errors import translate_redis_errors
from blobcache.store.scripted import ScriptedStore


def store_for(client: Any) -> Store:
    """The store for ``client``'s topology (a ``RedisCluster`` speaks to Cluster)."""
    if isinstance(client, RedisCluster):
        return ClusterStore(client)
    return ScriptedStore(client)


__all__ = ["Store", "store_for", "translate_redis_errors"]
