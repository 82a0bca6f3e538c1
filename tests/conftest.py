"""Every test talks to real Redis servers started here, on free loopback ports."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.test import override_settings
from pytest_redis import factories

from blobcache.cache import DescriptorCache, get_descriptor_cache
from blobcache.testing import find_redis_server

REDIS_SERVER = find_redis_server()

redis_server = factories.redis_proc(executable=REDIS_SERVER, host="127.0.0.1", port=None)


def caches_for(url: str) -> dict[str, Any]:
    """The demo project's CACHES, pointed at ``url`` (same timeouts and retries)."""
    caches = copy.deepcopy(django_settings.CACHES)
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


@pytest.fixture()
def redis_client(redis_server: Any) -> Iterator[redis.Redis]:
    """A raw client on the test server, emptied before each test, for asserting exact state."""
    client = redis.Redis(
        host=redis_server.host, port=redis_server.port, decode_responses=True, protocol=2
    )
    client.flushall()
    yield client
    client.close()


@pytest.fixture()
def cache(redis_client: redis.Redis) -> DescriptorCache:
    return get_descriptor_cache()
