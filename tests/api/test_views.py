"""The descriptor routes, global and repository-scoped: exact bodies and exact Redis state."""

from __future__ import annotations

import pytest
import redis
from rest_framework.test import APIClient

from tests.helpers.api import LAYER, OCTET, SHA256, SHA256_B, SHA384, body, envelope
from tests.redis_state import keyspace

GLOBAL = f"/api/blobs/{SHA256}"
SCOPED = f"/api/repositories/library/alpine/blobs/{SHA256}"
MEMBERSHIP = "repository::library/alpine::blobs"
REPOSITORY_HASH = f"repository::library/alpine::blobs::{SHA256}"


class TestGlobal:
    def test_get_miss(self, api: APIClient, redis_client: redis.Redis) -> None:
        response = api.get(GLOBAL)
        assert response.status_code == 404
        assert response.json() == envelope("BLOB_UNKNOWN", "unknown blob")
        assert keyspace(redis_client) == {}

    def test_put_creates_then_updates_with_global_semantics(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        created = api.put(GLOBAL, {"size": 42, "mediaType": OCTET}, format="json")
        assert created.status_code == 201
        assert created.json() == body(SHA256, 42, OCTET)
        assert keyspace(redis_client) == {
            f"blobs::{SHA256}": {"digest": SHA256, "size": "42", "mediatype": OCTET}
        }
        # Size overwritten, media type kept: set only if absent (HSETNX), as the registry does.
        updated = api.put(GLOBAL, {"size": 7, "mediaType": LAYER}, format="json")
        assert updated.status_code == 200
        assert updated.json() == body(SHA256, 7, OCTET)
        assert api.get(GLOBAL).json() == updated.json()
        assert keyspace(redis_client) == {
            f"blobs::{SHA256}": {"digest": SHA256, "size": "7", "mediatype": OCTET}
        }

    def test_put_answers_what_get_reads_for_a_legacy_entry(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        # A 2015 hash with only "length" is a miss, so the PUT creates (201) and the old field
        # stays behind, as in the registry.
        redis_client.hset(f"blobs::{SHA256}", mapping={"length": "9", "mediatype": LAYER})
        response = api.put(GLOBAL, {"size": 9, "mediaType": OCTET}, format="json")
        assert response.status_code == 201
        assert response.json() == body(SHA256, 9, LAYER)
        assert api.get(GLOBAL).json() == body(SHA256, 9, LAYER)
        assert redis_client.hgetall(f"blobs::{SHA256}") == {
            "length": "9",
            "mediatype": LAYER,
            "digest": SHA256,
            "size": "9",
        }

    def test_get_and_head_send_the_same_headers(self, api: APIClient) -> None:
        api.put(GLOBAL, {"size": 42, "mediaType": OCTET}, format="json")
        get = api.get(GLOBAL)
        head = api.head(GLOBAL)
        assert get.status_code == head.status_code == 200
        assert dict(head.items()) == dict(get.items())
        assert head["Content-Length"] == str(len(get.content))
        assert head.content == b""

    def test_head_of_a_miss_is_404_with_the_same_headers(self, api: APIClient) -> None:
        get = api.get(GLOBAL)
        head = api.head(GLOBAL)
        assert head.status_code == 404
        assert dict(head.items()) == dict(get.items())

    def test_delete(self, api: APIClient, redis_client: redis.Redis) -> None:
        api.put(GLOBAL, {"size": 42, "mediaType": OCTET}, format="json")
        response = api.delete(GLOBAL)
        assert response.status_code == 204
        assert response.content == b""
        assert keyspace(redis_client) == {}
        again = api.delete(GLOBAL)
        assert again.status_code == 404
        assert again.json() == envelope("BLOB_UNKNOWN", "unknown blob")

    def test_delete_never_touches_repository_keys(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        api.put(SCOPED, {"size": 42, "mediaType": OCTET}, format="json")
        assert api.delete(GLOBAL).status_code == 204
        assert keyspace(redis_client) == {
            MEMBERSHIP: {SHA256},
            REPOSITORY_HASH: {"mediatype": OCTET},
        }

    def test_body_digest_of_another_algorithm_is_stored_as_canonical(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        response = api.put(
            f"/api/blobs/{SHA384}", {"digest": SHA256, "size": 5, "mediaType": OCTET}, format="json"
        )
        assert response.status_code == 201
        assert response.json() == body(SHA256, 5, OCTET)
        assert keyspace(redis_client) == {
            f"blobs::{SHA384}": {"digest": SHA256, "size": "5", "mediatype": OCTET}
        }

    def test_same_algorithm_mismatch_is_refused_unlike_the_registry(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        response = api.put(GLOBAL, body(SHA256_B, 5, OCTET), format="json")
        assert response.status_code == 400
        assert response.json() == envelope(
            "DESCRIPTOR_INVALID",
            f"the body's digest {SHA256_B} and the path's {SHA256} differ but use the same "
            "algorithm",
        )
        assert keyspace(redis_client) == {}

    def test_corrupt_size_is_409_and_delete_still_clears(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        redis_client.hset(f"blobs::{SHA256}", mapping={"digest": SHA256, "size": "abc"})
        response = api.get(GLOBAL)
        assert response.status_code == 409
        assert response.json() == envelope(
            "DESCRIPTOR_CORRUPT", "the cached size b'abc' is not an integer"
        )
        assert api.delete(GLOBAL).status_code == 204
        assert keyspace(redis_client) == {}

    def test_key_of_the_wrong_type_is_409_and_delete_removes_it(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        redis_client.set(f"blobs::{SHA256}", "not a hash")
        response = api.get(GLOBAL)
        assert response.status_code == 409
        assert response.json()["errors"][0]["code"] == "DESCRIPTOR_CORRUPT"
        put = api.put(GLOBAL, {"size": 1, "mediaType": OCTET}, format="json")
        assert put.status_code == 409
        assert put.json() == envelope(
            "DESCRIPTOR_CORRUPT",
            f"a cache key holds a value of the wrong type: blobs::{SHA256} "
            "holds a string",
        )
        assert redis_client.get(f"blobs::{SHA256}") == "not a hash"
        assert api.delete(GLOBAL).status_code == 204
        assert keyspace(redis_client) == {}


class TestRepositoryScoped:
    def test_get_of_a_non_member_is_404(self, api: APIClient, redis_client: redis.Redis) -> None:
        api.put(GLOBAL, {"size": 42, "mediaType": OCTET}, format="json")
        response = api.get(SCOPED)
        assert response.status_code == 404
        assert response.json() == envelope("BLOB_UNKNOWN", "unknown blob")

    def test_put_get_delete(self, api: APIClient, redis_client: redis.Redis) -> None:
        created = api.put(SCOPED, {"size": 42, "mediaType": LAYER}, format="json")
        assert created.status_code == 201
        assert created.json() == body(SHA256, 42, LAYER)
        assert keyspace(redis_client) == {
            MEMBERSHIP: {SHA256},
            f"blobs::{SHA256}": {"digest": SHA256, "size": "42", "mediatype": LAYER},
            REPOSITORY_HASH: {"mediatype": LAYER},
        }
        # The repository's media type overrides the global one, which stays set-if-absent.
        updated = api.put(SCOPED, {"size": 43, "mediaType": OCTET}, format="json")
        assert updated.status_code == 200
        assert updated.json() == body(SHA256, 43, OCTET)
        assert api.get(SCOPED).json() == body(SHA256, 43, OCTET)
        assert api.get(GLOBAL).json() == body(SHA256, 43, LAYER)

        deleted = api.delete(SCOPED)
        assert deleted.status_code == 204
        assert keyspace(redis_client) == {}
        assert api.delete(SCOPED).json() == envelope("BLOB_UNKNOWN", "unknown blob")
        assert api.get(SCOPED).status_code == 404

    def test_put_answers_201_when_get_would_have_missed(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        # Member with a global hash but no repository hash: a miss under 3.x rules.
        redis_client.sadd(MEMBERSHIP, SHA256)
        redis_client.hset(f"blobs::{SHA256}", mapping={"digest": SHA256, "size": "42"})
        assert api.get(SCOPED).status_code == 404
        response = api.put(SCOPED, {"size": 42, "mediaType": OCTET}, format="json")
        assert response.status_code == 201
        assert response.json() == body(SHA256, 42, OCTET)

    def test_alias_write_stores_both_digests(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        path = f"/api/repositories/library/alpine/blobs/{SHA384}"
        response = api.put(path, body(SHA256, 10, OCTET), format="json")
        assert response.status_code == 201
        assert response.json() == body(SHA256, 10, OCTET)
        assert keyspace(redis_client) == {
            MEMBERSHIP: {SHA256, SHA384},
            f"blobs::{SHA384}": {"digest": SHA256, "size": "10", "mediatype": OCTET},
            f"blobs::{SHA256}": {"digest": SHA256, "size": "10", "mediatype": OCTET},
            f"repository::library/alpine::blobs::{SHA384}": {"mediatype": OCTET},
            REPOSITORY_HASH: {"mediatype": OCTET},
        }
        assert api.get(path).json() == body(SHA256, 10, OCTET)

    def test_same_algorithm_mismatch_writes_nothing(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        response = api.put(SCOPED, body(SHA256_B, 5, OCTET), format="json")
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == "DESCRIPTOR_INVALID"
        assert keyspace(redis_client) == {}

    @pytest.mark.parametrize(
        "name",
        ["team/blobs/app", "blobs", "blobs/blobs", "localhost:5000/blobs/x", "Foo/bar"],
    )
    def test_names_with_blobs_components_route_to_their_own_keys(
        self, api: APIClient, redis_client: redis.Redis, name: str
    ) -> None:
        path = f"/api/repositories/{name}/blobs/{SHA256}"
        assert api.put(path, {"size": 1, "mediaType": OCTET}, format="json").status_code == 201
        assert keyspace(redis_client) == {
            f"repository::{name}::blobs": {SHA256},
            f"blobs::{SHA256}": {"digest": SHA256, "size": "1", "mediatype": OCTET},
            f"repository::{name}::blobs::{SHA256}": {"mediatype": OCTET},
        }
        assert api.get(path).json() == body(SHA256, 1, OCTET)
        listing = api.get(f"/api/repositories/{name}/blobs")
        assert listing.json() == {
            "results": [{"digest": SHA256, "descriptor": body(SHA256, 1, OCTET)}],
            "next": None,
        }
        assert api.get("/api/repositories").json() == {
            "results": [{"name": name, "members": 1}],
            "next": None,
        }

    def test_corrupt_entry_is_409_and_delete_still_clears(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        api.put(SCOPED, {"size": 42, "mediaType": OCTET}, format="json")
        redis_client.hset(f"blobs::{SHA256}", "size", "-")
        response = api.get(SCOPED)
        assert response.status_code == 409
        assert response.json() == envelope(
            "DESCRIPTOR_CORRUPT", "the cached size b'-' is not an integer"
        )
        assert api.delete(SCOPED).status_code == 204
        assert keyspace(redis_client) == {}


@pytest.mark.parametrize(
    "path",
    [
        GLOBAL,
        SCOPED,
    ],
)
def test_every_method_answers_with_and_without_trailing_slash(
    api: APIClient, redis_client: redis.Redis, path: str
) -> None:
    for suffix in ("", "/"):
        url = path + suffix
        put = api.put(url, {"size": 3, "mediaType": OCTET}, format="json")
        assert put.status_code == 201, url
        assert api.get(url).status_code == 200
        assert api.head(url).status_code == 200
        assert api.delete(url).status_code == 204
        assert api.get(url).status_code == 404
    for url in ("/api/repositories", "/api/repositories/", "/api/repositories/a/blobs",
                "/api/repositories/a/blobs/", "/api/schema", "/api/schema/", "/api/docs",
                "/api/docs/"):
        assert api.get(url).status_code == 200, url
    for url in ("/api/repositories/a/blobs", "/api/repositories/a/blobs/"):
        assert api.delete(url).status_code == 200, url


def test_descriptor_serializer_renders_what_its_fields_declare() -> None:
    """The fast path (``as_dict``) gives exactly what DRF's field-by-field rendering gives."""
    from rest_framework import serializers

    from blobcache import Descriptor
    from blobcache.api.serializers import DescriptorSerializer

    for descriptor in (Descriptor(SHA256, 0, ""), Descriptor(SHA384, 2**63 - 1, LAYER)):
        fast = DescriptorSerializer(descriptor).data
        generic = serializers.Serializer.to_representation(DescriptorSerializer(), descriptor)
        expected = body(descriptor.digest, descriptor.size, descriptor.media_type)
        assert fast == dict(generic) == expected
