"""Outages: Redis stopped, frozen, read-only or out of memory gives CacheUnavailable within 2 s.

Each test starts its own redis-server on a free loopback port (the session server is never
stopped or reconfigured) and points the manager at it with the demo project's CACHES, so the
timeouts and retries measured are the ones a deployment gets. After each fault is removed the
next call succeeds without any reset on our side.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import override_settings

from blobcache import Descriptor, get_descriptor_cache
from blobcache.cache import DescriptorCache
from blobcache.exceptions import BlobUnknown, CacheUnavailable
from blobcache.testing import caches_for, find_redis_server, free_port
from tests.redis_state import dump

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
REPO = "foo/bar"
DESCRIPTOR = Descriptor(D1, 10, "application/octet-stream")
DEADLINE = 2.0
PASSWORD = "s3cr3t-Passw0rd-never-shown"


class PrivateRedis:
    """A redis-server this test owns: it may be stopped, frozen and reconfigured at will."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.client(socket_timeout=0.2) as client:
                    client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        self.thaw()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - only if redis-server hangs
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            decode_responses=True,
            protocol=2,
            **options,
        )


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()  # thaws first: a frozen server would never see the SIGTERM


@contextmanager
def manager_on(server: PrivateRedis) -> Iterator[DescriptorCache]:
    """The process-wide manager, built on the demo CACHES pointed at ``server``."""
    with override_settings(CACHES=caches_for(server.url)):
        yield get_descriptor_cache()


@pytest.fixture()
def private_cache(private_redis: PrivateRedis) -> Iterator[DescriptorCache]:
    with manager_on(private_redis) as cache:
        yield cache


ALIAS = "sha384:" + "3" * 96
NEW = Descriptor(D2, 1, "text/plain")

OPERATIONS: dict[str, Callable[[DescriptorCache], object]] = {
    "global stat": lambda c: c.stat(D1),
    "global set_descriptor": lambda c: c.set_descriptor(D2, NEW),
    "global clear": lambda c: c.clear(D1),
    "repository stat": lambda c: c.repository_scoped(REPO).stat(D1),
    "repository set_descriptor": lambda c: c.repository_scoped(REPO).set_descriptor(D2, NEW),
    "repository set_descriptor alias": (
        lambda c: c.repository_scoped(REPO).set_descriptor(ALIAS, NEW)
    ),
    "repository clear": lambda c: c.repository_scoped(REPO).clear(D1),
}
WRITES = [name for name in OPERATIONS if "stat " not in name + " "]
SET_DESCRIPTORS = [name for name in OPERATIONS if "set_descriptor" in name]


def plant(cache: DescriptorCache) -> None:
    """D1 global and in REPO. Also loads the scripts and opens the pooled connection, so the
    fault hits a warm client, as it would in a running deployment."""
    cache.repository_scoped(REPO).set_descriptor(D1, DESCRIPTOR)


def assert_unavailable(cache: DescriptorCache, name: str, port: int) -> CacheUnavailable:
    started = time.monotonic()
    with pytest.raises(CacheUnavailable) as caught:
        OPERATIONS[name](cache)
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE, f"{name}: CacheUnavailable after {elapsed:.2f} s"
    error = caught.value
    assert type(error) is CacheUnavailable
    assert error.code == "UNAVAILABLE"
    message = str(error)
    # An outage says "cannot reach"; a refusal (read-only, out of memory) names the error class.
    where = rf"127\.0\.0\.1:{port}"
    assert re.fullmatch(
        rf"(cannot reach Redis at {where}: |Redis at {where} refused the command \(\w+\): ).+",
        message,
        re.S,
    ), message
    assert PASSWORD not in message
    return error


def assert_works(cache: DescriptorCache, name: str) -> None:
    """The first calls once the fault is gone: a write, then the operation, both succeed."""
    plant(cache)
    result = OPERATIONS[name](cache)
    if name.endswith("stat"):
        assert result == DESCRIPTOR
    elif name.endswith("clear"):
        with pytest.raises(BlobUnknown):
            cache.stat(D1)
    else:
        assert cache.stat(D2) == NEW


# ----------------------------------------------------------------------------------------------
# (a) stopped


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_stopped_redis(
    private_redis: PrivateRedis, private_cache: DescriptorCache, name: str
) -> None:
    plant(private_cache)
    private_redis.stop()
    error = assert_unavailable(private_cache, name, private_redis.port)
    assert "refused" in str(error).lower()
    private_redis.start()  # the same port, empty, without our scripts
    assert_works(private_cache, name)


def test_never_started_redis(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path)  # a free port that nothing listens on
    with manager_on(server) as cache:
        for name in OPERATIONS:
            assert_unavailable(cache, name, server.port)
        server.start()
        assert_works(cache, "repository stat")
    server.stop()


