"""Resolves the redis-py client blobcache talks through.

django-redis's ``get_redis_connection`` gives the raw client (no key prefix, no pickling), which
is what reading the registry's own keys needs. django-redis has no Redis Cluster client
(jazzband/django-redis#208, #606), so ``CLIENT_FACTORY`` lets a host hand over any redis-py
client, a ``RedisCluster`` included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string

from blobcache.conf import blobcache_settings


def import_client_factory(path: str) -> Callable[[], Any]:
    factory = import_string(path)
    if not callable(factory):
        raise TypeError(f"{path} is not callable")
    return factory


def get_client() -> Any:
    """Return the configured redis-py client (``redis.Redis`` or ``redis.cluster.RedisCluster``)."""
    factory_path = blobcache_settings.CLIENT_FACTORY
    if factory_path:
        return import_client_factory(factory_path)()
    from django_redis import get_redis_connection

    return get_redis_connection(blobcache_settings.CACHE_ALIAS)


_cluster_clients: dict[str, Any] = {}


def cluster_client() -> Any:
    """A ``RedisCluster`` from ``BLOBCACHE["CLUSTER_URL"]``, one per URL and process.

    django-redis has no Cluster client, so this is blobcache's own documented way to reach one.
    Timeouts default to the same bounded values as the demo's django-redis settings so that a
    dead node gives CacheUnavailable quickly instead of hanging a request.
    """
    from redis.backoff import ExponentialBackoff
    from redis.cluster import RedisCluster
    from redis.retry import Retry

    url = blobcache_settings.CLUSTER_URL
    if not url:
        raise ValueError('BLOBCACHE["CLUSTER_URL"] must be set to use cluster_client')
    client = _cluster_clients.get(url)
    if client is None:
        options: dict[str, Any] = {
            "socket_timeout": 0.5,
            "socket_connect_timeout": 0.5,
            "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 3),
            "protocol": 2,
        }
        options.update(blobcache_settings.CLUSTER_OPTIONS or {})
        client = _cluster_clients[url] = RedisCluster.from_url(url, **options)
    return client


STANDALONE, SENTINEL, CLUSTER = "standalone", "sentinel", "cluster"


def topology_of(client: Any) -> str:
    """Which of the registry's three Redis topologies the client speaks to."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        return CLUSTER
    pool = getattr(client, "connection_pool", None)
    if getattr(pool, "service_name", None):
        return SENTINEL
    return STANDALONE


def describe_client(client: Any) -> str:
    """``host:port`` (or the socket path) of a client, for messages; never includes a password."""
    try:
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        if kwargs.get("path"):
            return str(kwargs["path"])
        service = getattr(pool, "service_name", None)
        if service:
            sentinels = getattr(getattr(pool, "sentinel_manager", None), "sentinels", [])
            addresses = ",".join(
                "{host}:{port}".format(**sentinel.connection_pool.connection_kwargs)
                for sentinel in sentinels[:3]
            )
            return f"sentinel service {service} ({addresses})" if addresses else service
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    except AttributeError:
        nodes = getattr(client, "startup_nodes", None) or getattr(client, "nodes_manager", None)
        if nodes is not None and hasattr(client, "get_nodes"):
            return ",".join(f"{node.host}:{node.port}" for node in client.get_nodes()[:3])
        return "the configured Redis"
