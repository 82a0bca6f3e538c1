"""A real distribution registry on loopback, sharing the suite's test Redis.

The registry gets a fresh filesystem storage folder and the test Redis (flushed by
``redis_client``) for every test, so each scenario starts from nothing: the interop tests show
that the registry and blobcache read each other's entries, and that reconciliation and the
notifications receiver clear what the registry's own DELETE and garbage collector leave behind.
``registry_factory(notifications=[...])`` points the registry's notifications at a receiver;
``registry_factory(driver={"s3": {...}})`` stores in a bucket instead of the folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from blobcache.cache import DescriptorCache, get_descriptor_cache
from blobcache.connection import describe_client
from tests.interop.registry import (
    INSTALL_HINT,
    NotificationEndpoint,
    RegistryFactory,
    RegistryServer,
    find_registry_binary,
    registry_version,
)


@pytest.fixture(scope="session")
def registry_binary() -> str:
    """The registry binary; missing means a failure under CI and a skip on a developer machine."""
    binary = find_registry_binary()
    if binary is None:
        message = f"the interop tests need the distribution registry: {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    version = registry_version(binary)
    if not version.startswith("2."):
        # 3.x reads a different `redis:` section and fixed the stale-membership flaw these
        # tests use as their control.
        pytest.fail(
            f"{binary} reports version {version}; these fixtures configure distribution 2.x",
            pytrace=False,
        )
    return binary


@pytest.fixture()
def registry_factory(
    registry_binary: str, redis_server: Any, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[RegistryFactory]:
    """Start registries on the flushed test Redis, each with fresh storage; stop them after.

    ``registry_factory(notifications=[NotificationEndpoint(url=..., headers=...)])`` sends the
    registry's events to a receiver; ``driver`` replaces the filesystem storage section.
    """
    started: list[RegistryServer] = []

    def start(
        *,
        notifications: Sequence[NotificationEndpoint] = (),
        driver: Mapping[str, Any] | None = None,
    ) -> RegistryServer:
        server = RegistryServer(
            registry_binary,
            tmp_path / f"registry-{len(started)}",
            redis_server.host,
            redis_server.port,
            notifications,
            driver,
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in reversed(started):
        server.stop()
        log = server.log_text().strip()
        if log:
            # Captured by pytest and shown only when the test fails.
            print(f"--- {server.log_path} ---\n{log[-5000:]}")


@pytest.fixture()
def registry(registry_factory: RegistryFactory) -> RegistryServer:
    """A running registry with empty storage and an empty test Redis."""
    return registry_factory()


@pytest.fixture()
def descriptor_cache(redis_server: Any, redis_client: redis.Redis) -> DescriptorCache:
    """blobcache's manager, checked to be on the Redis the registries use."""
    cache = get_descriptor_cache()
    assert describe_client(cache.client) == f"{redis_server.host}:{redis_server.port}"
    return cache
