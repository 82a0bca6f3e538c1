"""Exact Redis state after every write and clear, and reads of what older registries left behind.

The layout is the registry's, as every release from v2.1.0 to 3.1+ writes it and as a running
2.8.2 showed it; the repository clear follows 3.1+. Every assertion compares the whole database
(key, type, value, TTL) so that a stray key or field cannot go unnoticed.
"""

from __future__ import annotations

import pytest
import redis

from blobcache import Descriptor
from blobcache.cache import DescriptorCache
from blobcache.exceptions import (
    BlobUnknown,
    DescriptorCorrupt,
    DescriptorInvalid,
    DigestInvalidFormat,
    DigestInvalidLength,
    SizeInvalid,
)
from tests.redis_state import dump

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
L1 = "sha384:abc1" + "1" * 92  # the conformance suite's alias digest
C1 = "sha256:abc1" + "1" * 60  # and its canonical digest
OCTET = "application/octet-stream"
JSON = "application/json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def hash_of(fields: dict[str, str]) -> tuple[str, dict[str, str], int]:
    return ("hash", fields, -1)


def set_of(*members: str) -> tuple[str, set[str], int]:
    return ("set", set(members), -1)


def descriptor_hash(digest: str, size: int, media_type: str) -> tuple[str, dict[str, str], int]:
    return hash_of({"digest": digest, "size": str(size), "mediatype": media_type})


def assert_unknown(call: object, *args: object) -> None:
    with pytest.raises(BlobUnknown) as caught:
        call(*args)  # type: ignore[operator]
    assert type(caught.value) is BlobUnknown
    assert caught.value.code == "BLOB_UNKNOWN"


def assert_corrupt(call: object, *args: object) -> None:
    with pytest.raises(DescriptorCorrupt) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.code == "DESCRIPTOR_CORRUPT"


# ----------------------------------------------------------------------------------------------
# Global writes and clears (the registry's SetDescriptor and Clear on blobs::<digest>)


