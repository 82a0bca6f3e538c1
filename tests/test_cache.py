"""The cache manager against a real Redis: the registry's conformance suite and exact state."""

from __future__ import annotations

import pytest
import redis

from blobcache import Descriptor
from blobcache.cache import DescriptorCache
from blobcache.exceptions import (
    BlobUnknown,
    DescriptorInvalid,
    DigestInvalidFormat,
    NameInvalid,
)

L1 = "sha384:abc1" + "1" * 92
L2 = "sha384:cba1" + "1" * 92
L3 = "sha384:def1" + "1" * 92
C1 = "sha256:abc1" + "1" * 60
C3 = "sha256:def1" + "1" * 60
BAD = "sha384:abc"
OCTET = "application/octet-stream"


class TestConformance:
    """The registry's cachecheck.CheckBlobDescriptorCache: its three checks, run in order on
    shared state as the registry's own suite does."""

    def test_suite(self, cache: DescriptorCache) -> None:
        # checkBlobDescriptorCacheEmptyRepository
        with pytest.raises(BlobUnknown):
            cache.stat(L1)
        with pytest.raises(NameInvalid):
            cache.repository_scoped("")
        scoped = cache.repository_scoped("foo/bar")
        with pytest.raises(DigestInvalidFormat):
            scoped.set_descriptor("", Descriptor(BAD, 10, OCTET))
        with pytest.raises(DigestInvalidFormat):
            scoped.set_descriptor(L1, Descriptor("", 10, OCTET))
        with pytest.raises(DigestInvalidFormat):
            scoped.stat("")
        with pytest.raises(BlobUnknown):
            scoped.stat(L2)
        with pytest.raises(BlobUnknown):
            scoped.stat(L1)

        # checkBlobDescriptorCacheSetAndRead: alias and media-type override
        scoped = cache.repository_scoped("foo/bar")
        expected = Descriptor(C1, 10, OCTET)
        scoped.set_descriptor(L1, expected)
        assert scoped.stat(L1) == expected
        assert scoped.stat(L1) == expected
        assert cache.stat(L1) == expected
        assert cache.stat(C1) == expected
        json_expected = Descriptor(C1, 10, "application/json")
        scoped.set_descriptor(L1, json_expected)
        assert scoped.stat(L1) == json_expected
        assert cache.stat(L1) == expected

        # checkBlobDescriptorCacheClear
        scoped = cache.repository_scoped("foo/bar")
        expected = Descriptor(C3, 10, OCTET)
        scoped.set_descriptor(L3, expected)
        assert scoped.stat(L3) == expected
        scoped.clear(L3)
        with pytest.raises(BlobUnknown):
            scoped.stat(L3)


def test_repository_clear_revokes_membership(
    cache: DescriptorCache, redis_client: redis.Redis
) -> None:
    """distribution v3.1's TestRepositoryScopedClearRevokesRepositoryMembership
    (CVE-2026-35172): a peer's re-warm never revives a cleared member."""
    digest = "sha256:4eea145ea7cabad477c7f208590716d9669dcdf499fda979e3e7765a04d918a6"
    descriptor = Descriptor(digest, 1337, "application/vnd.oci.image.layer.v1.tar")
    repo_a = cache.repository_scoped("foo/repo-a")
    repo_b = cache.repository_scoped("foo/repo-b")
    repo_a.set_descriptor(digest, descriptor)
    repo_b.set_descriptor(digest, descriptor)
    assert repo_a.stat(digest) == descriptor
    repo_a.clear(digest)
    with pytest.raises(BlobUnknown) as miss:
        repo_a.stat(digest)
    assert type(miss.value) is BlobUnknown
    repo_b.set_descriptor(digest, descriptor)
    assert repo_b.stat(digest) == descriptor
    with pytest.raises(BlobUnknown):
        repo_a.stat(digest)
    assert not redis_client.sismember("repository::foo/repo-a::blobs", digest)
    assert redis_client.exists(f"repository::foo/repo-a::blobs::{digest}") == 0


def test_same_algorithm_mismatch_is_rejected_and_writes_nothing(
    cache: DescriptorCache, redis_client: redis.Redis
) -> None:
    with pytest.raises(DescriptorInvalid):
        cache.repository_scoped("foo/bar").set_descriptor(C1, Descriptor(C3, 1, OCTET))
    assert redis_client.dbsize() == 0
