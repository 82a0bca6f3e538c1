"""Fixtures shared across the suite.

The Redis servers, the topologies and the ``redis_client``/``cache`` fixtures come from the
``blobcache.testing`` plugin, enabled in pyproject.toml (``-p blobcache.testing``) the way a
portal's own suite enables it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.auth.models import Permission, User
from django.test import override_settings

from blobcache.cache import DescriptorCache
from blobcache.testing import S3Server, caches_for, start_s3_server
from tests.helpers.entries import crowd, populate
from tests.helpers.outage import PrivateRedis
from tests.helpers.s3_tree import S3Tree
from tests.helpers.storage_tree import StorageTree, populate_stale

# --- Cache contents ------------------------------------------------------------------------------


@pytest.fixture()
def populated(cache: DescriptorCache, redis_client: redis.Redis) -> redis.Redis:
    """Two repositories, global-only entries, and the stale shapes older registries leave."""
    populate(cache, redis_client)
    return redis_client


@pytest.fixture()
def crowded(populated: redis.Redis) -> redis.Redis:
    """``populated`` plus keys that look like the layout but are not, and a third holder of D1."""
    crowd(populated)
    return populated


@pytest.fixture()
def tree(tmp_path: Path) -> StorageTree:
    return StorageTree(tmp_path / "storage")


@pytest.fixture()
def stale(cache: DescriptorCache, redis_client: redis.Redis, tree: StorageTree) -> redis.Redis:
    populate_stale(cache, redis_client, tree)
    return redis_client


# --- Outages -------------------------------------------------------------------------------------


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """blobcache pointed at a redis-server of this test's own, which it may stop or freeze."""
    server = PrivateRedis(tmp_path)
    with override_settings(CACHES=caches_for(f"redis://127.0.0.1:{server.port}/0")):
        yield server
    try:
        os.kill(server.process.process.pid, signal.SIGCONT)
    except (AttributeError, ProcessLookupError):
        pass
    server.stop()


# --- Users ---------------------------------------------------------------------------------------


@pytest.fixture()
def fast_password_hashing(settings: Any) -> None:
    # PBKDF2's deliberate slowness would dominate a suite that creates users in every test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture()
def make_user(db: Any) -> Callable[..., User]:
    """A user holding exactly the given ``blobcache`` permission codenames."""
    counter = iter(range(1, 1000))

    def make(*codenames: str, password: str = "secret-pw") -> User:
        user = User.objects.create_user(f"user{next(counter)}", password=password)
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="blobcache", codename__in=codenames)
        )
        return User.objects.get(pk=user.pk)  # a fresh instance: no stale permission cache

    return make


@pytest.fixture()
def superuser(db: Any) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-pw")


# --- Object storage ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's standalone S3 server on a free loopback port, one per session."""
    server = start_s3_server()
    yield server
    server.stop()


@pytest.fixture()
def bucket(s3_server: S3Server) -> S3Tree:
    """A fresh bucket holding an empty registry root (``/registry``)."""
    return S3Tree(s3_server)


@pytest.fixture()
def stale_bucket(
    cache: DescriptorCache, redis_client: redis.Redis, bucket: S3Tree, settings: Any
) -> S3Tree:
    """``bucket`` behind populate_stale's entries, named by ``BLOBCACHE["STORAGE"]``."""
    populate_stale(cache, redis_client, bucket)
    settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE": bucket.section}
    return bucket
