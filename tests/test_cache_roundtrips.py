"""One round trip per operation (the registry needs 3 to 8), counted with MONITOR on the test
server.

MONITOR prints every command a client sends, and the commands a script runs as ``[0 lua]``
lines; those run inside the server and are not round trips. Each measurement is bracketed by two
ECHO markers from a separate client, so nothing else is counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from blobcache import Descriptor
from blobcache.cache import DescriptorCache
from blobcache.exceptions import BlobUnknown
from tests.redis_state import monitored

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
L1 = "sha384:abc1" + "1" * 92
C1 = "sha256:abc1" + "1" * 60
OCTET = "application/octet-stream"
REPO = "foo/bar"


def expect_unknown(call: Callable[[], object]) -> None:
    with pytest.raises(BlobUnknown):
        call()


def plant(cache: DescriptorCache) -> None:
    """State every operation below can run on: D1 global and in REPO."""
    cache.repository_scoped(REPO).set_descriptor(D1, Descriptor(D1, 10, OCTET))


# name -> (operation, command the client sends, commands the script runs on the server)
OPERATIONS: dict[str, tuple[Callable[[DescriptorCache], object], str, list[str]]] = {
    "global stat hit": (lambda c: c.stat(D1), "HMGET", []),
    "global stat miss": (lambda c: expect_unknown(lambda: c.stat(D2)), "HMGET", []),
    "global set_descriptor": (
        lambda c: c.set_descriptor(D2, Descriptor(D2, 1, OCTET)),
        "EVALSHA",
        ["TYPE", "HMGET", "HSET", "HSETNX", "HMGET"],
    ),
    "global clear": (lambda c: c.clear(D1), "EVALSHA", ["TYPE", "HDEL"]),
    "global clear unknown": (
        lambda c: expect_unknown(lambda: c.clear(D2)),
        "EVALSHA",
        ["TYPE"],
    ),
    "repository stat hit": (
        lambda c: c.repository_scoped(REPO).stat(D1),
        "EVALSHA",
        ["SISMEMBER", "HMGET", "HGET"],
    ),
    "repository stat non-member": (
        lambda c: expect_unknown(lambda: c.repository_scoped(REPO).stat(D2)),
        "EVALSHA",
        ["SISMEMBER"],
    ),
    "repository set_descriptor": (
        lambda c: c.repository_scoped(REPO).set_descriptor(D2, Descriptor(D2, 1, OCTET)),
        "EVALSHA",
        ["TYPE"] * 3 + ["SISMEMBER", "SADD", "HSET", "HSETNX", "HSET", "HMGET"],
    ),
    "repository set_descriptor alias": (
        lambda c: c.repository_scoped(REPO).set_descriptor(L1, Descriptor(C1, 1, OCTET)),
        "EVALSHA",
        ["TYPE"] * 5 + ["SISMEMBER"] + ["SADD", "HSET", "HSETNX", "HSET"] * 2 + ["HMGET"],
    ),
    "repository clear": (
        lambda c: c.repository_scoped(REPO).clear(D1),
        "EVALSHA",
        ["TYPE", "SISMEMBER", "SREM", "DEL", "TYPE", "HDEL"],
    ),
    "repository clear non-member": (
        lambda c: expect_unknown(lambda: c.repository_scoped(REPO).clear(D2)),
        "EVALSHA",
        ["TYPE", "SISMEMBER"],
    ),
}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_each_operation_is_one_command(
    cache: DescriptorCache, redis_client: redis.Redis, redis_server: Any, name: str
) -> None:
    operation, client_command, script_commands = OPERATIONS[name]
    plant(cache)
    operation(cache)  # loads the script (and warms the connection) once
    redis_client.flushall()
    plant(cache)
    with monitored(redis_server) as capture:
        operation(cache)
    assert capture.client_commands == [client_command]
    # The server-side work is all there, just not on the wire.
    assert capture.script_commands == script_commands


def test_a_repository_scope_costs_no_command(cache: DescriptorCache, redis_server: Any) -> None:
    with monitored(redis_server) as capture:
        cache.repository_scoped("foo/bar")
        cache.repository_scoped("registry.example.com:443/team/app")
    assert capture.client == []
    assert capture.script == []


def test_invalid_input_sends_nothing(cache: DescriptorCache, redis_server: Any) -> None:
    scoped = cache.repository_scoped(REPO)
    with monitored(redis_server) as capture:
        for call in (
            lambda: cache.stat("sha256:abc"),
            lambda: cache.clear(""),
            lambda: cache.set_descriptor(D1, Descriptor(D1, -1, OCTET)),
            lambda: scoped.stat("md5:d41d8cd98f00b204e9800998ecf8427e"),
            lambda: scoped.set_descriptor(D1, Descriptor(D2, 1, OCTET)),
            lambda: scoped.clear("sha256:" + "A" * 64),
        ):
            with pytest.raises(Exception):  # noqa: B017 - each call's class is tested elsewhere
                call()
    assert capture.client == []


@pytest.mark.parametrize(
    "name",
    ["global set_descriptor", "global clear", "repository stat hit", "repository clear"],
)
def test_script_flush_falls_back_then_one_command_again(
    cache: DescriptorCache, redis_client: redis.Redis, redis_server: Any, name: str
) -> None:
    operation, client_command, script_commands = OPERATIONS[name]
    plant(cache)
    operation(cache)
    redis_client.flushall()
    plant(cache)
    redis_client.script_flush()
    with monitored(redis_server) as capture:
        operation(cache)
    # NOSCRIPT, then the script is loaded and run: the call still succeeds.
    assert capture.client_commands == ["EVALSHA", "SCRIPT", "EVALSHA"]
    assert capture.client[1]["command"].upper().startswith("SCRIPT LOAD")
    assert capture.script_commands == script_commands
    redis_client.flushall()
    plant(cache)
    with monitored(redis_server) as capture:
        operation(cache)
    assert capture.client_commands == [client_command]


def test_script_flush_keeps_the_written_state_right(
    cache: DescriptorCache, redis_client: redis.Redis
) -> None:
    scoped = cache.repository_scoped(REPO)
    scoped.set_descriptor(D1, Descriptor(D1, 10, OCTET))
    redis_client.script_flush()
    scoped.set_descriptor(D1, Descriptor(D1, 11, "application/json"))
    assert scoped.stat(D1) == Descriptor(D1, 11, "application/json")
    redis_client.script_flush()
    scoped.clear(D1)
    assert redis_client.dbsize() == 0
