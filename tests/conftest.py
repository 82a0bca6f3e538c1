"""Every test talks to real Redis servers started here, on free loopback ports."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.test import override_settings
from pytest_redis import factories

from blobcache.cache import DescriptorCache, get_descriptor_cache
from blobcache.testing import Topology, find_redis_server, start_cluster, start_sentinel
from tests.topologies import TOPOLOGIES, django_settings_for, flush, raw_client_for

REDIS_SERVER = find_redis_server()

redis_server = factories.redis_proc(executable=REDIS_SERVER, host="127.0.0.1", port=None)


def caches_for(url: str) -> dict[str, Any]:
    """The demo project's CACHES, pointed at ``url`` (same timeouts and retries).

    Built from the demo settings module, not from the current settings, which a topology
    parameter may have switched to Sentinel.
    """
    from project import settings as demo_settings

    caches = copy.deepcopy(demo_settings.CACHES)
    caches["default"]["LOCATION"] = url
    return caches


@pytest.fixture(scope="session")
def redis_url(redis_server: Any) -> str:
    return f"redis://{redis_server.host}:{redis_server.port}/0"


@pytest.fixture(scope="session", autouse=True)
def _django_uses_test_redis(redis_url: str) -> Iterator[None]:
    assert not redis_url.endswith(":6379/0"), "tests never use the machine's own Redis"
    with override_settings(CACHES=caches_for(redis_url)):
        yield


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "standalone: the test relies on a single Redis server (MONITOR, CONFIG, MULTI, or the "
        "standalone-only atomicity guarantee), so it does not run on Sentinel and Cluster",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The contract suite: every test using ``redis_client``/``cache`` runs on each topology.

    A test that asks for the standalone server itself (``redis_server``/``redis_url``) or is
    marked ``standalone`` runs on standalone only. ``BLOBCACHE_TEST_TOPOLOGIES`` (comma
    separated) narrows the list for a quick local run; CI runs all three.
    """
    if "topology" not in metafunc.fixturenames:
        return
    direct = set(metafunc.definition._fixtureinfo.argnames)
    marked = metafunc.definition.get_closest_marker
    # The registry 2.8 under test reaches a single Redis only (no Sentinel, no Cluster).
    if marked("standalone") or marked("interop") or direct & {"redis_server", "redis_url"}:
        kinds: tuple[str, ...] = ("standalone",)
    else:
        selected = os.environ.get("BLOBCACHE_TEST_TOPOLOGIES")
        kinds = tuple(selected.split(",")) if selected else TOPOLOGIES
    metafunc.parametrize("topology", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest, redis_server: Any,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    kind = getattr(request, "param", "standalone")
    if kind == "standalone":
        yield Topology(kind="standalone", host=redis_server.host, port=redis_server.port)
        return
    start = start_sentinel if kind == "sentinel" else start_cluster
    running = start(tmp_path_factory.mktemp(kind))
    yield running
    running.stop()


@pytest.fixture()
def redis_client(topology: Topology) -> Iterator[Any]:
    """A raw client on the topology's primary (or the cluster), emptied before each test, for
    asserting exact state; blobcache is pointed at the same topology for the test."""
    client = raw_client_for(topology)
    flush(client)
    with override_settings(**django_settings_for(topology)):
        yield client
    client.close()


@pytest.fixture()
def cache(redis_client: redis.Redis) -> DescriptorCache:
    return get_descriptor_cache()


@pytest.fixture()
def stopped_redis(tmp_path: Any) -> Iterator[int]:
    """blobcache pointed at a private redis-server that was started and then stopped: Redis is
    down the way an outage looks (connection refused on a known address). Yields its port."""
    from blobcache.testing import start_redis_process

    server = start_redis_process(tmp_path)
    server.stop()
    with override_settings(CACHES=caches_for(f"redis://127.0.0.1:{server.port}/0")):
        yield server.port


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """moto's standalone S3 server on a free loopback port, one per session."""
    from blobcache.testing import start_s3_server

    server = start_s3_server()
    yield server
    server.stop()