class TestGlobalWrites:
    def test_first_write(self, cache: DescriptorCache, redis_client: redis.Redis) -> None:
        cache.set_descriptor(D1, Descriptor(D1, 10, OCTET))
        assert dump(redis_client) == {f"blobs::{D1}": descriptor_hash(D1, 10, OCTET)}
        assert redis_client.hgetall(f"blobs::{D1}") == {
            "digest": D1,
            "size": "10",
            "mediatype": OCTET,
        }
        assert redis_client.ttl(f"blobs::{D1}") == -1

    def test_rewrite_overwrites_digest_and_size_but_not_media_type(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        cache.set_descriptor(D1, Descriptor(D1, 10, OCTET))
        cache.set_descriptor(D1, Descriptor(D1, 2**63 - 1, JSON))
        assert dump(redis_client) == {f"blobs::{D1}": descriptor_hash(D1, 2**63 - 1, OCTET)}

    def test_media_type_is_set_if_absent(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        # An entry from an older writer without a media type gets one, and keeps it after.
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": "3"})
        cache.set_descriptor(D1, Descriptor(D1, 4, JSON))
        cache.set_descriptor(D1, Descriptor(D1, 5, LAYER))
        assert dump(redis_client) == {f"blobs::{D1}": descriptor_hash(D1, 5, JSON)}

    def test_key_digest_and_descriptor_digest_may_differ_without_alias(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        # The global service stores what it is given under the key digest, and nothing else.
        cache.set_descriptor(D1, Descriptor(D2, 7, OCTET))
        cache.set_descriptor(L1, Descriptor(C1, 8, OCTET))
        assert dump(redis_client) == {
            f"blobs::{D1}": descriptor_hash(D2, 7, OCTET),
            f"blobs::{L1}": descriptor_hash(C1, 8, OCTET),
        }

    def test_write_keeps_a_legacy_length_field(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "length": "9"})
        cache.set_descriptor(D1, Descriptor(D1, 9, OCTET))
        assert dump(redis_client) == {
            f"blobs::{D1}": hash_of({"digest": D1, "length": "9", "size": "9", "mediatype": OCTET})
        }

    def test_clear_deletes_the_hash(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        cache.set_descriptor(D1, Descriptor(D1, 10, OCTET))
        cache.set_descriptor(D2, Descriptor(D2, 20, OCTET))
        cache.clear(D1)
        assert redis_client.exists(f"blobs::{D1}") == 0
        assert dump(redis_client) == {f"blobs::{D2}": descriptor_hash(D2, 20, OCTET)}

    def test_clear_leaves_a_legacy_length_field(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(
            f"blobs::{D1}",
            mapping={"digest": D1, "size": "10", "mediatype": OCTET, "length": "10"},
        )
        cache.clear(D1)
        assert dump(redis_client) == {f"blobs::{D1}": hash_of({"length": "10"})}
        assert_unknown(cache.stat, D1)

    def test_clear_never_touches_repository_keys(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        cache.repository_scoped("foo/bar").set_descriptor(D1, Descriptor(D1, 10, JSON))
        cache.clear(D1)
        assert dump(redis_client) == {
            "repository::foo/bar::blobs": set_of(D1),
            f"repository::foo/bar::blobs::{D1}": hash_of({"mediatype": JSON}),
        }

    def test_clear_of_unknown_raises_and_changes_nothing(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(f"blobs::{D2}", mapping={"length": "10", "path": "/x"})
        redis_client.sadd("repository::foo/bar::blobs", D1)
        before = dump(redis_client)
        assert_unknown(cache.clear, D1)  # no hash at all
        assert_unknown(cache.clear, D2)  # a v2.0 layerinfo hash: no descriptor field to delete
        assert dump(redis_client) == before

    def test_put_reports_what_was_read_back(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        assert cache.put(D1, Descriptor(D1, 10, OCTET)) == (Descriptor(D1, 10, OCTET), True)
        # The media type stays the first writer's; put says so instead of echoing its input.
        assert cache.put(D1, Descriptor(D1, 11, JSON)) == (Descriptor(D1, 11, OCTET), False)
        assert cache.stat(D1) == Descriptor(D1, 11, OCTET)

    def test_put_over_a_legacy_entry_counts_as_created(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "length": "10"})
        assert cache.put(D1, Descriptor(D1, 10, JSON)) == (Descriptor(D1, 10, JSON), True)

    def test_put_over_a_media_type_less_entry(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": "1"})
        assert cache.put(D1, Descriptor(D1, 2, JSON)) == (Descriptor(D1, 2, JSON), False)


# ----------------------------------------------------------------------------------------------
# Repository-scoped writes and clears (the registry's repository-scoped calls, 3.1+ clear)


class TestRepositoryWrites:
    def test_first_write(self, cache: DescriptorCache, redis_client: redis.Redis) -> None:
        cache.repository_scoped("foo/bar").set_descriptor(D1, Descriptor(D1, 10, LAYER))
        assert dump(redis_client) == {
            f"blobs::{D1}": descriptor_hash(D1, 10, LAYER),
            "repository::foo/bar::blobs": set_of(D1),
            f"repository::foo/bar::blobs::{D1}": hash_of({"mediatype": LAYER}),
        }
        assert redis_client.smembers("repository::foo/bar::blobs") == {D1}
        assert redis_client.hgetall(f"repository::foo/bar::blobs::{D1}") == {"mediatype": LAYER}
        for key in redis_client.keys("*"):
            assert redis_client.ttl(key) == -1

    def test_repository_media_type_is_overwritten_global_is_not(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        scoped = cache.repository_scoped("foo/bar")
        scoped.set_descriptor(D1, Descriptor(D1, 10, OCTET))
        scoped.set_descriptor(D1, Descriptor(D1, 12, JSON))
        assert dump(redis_client) == {
            f"blobs::{D1}": descriptor_hash(D1, 12, OCTET),
            "repository::foo/bar::blobs": set_of(D1),
            f"repository::foo/bar::blobs::{D1}": hash_of({"mediatype": JSON}),
        }
        assert scoped.stat(D1) == Descriptor(D1, 12, JSON)
        assert cache.stat(D1) == Descriptor(D1, 12, OCTET)

    def test_alias_write_writes_both_digests(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        cache.repository_scoped("foo/bar").set_descriptor(L1, Descriptor(C1, 10, OCTET))
        assert dump(redis_client) == {
            f"blobs::{L1}": descriptor_hash(C1, 10, OCTET),
            f"blobs::{C1}": descriptor_hash(C1, 10, OCTET),
            "repository::foo/bar::blobs": set_of(L1, C1),
            f"repository::foo/bar::blobs::{L1}": hash_of({"mediatype": OCTET}),
            f"repository::foo/bar::blobs::{C1}": hash_of({"mediatype": OCTET}),
        }

    def test_alias_rewrite_overrides_both_repository_media_types(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        scoped = cache.repository_scoped("foo/bar")
        scoped.set_descriptor(L1, Descriptor(C1, 10, OCTET))
        scoped.set_descriptor(L1, Descriptor(C1, 11, JSON))
        assert dump(redis_client) == {
            f"blobs::{L1}": descriptor_hash(C1, 11, OCTET),
            f"blobs::{C1}": descriptor_hash(C1, 11, OCTET),
            "repository::foo/bar::blobs": set_of(L1, C1),
            f"repository::foo/bar::blobs::{L1}": hash_of({"mediatype": JSON}),
            f"repository::foo/bar::blobs::{C1}": hash_of({"mediatype": JSON}),
        }
        assert scoped.stat(C1) == Descriptor(C1, 11, JSON)

    def test_same_algorithm_mismatch_writes_nothing(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        cache.set_descriptor(D2, Descriptor(D2, 1, OCTET))
        before = dump(redis_client)
        with pytest.raises(DescriptorInvalid) as caught:
            cache.repository_scoped("foo/bar").set_descriptor(D1, Descriptor(D2, 1, OCTET))
        assert type(caught.value) is DescriptorInvalid
        assert D1 in str(caught.value) and D2 in str(caught.value)
        assert dump(redis_client) == before

    @pytest.mark.parametrize(
        "name", ["Foo/bar", "localhost:5000/foo", "library/ubuntu", "ubuntu", "[::1]:5000/x"]
    )
    def test_repository_name_is_used_verbatim(
        self, cache: DescriptorCache, redis_client: redis.Redis, name: str
    ) -> None:
        cache.repository_scoped(name).set_descriptor(D1, Descriptor(D1, 1, OCTET))
        assert set(redis_client.keys("repository::*")) == {
            f"repository::{name}::blobs",
            f"repository::{name}::blobs::{D1}",
        }

    def test_clear_revokes_membership_and_clears_global_fields(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        cache.repository_scoped("foo/bar").set_descriptor(D1, Descriptor(D1, 10, OCTET))
        cache.repository_scoped("foo/bar").set_descriptor(D2, Descriptor(D2, 20, OCTET))
        cache.repository_scoped("team/app").set_descriptor(D1, Descriptor(D1, 10, JSON))
        cache.repository_scoped("foo/bar").clear(D1)
        assert dump(redis_client) == {
            f"blobs::{D2}": descriptor_hash(D2, 20, OCTET),
            "repository::foo/bar::blobs": set_of(D2),
            f"repository::foo/bar::blobs::{D2}": hash_of({"mediatype": OCTET}),
            # Other repositories keep their membership; they miss until the next fill.
            "repository::team/app::blobs": set_of(D1),
            f"repository::team/app::blobs::{D1}": hash_of({"mediatype": JSON}),
        }
        assert_unknown(cache.repository_scoped("team/app").stat, D1)

    def test_clear_of_the_last_member_removes_the_set(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        scoped = cache.repository_scoped("foo/bar")
        scoped.set_descriptor(D1, Descriptor(D1, 10, OCTET))
        scoped.clear(D1)
        assert dump(redis_client) == {}

    def test_clear_leaves_a_legacy_length_field(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        scoped = cache.repository_scoped("foo/bar")
        scoped.set_descriptor(D1, Descriptor(D1, 10, OCTET))
        redis_client.hset(f"blobs::{D1}", "length", "10")
        scoped.clear(D1)
        assert dump(redis_client) == {f"blobs::{D1}": hash_of({"length": "10"})}

    def test_clear_of_an_alias_leaves_the_canonical_entries(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        # As in the registry, a repository clear leaves the alias's canonical entry: only the
        # requested digest is cleared.
        scoped = cache.repository_scoped("foo/bar")
        scoped.set_descriptor(L1, Descriptor(C1, 10, OCTET))
        scoped.clear(L1)
        assert dump(redis_client) == {
            f"blobs::{C1}": descriptor_hash(C1, 10, OCTET),
            "repository::foo/bar::blobs": set_of(C1),
            f"repository::foo/bar::blobs::{C1}": hash_of({"mediatype": OCTET}),
        }

    def test_clear_of_a_member_whose_global_hash_is_gone_succeeds(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        # What a 2.x blob DELETE leaves behind (membership without the global hash): 3.1+ clears
        # it instead of answering unknown blob.
        redis_client.sadd("repository::team/app::blobs", D1)
        redis_client.hset(f"repository::team/app::blobs::{D1}", "mediatype", OCTET)
        cache.repository_scoped("team/app").clear(D1)
        assert dump(redis_client) == {}

    def test_clear_of_a_non_member_raises_and_changes_nothing(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        cache.set_descriptor(D1, Descriptor(D1, 10, OCTET))
        cache.repository_scoped("team/app").set_descriptor(D1, Descriptor(D1, 10, OCTET))
        # A repository hash without membership is not membership either.
        redis_client.hset(f"repository::foo/bar::blobs::{D1}", "mediatype", JSON)
        before = dump(redis_client)
        assert_unknown(cache.repository_scoped("foo/bar").clear, D1)
        assert_unknown(cache.repository_scoped("team/app").clear, D2)
        assert dump(redis_client) == before

    def test_put_reports_what_was_read_back(self, cache: DescriptorCache) -> None:
        scoped = cache.repository_scoped("foo/bar")
        assert scoped.put(D1, Descriptor(D1, 10, OCTET)) == (Descriptor(D1, 10, OCTET), True)
        assert scoped.put(D1, Descriptor(D1, 11, JSON)) == (Descriptor(D1, 11, JSON), False)
        assert scoped.stat(D1) == Descriptor(D1, 11, JSON)
        # The same digest in another repository is new there, although the global hash exists.
        other = cache.repository_scoped("team/app")
        assert other.put(D1, Descriptor(D1, 11, LAYER)) == (Descriptor(D1, 11, LAYER), True)

    def test_put_of_an_alias_reads_back_the_canonical_digest(self, cache: DescriptorCache) -> None:
        scoped = cache.repository_scoped("foo/bar")
        assert scoped.put(L1, Descriptor(C1, 10, OCTET)) == (Descriptor(C1, 10, OCTET), True)
        assert scoped.put(L1, Descriptor(C1, 10, JSON)) == (Descriptor(C1, 10, JSON), False)

    def test_put_over_a_stale_member_counts_as_created(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.sadd("repository::foo/bar::blobs", D1)
        redis_client.hset(f"repository::foo/bar::blobs::{D1}", "mediatype", OCTET)
        scoped = cache.repository_scoped("foo/bar")
        assert scoped.put(D1, Descriptor(D1, 3, OCTET)) == (Descriptor(D1, 3, OCTET), True)


# ----------------------------------------------------------------------------------------------
# Invalid input writes nothing and sends nothing


@pytest.mark.parametrize(
    ("digest", "descriptor", "error_class"),
    [
        # The key digest is checked first, then the descriptor: digest, size, media type.
        ("", Descriptor("sha384:abc", 10, OCTET), DigestInvalidFormat),
        (D1, Descriptor("", 10, OCTET), DigestInvalidFormat),
        (D1, Descriptor("sha384:abc", -1, ""), DigestInvalidLength),
        (D1, Descriptor(D1, True, ""), SizeInvalid),
        (D1, Descriptor(D1, 2**63, OCTET), SizeInvalid),
        (D1, Descriptor(D1, 10, ""), DescriptorInvalid),
        (D1, Descriptor(D1, 10, "text/plain; charset=utf-8"), DescriptorInvalid),
    ],
)
@pytest.mark.parametrize("scope", [None, "foo/bar"])
def test_invalid_write_is_refused_and_writes_nothing(
    cache: DescriptorCache,
    redis_client: redis.Redis,
    digest: str,
    descriptor: Descriptor,
    error_class: type[Exception],
    scope: str | None,
) -> None:
    service = cache if scope is None else cache.repository_scoped(scope)
    with pytest.raises(error_class) as caught:
        service.set_descriptor(digest, descriptor)
    assert type(caught.value) is error_class
    assert dump(redis_client) == {}


# ----------------------------------------------------------------------------------------------
# Reading what older registries left behind (legacy fields, stale shapes, upper-case digests)


class TestLegacyData:
    def test_length_only_hash_is_a_miss(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(
            f"blobs::{D1}", mapping={"digest": D1, "length": "10", "mediatype": OCTET}
        )
        redis_client.sadd("repository::foo/bar::blobs", D1)
        redis_client.hset(f"repository::foo/bar::blobs::{D1}", "mediatype", OCTET)
        assert_unknown(cache.stat, D1)
        assert_unknown(cache.repository_scoped("foo/bar").stat, D1)

    def test_layerinfo_hash_of_v2_0_is_a_miss(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(f"blobs::{D1}", mapping={"path": "/docker/registry/x", "length": "1"})
        assert_unknown(cache.stat, D1)

    def test_size_without_digest_is_a_miss(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        # What a pre-2.7 global clear left: it deleted `length`, not `size`.
        redis_client.hset(f"blobs::{D1}", "size", "10")
        assert_unknown(cache.stat, D1)

    def test_missing_media_type_reads_as_empty(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": "10"})
        assert cache.stat(D1) == Descriptor(D1, 10, "")
        redis_client.sadd("repository::foo/bar::blobs", D1)
        redis_client.hset(f"repository::foo/bar::blobs::{D1}", "mediatype", "")
        assert cache.repository_scoped("foo/bar").stat(D1) == Descriptor(D1, 10, "")

    def test_membership_without_global_hash_is_a_miss(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.sadd("repository::team/app::blobs", D1)
        redis_client.hset(f"repository::team/app::blobs::{D1}", "mediatype", OCTET)
        assert_unknown(cache.repository_scoped("team/app").stat, D1)
        assert_unknown(cache.stat, D1)

    def test_global_hash_without_membership(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        # A manifest read only through the global statter (2.8 writes no repository keys for it).
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": "476", "mediatype": OCTET})
        assert cache.stat(D1) == Descriptor(D1, 476, OCTET)
        assert_unknown(cache.repository_scoped("library/alpine").stat, D1)

    def test_extra_fields_are_ignored(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(
            f"blobs::{D1}",
            mapping={"digest": D1, "size": "10", "mediatype": OCTET, "length": "99", "urls": "x"},
        )
        redis_client.sadd("repository::foo/bar::blobs", D1)
        redis_client.hset(
            f"repository::foo/bar::blobs::{D1}", mapping={"mediatype": JSON, "size": "1"}
        )
        assert cache.stat(D1) == Descriptor(D1, 10, OCTET)
        assert cache.repository_scoped("foo/bar").stat(D1) == Descriptor(D1, 10, JSON)

    @pytest.mark.parametrize(
        "size", ["abc", "", "1.5", "1e3", " 10", "10 ", "0x10", "-1", "9223372036854775808"]
    )
    def test_unreadable_size_is_corrupt_globally_and_in_a_repository(
        self, cache: DescriptorCache, redis_client: redis.Redis, size: str
    ) -> None:
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": size, "mediatype": OCTET})
        redis_client.sadd("repository::foo/bar::blobs", D1)
        redis_client.hset(f"repository::foo/bar::blobs::{D1}", "mediatype", OCTET)
        assert_corrupt(cache.stat, D1)
        assert_corrupt(cache.repository_scoped("foo/bar").stat, D1)

    @pytest.mark.parametrize(("size", "expected"), [("+7", 7), ("007", 7), ("0", 0)])
    def test_sizes_go_parses_are_read(
        self, cache: DescriptorCache, redis_client: redis.Redis, size: str, expected: int
    ) -> None:
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": size})
        assert cache.stat(D1) == Descriptor(D1, expected, "")

    def test_unreadable_size_is_corrupt_before_the_repository_hash_is_looked_at(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        # The registry reads the global hash (and fails on its size) before the repository hash.
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": "abc"})
        redis_client.sadd("repository::foo/bar::blobs", D1)
        assert_corrupt(cache.repository_scoped("foo/bar").stat, D1)

    def test_member_without_repository_hash_is_a_miss(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": "10", "mediatype": OCTET})
        redis_client.sadd("repository::foo/bar::blobs", D1)
        assert_unknown(cache.repository_scoped("foo/bar").stat, D1)
        assert cache.stat(D1) == Descriptor(D1, 10, OCTET)

    def test_repository_hash_without_media_type_is_a_miss(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": "10", "mediatype": OCTET})
        redis_client.sadd("repository::foo/bar::blobs", D1)
        redis_client.hset(f"repository::foo/bar::blobs::{D1}", "other", "x")
        assert_unknown(cache.repository_scoped("foo/bar").stat, D1)

    def test_empty_repository_media_type_falls_back_to_the_global_one(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": "10", "mediatype": LAYER})
        redis_client.sadd("repository::foo/bar::blobs", D1)
        redis_client.hset(f"repository::foo/bar::blobs::{D1}", "mediatype", "")
        assert cache.repository_scoped("foo/bar").stat(D1) == Descriptor(D1, 10, LAYER)

    def test_stored_digest_is_returned_as_written(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        # Registries up to 2.8.2 accepted upper-case hex; what they wrote is read back unchanged.
        upper = "sha256:" + "AB" * 32
        redis_client.hset(f"blobs::{D1}", mapping={"digest": upper, "size": "1"})
        assert cache.stat(D1) == Descriptor(upper, 1, "")

    def test_stale_membership_of_b_8_3_3_after_a_peer_refill(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        # Left by a 2.x registry's blob DELETE in team/app: membership and repository hash stay.
        redis_client.sadd("repository::team/app::blobs", D1)
        redis_client.hset(f"repository::team/app::blobs::{D1}", "mediatype", OCTET)
        cache.repository_scoped("library/alpine").set_descriptor(D1, Descriptor(D1, 141, OCTET))
        # The flaw the registry shows: the refill revives team/app's stale entry...
        assert cache.repository_scoped("team/app").stat(D1) == Descriptor(D1, 141, OCTET)
        # ...and a blobcache clear in team/app revokes it for good.
        cache.repository_scoped("team/app").clear(D1)
        cache.repository_scoped("library/alpine").set_descriptor(D1, Descriptor(D1, 141, OCTET))
        assert_unknown(cache.repository_scoped("team/app").stat, D1)
        assert redis_client.exists("repository::team/app::blobs") == 0
        assert redis_client.exists(f"repository::team/app::blobs::{D1}") == 0


class TestWrongTypeIsNamed:
    """A read that meets a key of the wrong type says which key, in a message an operator can
    act on (plain reads get a bare WRONGTYPE reply that names nothing)."""

    def test_global_stat_names_the_global_key(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.set(f"blobs::{D1}", "not a hash")
        with pytest.raises(DescriptorCorrupt) as caught:
            cache.stat(D1)
        assert caught.value.message == (
            f"a cache key holds a value of the wrong type: blobs::{D1} holds a string"
        )

    @pytest.mark.parametrize(
        ("wrong", "kind"),
        [
            (f"blobs::{D1}", "list"),
            (f"repository::foo/bar::blobs::{D1}", "list"),
        ],
    )
    def test_repository_stat_names_the_wrong_hash(
        self, cache: DescriptorCache, redis_client: redis.Redis, wrong: str, kind: str
    ) -> None:
        cache.repository_scoped("foo/bar").set_descriptor(D1, Descriptor(D1, 10, OCTET))
        redis_client.delete(wrong)
        redis_client.rpush(wrong, "x")
        with pytest.raises(DescriptorCorrupt) as caught:
            cache.repository_scoped("foo/bar").stat(D1)
        assert caught.value.message == (
            f"a cache key holds a value of the wrong type: {wrong} holds a {kind}"
        )

    def test_repository_stat_names_a_membership_key_of_the_wrong_type(
        self, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        redis_client.hset("repository::foo/bar::blobs", "x", "y")
        with pytest.raises(DescriptorCorrupt) as caught:
            cache.repository_scoped("foo/bar").stat(D1)
        assert caught.value.message == (
            "a cache key holds a value of the wrong type: repository::foo/bar::blobs holds a hash"
        )
