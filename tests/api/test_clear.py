"""DELETE /api/repositories/<name>/blobs: the whole repository scope, global entries stay."""

from __future__ import annotations

import redis
from rest_framework.test import APIClient

from tests.helpers.api import OCTET, SHA256, SHA256_B, SHA384, link
from tests.redis_state import keyspace


def test_unknown_repository_clears_nothing(api: APIClient, redis_client: redis.Redis) -> None:
    link(redis_client, "other/repo", SHA256)
    before = keyspace(redis_client)
    response = api.delete("/api/repositories/library/alpine/blobs")
    assert response.status_code == 200
    assert response.json() == {"cleared": 0, "keys_deleted": 0}
    assert keyspace(redis_client) == before


def test_clears_membership_and_repository_hashes_only(
    api: APIClient, redis_client: redis.Redis
) -> None:
    link(redis_client, "library/alpine", SHA256, 10)
    link(redis_client, "library/alpine", SHA256_B, 20)
    link(redis_client, "team/blobs/app", SHA256, 10)
    # Left by an older registry: a repository hash whose membership is gone. Cleared and counted.
    redis_client.hset(f"repository::library/alpine::blobs::{SHA384}", "mediatype", OCTET)

    response = api.delete("/api/repositories/library/alpine/blobs/")
    assert response.status_code == 200
    assert response.json() == {"cleared": 3, "keys_deleted": 4}
    assert keyspace(redis_client) == {
        f"blobs::{SHA256}": {"digest": SHA256, "size": "10", "mediatype": OCTET},
        f"blobs::{SHA256_B}": {"digest": SHA256_B, "size": "20", "mediatype": OCTET},
        "repository::team/blobs/app::blobs": {SHA256},
        f"repository::team/blobs/app::blobs::{SHA256}": {"mediatype": OCTET},
    }
    assert api.get("/api/repositories/library/alpine/blobs").json() == {
        "results": [],
        "next": None,
    }
    assert api.get(f"/api/blobs/{SHA256}").status_code == 200
    assert api.delete("/api/repositories/library/alpine/blobs").json() == {
        "cleared": 0,
        "keys_deleted": 0,
    }


def test_a_name_with_a_blobs_component_clears_its_own_scope(
    api: APIClient, redis_client: redis.Redis
) -> None:
    link(redis_client, "team/blobs/app", SHA256)
    link(redis_client, "team", SHA256_B)
    assert api.delete("/api/repositories/team/blobs/app/blobs").json() == {
        "cleared": 1,
        "keys_deleted": 2,
    }
    assert sorted(redis_client.keys("repository::*")) == [
        "repository::team::blobs",
        f"repository::team::blobs::{SHA256_B}",
    ]


def test_a_membership_key_of_the_wrong_type_is_deleted_and_counted(
    api: APIClient, redis_client: redis.Redis
) -> None:
    redis_client.set("repository::library/alpine::blobs", "not a set")
    link(redis_client, "other/repo", SHA256)
    before = keyspace(redis_client)
    response = api.delete("/api/repositories/library/alpine/blobs")
    assert response.status_code == 200
    assert response.json() == {"cleared": 0, "keys_deleted": 1}
    after = keyspace(redis_client)
    assert set(before) - set(after) == {"repository::library/alpine::blobs"}
    assert set(after) - set(before) == set()
