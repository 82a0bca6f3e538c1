"""Redis Cluster: concurrent readers never see a member whose descriptor is missing or partial.

On Cluster a repository write is three per-slot steps (global hash, repository hash,
membership) and a clear runs them the other way round; these tests race readers against them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from blobcache import Descriptor, get_descriptor_cache
from blobcache.exceptions import BlobUnknown
from blobcache.testing import Topology, django_settings_for, raw_client_for, start_cluster

REPOSITORY = "team/app"
MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: Any) -> Iterator[Topology]:
    running = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield running
    running.stop()


@pytest.fixture()
def raw(cluster: Topology) -> Iterator[Any]:
    client = raw_client_for(cluster)
    client.flushall(target_nodes=client.PRIMARIES)
    with override_settings(**django_settings_for(cluster)):
        yield client
    client.close()


def test_a_member_seen_by_a_reader_has_both_hashes(raw: Any) -> None:
    """Readers check membership first, as the manager does; writes add membership last."""
    digests = [f"sha256:{index:064x}" for index in range(400)]
    scoped = get_descriptor_cache().repository_scoped(REPOSITORY)
    done = threading.Event()
    problems: list[str] = []
    seen: Counter[str] = Counter()

    def reader() -> None:
        while not done.is_set():
            for digest in digests[::7]:
                if not raw.sismember(f"repository::{REPOSITORY}::blobs", digest):
                    seen["absent"] += 1
                    continue
                seen["member"] += 1
                fields = raw.hmget(f"blobs::{digest}", "digest", "size", "mediatype")
                override = raw.hget(f"repository::{REPOSITORY}::blobs::{digest}", "mediatype")
                if fields != [digest, "5", MEDIA_TYPE] or override != MEDIA_TYPE:
                    problems.append(f"{digest}: {fields} {override}")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for digest in digests:
        scoped.set_descriptor(digest, Descriptor(digest, 5, MEDIA_TYPE))
    done.set()
    for thread in threads:
        thread.join(10)
    assert problems == []
    assert seen["member"] > 10 and seen["absent"] > 10, seen


def test_manager_reads_are_whole_hits_or_misses_during_writes_and_clears(raw: Any) -> None:
    digest = "sha256:" + "e1" * 32
    descriptor = Descriptor(digest, 123, MEDIA_TYPE)
    scoped = get_descriptor_cache().repository_scoped(REPOSITORY)
    done = threading.Event()
    errors: list[BaseException] = []
    results: Counter[str] = Counter()

    def reader() -> None:
        while not done.is_set():
            try:
                found = scoped.stat(digest)
            except BlobUnknown:
                results["miss"] += 1
                continue
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                errors.append(error)
                return
            results["hit" if found == descriptor else f"wrong: {found}"] += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for _ in range(200):
        scoped.set_descriptor(digest, descriptor)
        scoped.clear(digest)
    done.set()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert [key for key in results if key.startswith("wrong")] == []
    assert results["hit"] > 0 and results["miss"] > 0, results
    assert raw.exists(f"blobs::{digest}", f"repository::{REPOSITORY}::blobs::{digest}") == 0
