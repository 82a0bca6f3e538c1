"""The Cluster store's kept connections: reused between steps, shared by every store on a client,
never reused after a failure and never shared with a forked child."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from blobcache import Descriptor
from blobcache.cache import DescriptorCache
from blobcache.store import cluster
from blobcache.store.cluster import ClusterStore

pytestmark = pytest.mark.cluster

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
DIGESTS = [f"sha256:{index:064x}" for index in range(10)]
OCTET = "application/octet-stream"
REPO = "team/app"


def set_and_clear(cache: DescriptorCache, times: int = 1, digest: str = D1) -> None:
    scoped = cache.repository_scoped(REPO)
    for _ in range(times):
        scoped.set_descriptor(digest, Descriptor(digest, 1, OCTET))
        assert scoped.stat(digest) == Descriptor(digest, 1, OCTET)
        scoped.clear(digest)


def primaries(cache: DescriptorCache) -> list[Any]:
    return list(cache.client.get_primaries())


def connections_on(node: Any) -> int:
    """Clients the node's server sees, this test's raw clients included."""
    with redis.Redis(host=node.host, port=node.port, decode_responses=True) as direct:
        return len(direct.client_list(_type="normal"))


def test_steps_take_no_connection_from_the_pool_once_warm(
    cache: DescriptorCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_and_clear(cache)
    borrowed: list[Any] = []
    for node in primaries(cache):
        pool = node.redis_connection.connection_pool
        take = pool.get_connection

        def counted(*args: Any, _take: Any = take, **kwargs: Any) -> Any:
            borrowed.append(1)
            return _take(*args, **kwargs)

        monkeypatch.setattr(pool, "get_connection", counted)
    set_and_clear(cache, 20)
    assert borrowed == []


def test_stores_on_one_client_share_their_connections(cache: DescriptorCache) -> None:
    # Every settings reset builds a new store on the same process-wide client: the connections
    # a discarded store used must serve the next one, not stay open beside it.
    set_and_clear(cache)
    before = {node.name: connections_on(node) for node in primaries(cache)}
    for _ in range(40):
        set_and_clear(DescriptorCache(cache.client))
    after = {node.name: connections_on(node) for node in primaries(cache)}
    assert after == before


def test_a_connection_the_server_dropped_is_not_reused(
    cache: DescriptorCache, redis_client: Any
) -> None:
    set_and_clear(cache)
    for node in primaries(cache):
        with redis.Redis(host=node.host, port=node.port) as direct:
            # Every connection but this one: the store's kept connections are all gone.
            direct.client_kill_filter(_type="normal", skipme=True)
    scoped = cache.repository_scoped(REPO)
    scoped.set_descriptor(D1, Descriptor(D1, 7, OCTET))
    assert scoped.stat(D1) == Descriptor(D1, 7, OCTET)
    assert redis_client.smembers(f"repository::{REPO}::blobs") == {D1}
    set_and_clear(cache, 5)
    assert redis_client.exists(f"repository::{REPO}::blobs", f"blobs::{D1}") == 0


def test_a_forked_child_opens_its_own_connections(cache: DescriptorCache) -> None:
    set_and_clear(cache)
    assert any(cluster._idle.values()), "the parent keeps connections between steps"
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status
        signal.alarm(60)  # a child stuck on a socket it shares dies instead of hanging the suite
        status = 1
        try:
            if not any(cluster._idle.values()):
                set_and_clear(cache, 200, D2)
                status = 0
        finally:
            os._exit(status)
    # Both processes at once: a socket they shared would interleave their replies.
    set_and_clear(cache, 200)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed or was stopped by its alarm"


def test_kept_connections_are_bounded_per_node(cache: DescriptorCache) -> None:
    assert isinstance(cache.store, ClusterStore)
    set_and_clear(cache)
    # Only this client's pools: other tests' clients may still have entries of their own.
    kept = [cluster._idle.get(node.redis_connection.connection_pool) for node in primaries(cache)]
    used = [idle for idle in kept if idle is not None]
    assert used
    for idle in used:
        assert 1 <= len(idle) <= cluster._IDLE_PER_POOL


@pytest.mark.parametrize(("most", "kept"), [(9, 0), (20, 2), (100, cluster._IDLE_PER_POOL)])
def test_a_bounded_pool_keeps_at_most_a_tenth_out(
    cache: DescriptorCache, most: int, kept: int
) -> None:
    # Kept connections count against CLUSTER_OPTIONS' max_connections (redis-py 8's default is
    # 100); a pool sized to its callers must still lend redis-py's own commands a connection.
    node = primaries(cache)[0]
    client = RedisCluster(host=node.host, port=node.port, max_connections=most, protocol=2)
    try:
        bounded = DescriptorCache(client)
        threads = min(most - 1, len(DIGESTS))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            steps = [pool.submit(set_and_clear, bounded, 20, d) for d in DIGESTS[:threads]]
            for done in steps:
                done.result()
        pools = [primary.redis_connection.connection_pool for primary in client.get_primaries()]
        assert max(len(cluster._idle.get(pool, [])) for pool in pools) <= kept
        for primary in client.get_primaries():
            client.ping(target_nodes=primary)
    finally:
        client.close()
