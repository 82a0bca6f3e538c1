"""Where messages say the cache lives, per topology: an operator must recognise the address."""

from __future__ import annotations

from typing import Any

from blobcache import get_descriptor_cache
from blobcache.connection import describe_client
from blobcache.testing import Topology


def test_describe_client_names_the_servers(topology: Topology, redis_client: Any) -> None:
    described = describe_client(get_descriptor_cache().client)
    if topology.kind == "standalone":
        assert described == f"127.0.0.1:{topology.port}"
    elif topology.kind == "sentinel":
        sentinels = ",".join(f"{host}:{port}" for host, port in topology.sentinels)
        assert described == f"sentinel service {topology.service_name} ({sentinels})"
    else:
        primaries_and_replicas = {f"127.0.0.1:{process.port}" for process in topology.processes}
        named = described.split(",")
        assert len(named) == 3 and set(named) <= primaries_and_replicas


def test_describe_client_never_shows_a_password() -> None:
    import redis

    client = redis.Redis.from_url("redis://user:s3cret@127.0.0.1:1/0")
    assert describe_client(client) == "127.0.0.1:1"