# ----------------------------------------------------------------------------------------------
# (b) frozen: the kernel still accepts connections, but nothing answers


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_frozen_redis(
    private_redis: PrivateRedis, private_cache: DescriptorCache, name: str
) -> None:
    plant(private_cache)
    private_redis.freeze()
    try:
        error = assert_unavailable(private_cache, name, private_redis.port)
        assert "timeout" in str(error).lower()
    finally:
        private_redis.thaw()
    assert_works(private_cache, name)


# ----------------------------------------------------------------------------------------------
# (c) read-only: a replica of a master that never answers


@pytest.mark.parametrize("name", WRITES)
def test_read_only_redis(
    private_redis: PrivateRedis, private_cache: DescriptorCache, name: str
) -> None:
    plant(private_cache)
    admin = private_redis.client()
    admin.config_set("replica-read-only", "yes")
    admin.replicaof("127.0.0.1", free_port())
    try:
        before = dump(admin)
        error = assert_unavailable(private_cache, name, private_redis.port)
        assert "read only replica" in str(error)
        assert "refused the command (ReadOnlyError)" in str(error)
        assert dump(admin) == before
        # The stale replica still answers reads; only writes are refused.
        assert private_cache.stat(D1) == DESCRIPTOR
        assert private_cache.repository_scoped(REPO).stat(D1) == DESCRIPTOR
    finally:
        admin.replicaof("NO", "ONE")
    assert_works(private_cache, name)
    admin.close()


# ----------------------------------------------------------------------------------------------
# (d) out of memory under noeviction


@pytest.mark.parametrize("name", SET_DESCRIPTORS)
def test_out_of_memory_redis(
    private_redis: PrivateRedis, private_cache: DescriptorCache, name: str
) -> None:
    plant(private_cache)
    admin = private_redis.client()
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")
    try:
        before = dump(admin)
        error = assert_unavailable(private_cache, name, private_redis.port)
        assert "command not allowed when used memory > 'maxmemory'" in str(error)
        assert "refused the command (OutOfMemoryError)" in str(error)
        assert dump(admin) == before
        # Rewriting an existing entry is refused all the same, and reads keep working.
        with pytest.raises(CacheUnavailable):
            private_cache.repository_scoped(REPO).set_descriptor(D1, DESCRIPTOR)
        assert dump(admin) == before
        assert private_cache.repository_scoped(REPO).stat(D1) == DESCRIPTOR
    finally:
        admin.config_set("maxmemory", "0")
    assert_works(private_cache, name)
    admin.close()


def test_clears_still_work_out_of_memory(
    private_redis: PrivateRedis, private_cache: DescriptorCache
) -> None:
    # Redis lets deletions through above maxmemory, so an operator can still free entries.
    plant(private_cache)
    private_cache.set_descriptor(D2, NEW)
    admin = private_redis.client()
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")
    try:
        private_cache.repository_scoped(REPO).clear(D1)
        private_cache.clear(D2)
        assert dump(admin) == {}
    finally:
        admin.config_set("maxmemory", "0")
        admin.close()


# ----------------------------------------------------------------------------------------------
# A password never reaches a message


@pytest.fixture()
def password_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path, password=PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def with_password(server: PrivateRedis, password: str | None) -> PrivateRedis:
    """A handle on ``server`` whose URL carries another password (or none)."""
    other = PrivateRedis(server.directory, password=password)
    other.port = server.port
    return other


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_password_is_not_in_the_message(password_redis: PrivateRedis, fault: str) -> None:
    with manager_on(password_redis) as cache:
        plant(cache)  # the password URL works
        assert cache.repository_scoped(REPO).stat(D1) == DESCRIPTOR
        if fault == "stopped":
            password_redis.stop()
        else:
            password_redis.freeze()
        try:
            for name in ("global stat", "repository set_descriptor", "repository clear"):
                error = assert_unavailable(cache, name, password_redis.port)
                assert PASSWORD not in repr(error.__cause__)
        finally:
            password_redis.thaw()


def test_wrong_password_is_unavailable_and_not_shown(password_redis: PrivateRedis) -> None:
    wrong = with_password(password_redis, PASSWORD + "-wrong")
    with manager_on(wrong) as cache:
        error = assert_unavailable(cache, "repository stat", wrong.port)
        assert "password" in str(error)


def test_missing_password_is_unavailable(password_redis: PrivateRedis) -> None:
    anonymous = with_password(password_redis, None)
    with manager_on(anonymous) as cache:
        error = assert_unavailable(cache, "global set_descriptor", anonymous.port)
        assert "Authentication required" in str(error)
