"""All or nothing, which the registry's own multi-command writes are not: a write that fails
part-way leaves the database exactly as it was, and a reader running beside the writers never
sees half an entry.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis

from blobcache import Descriptor
from blobcache.cache import DescriptorCache
from blobcache.exceptions import BlobUnknown, DescriptorCorrupt
from tests.redis_state import dump

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
L1 = "sha384:abc1" + "1" * 92
C1 = "sha256:abc1" + "1" * 60
OCTET = "application/octet-stream"
JSON = "application/json"
REPO = "foo/bar"


def plant_wrong_type(client: redis.Redis, key: str, kind: str) -> None:
    client.delete(key)
    if kind == "string":
        client.set(key, "not a hash or set")
    elif kind == "list":
        client.rpush(key, "a", "b")
    elif kind == "zset":
        client.zadd(key, {"a": 1.0})
    elif kind == "hash":
        client.hset(key, "mediatype", OCTET)
    elif kind == "set":
        client.sadd(key, D1)
    else:  # pragma: no cover - a typo in a parameter list
        raise AssertionError(kind)


def seed_neighbours(cache: DescriptorCache) -> None:
    """Entries around the one under test, so a stray write or delete would show in the dump."""
    cache.repository_scoped(REPO).set_descriptor(D2, Descriptor(D2, 2, OCTET))
    cache.repository_scoped("team/app").set_descriptor(D1, Descriptor(D1, 1, JSON))


def assert_corrupt_and_unchanged(
    redis_client: redis.Redis, call: Callable[[], object], key: str
) -> None:
    before = dump(redis_client)
    with pytest.raises(DescriptorCorrupt) as caught:
        call()
    assert caught.value.code == "DESCRIPTOR_CORRUPT"
    assert key in str(caught.value)  # the operator learns which key to look at
    assert dump(redis_client) == before


# (key that holds the wrong type, the write to try)
REPOSITORY_WRITES: list[tuple[str, str, Callable[[DescriptorCache], object]]] = [
    (
        "membership",
        f"repository::{REPO}::blobs",
        lambda c: c.repository_scoped(REPO).set_descriptor(D1, Descriptor(D1, 10, OCTET)),
    ),
    (
        "global hash",
        f"blobs::{D1}",
        lambda c: c.repository_scoped(REPO).set_descriptor(D1, Descriptor(D1, 10, OCTET)),
    ),
    (
        "repository hash",
        f"repository::{REPO}::blobs::{D1}",
        lambda c: c.repository_scoped(REPO).set_descriptor(D1, Descriptor(D1, 10, OCTET)),
    ),
    (
        "alias canonical global hash",
        f"blobs::{C1}",
        lambda c: c.repository_scoped(REPO).set_descriptor(L1, Descriptor(C1, 10, OCTET)),
    ),
    (
        "alias canonical repository hash",
        f"repository::{REPO}::blobs::{C1}",
        lambda c: c.repository_scoped(REPO).set_descriptor(L1, Descriptor(C1, 10, OCTET)),
    ),
    (
        "alias key repository hash",
        f"repository::{REPO}::blobs::{L1}",
        lambda c: c.repository_scoped(REPO).set_descriptor(L1, Descriptor(C1, 10, OCTET)),
    ),
]


@pytest.mark.parametrize(
    ("where", "key", "write"), REPOSITORY_WRITES, ids=[w[0] for w in REPOSITORY_WRITES]
)
# Cluster writes are per-slot steps: the all-or-nothing promise is standalone/Sentinel only.
@pytest.mark.standalone
@pytest.mark.parametrize("kind", ["string", "list", "zset"])
def test_repository_write_on_a_wrong_type_key_writes_nothing(
    cache: DescriptorCache,
    redis_client: redis.Redis,
    where: str,
    key: str,
    write: Callable[[DescriptorCache], object],
    kind: str,
) -> None:
    seed_neighbours(cache)
    plant_wrong_type(redis_client, key, kind)
    assert_corrupt_and_unchanged(redis_client, lambda: write(cache), key)


# Cluster writes are per-slot steps: the all-or-nothing promise is standalone/Sentinel only.
@pytest.mark.standalone
@pytest.mark.parametrize("where", ["membership", "repository hash"])
def test_a_set_and_a_hash_swapped_is_corrupt_too(
    cache: DescriptorCache, redis_client: redis.Redis, where: str
) -> None:
    seed_neighbours(cache)
    if where == "membership":
        key = f"repository::{REPO}::blobs"
        plant_wrong_type(redis_client, key, "hash")
    else:
        key = f"repository::{REPO}::blobs::{D1}"
        plant_wrong_type(redis_client, key, "set")
    assert_corrupt_and_unchanged(
        redis_client,
        lambda: cache.repository_scoped(REPO).set_descriptor(D1, Descriptor(D1, 10, OCTET)),
        key,
    )


@pytest.mark.parametrize("kind", ["string", "list", "set", "zset"])
def test_global_write_on_a_wrong_type_key_writes_nothing(
    cache: DescriptorCache, redis_client: redis.Redis, kind: str
) -> None:
    seed_neighbours(cache)
    plant_wrong_type(redis_client, f"blobs::{L1}", kind)
    assert_corrupt_and_unchanged(
        redis_client, lambda: cache.set_descriptor(L1, Descriptor(C1, 10, OCTET)), f"blobs::{L1}"
    )


def test_repository_clear_on_a_wrong_type_membership_changes_nothing(
    cache: DescriptorCache, redis_client: redis.Redis
) -> None:
    seed_neighbours(cache)
    redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": "1"})
    plant_wrong_type(redis_client, "repository::other/repo::blobs", "string")
    assert_corrupt_and_unchanged(
        redis_client,
        lambda: cache.repository_scoped("other/repo").clear(D1),
        "repository::other/repo::blobs",
    )


@pytest.mark.parametrize(
    ("key", "read"),
    [
        (f"blobs::{D1}", lambda c: c.stat(D1)),
        (f"blobs::{D1}", lambda c: c.repository_scoped("team/app").stat(D1)),
        ("repository::team/app::blobs", lambda c: c.repository_scoped("team/app").stat(D1)),
        (f"repository::team/app::blobs::{D1}", lambda c: c.repository_scoped("team/app").stat(D1)),
    ],
)
def test_a_read_of_a_wrong_type_key_is_corrupt_not_an_outage(
    cache: DescriptorCache,
    redis_client: redis.Redis,
    key: str,
    read: Callable[[DescriptorCache], object],
) -> None:
    seed_neighbours(cache)
    plant_wrong_type(redis_client, key, "string")
    before = dump(redis_client)
    with pytest.raises(DescriptorCorrupt):
        read(cache)
    assert dump(redis_client) == before


@pytest.mark.parametrize("key", [f"repository::{REPO}::blobs::{D1}", f"blobs::{D1}"])
def test_a_clear_removes_a_wrong_type_hash_with_the_rest(
    cache: DescriptorCache, redis_client: redis.Redis, key: str
) -> None:
    # Clearing is how an operator repairs a corrupt entry, so it deletes the bad key, whole.
    seed_neighbours(cache)
    neighbours = dump(redis_client)
    cache.repository_scoped(REPO).set_descriptor(D1, Descriptor(D1, 10, OCTET))
    plant_wrong_type(redis_client, key, "string")
    cache.repository_scoped(REPO).clear(D1)
    after = dump(redis_client)
    # Only team/app's own D1 entry remains of D1; its global hash went with the clear.
    expected = {k: v for k, v in neighbours.items() if k != f"blobs::{D1}"}
    assert after == expected


# ----------------------------------------------------------------------------------------------
# Concurrent readers


def snapshot(client: redis.Redis, repository: str, digest: str) -> tuple[Any, ...]:
    """Membership, global fields and repository hash read in one MULTI: a consistent cut."""
    pipe = client.pipeline(transaction=True)
    pipe.sismember(f"repository::{repository}::blobs", digest)
    pipe.hmget(f"blobs::{digest}", "digest", "size", "mediatype")
    pipe.hget(f"repository::{repository}::blobs::{digest}", "mediatype")
    member, fields, override = pipe.execute()
    return (bool(member), tuple(fields), override)


def test_readers_never_see_half_an_entry(
    cache: DescriptorCache, redis_client: redis.Redis, redis_server: Any
) -> None:
    cycles = 300
    descriptors = {D1: Descriptor(D1, 10, OCTET), D2: Descriptor(D2, 20, JSON)}
    complete = {
        digest: (True, (digest, str(d.size), d.media_type), d.media_type)
        for digest, d in descriptors.items()
    }
    empty = (False, (None, None, None), None)
    done = threading.Event()
    errors: list[BaseException] = []
    seen: Counter[str] = Counter()
    stats: Counter[str] = Counter()

    def writer(repository: str, digest: str) -> None:
        scoped = cache.repository_scoped(repository)
        try:
            for _ in range(cycles):
                scoped.set_descriptor(digest, descriptors[digest])
                scoped.clear(digest)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    def raw_reader(repository: str, digest: str) -> None:
        client = redis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
        try:
            while not done.is_set():
                state = snapshot(client, repository, digest)
                if state == complete[digest]:
                    seen["complete"] += 1
                elif state == empty:
                    seen["empty"] += 1
                else:
                    seen[f"half: {state}"] += 1
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            client.close()

    def manager_reader(repository: str, digest: str) -> None:
        scoped = cache.repository_scoped(repository)
        try:
            while not done.is_set():
                try:
                    assert scoped.stat(digest) == descriptors[digest]
                    stats["hit"] += 1
                except BlobUnknown:
                    stats["miss"] += 1
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    writers = [
        threading.Thread(target=writer, args=("foo/bar", D1)),
        threading.Thread(target=writer, args=("team/app", D2)),
    ]
    readers = [
        threading.Thread(target=raw_reader, args=("foo/bar", D1)),
        threading.Thread(target=raw_reader, args=("team/app", D2)),
        threading.Thread(target=manager_reader, args=("foo/bar", D1)),
    ]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    done.set()
    for thread in readers:
        thread.join(10)

    assert errors == []
    assert [key for key in seen if key.startswith("half")] == []
    # Not vacuous: the readers caught both states many times while the writers ran.
    assert seen["complete"] > 10 and seen["empty"] > 10, seen
    assert stats["hit"] > 0 and stats["miss"] > 0, stats
    assert dump(redis_client) == {}
