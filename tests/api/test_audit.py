"""The REST API's audit rows: one per write or clear, failures included, none for reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.test import APIClient

from tests.audit_state import audit_row, audit_rows
from tests.helpers.api import OCTET, SHA256, SHA256_B, link
from tests.helpers.storage_tree import APP, EXPECTED_REASONS, StorageTree

GLOBAL = f"/api/blobs/{SHA256}"
SCOPED = f"/api/repositories/library/alpine/blobs/{SHA256}"
SCOPE = "/api/repositories/library/alpine/blobs"


def row(operation: str = "set", **fields: Any) -> dict[str, Any]:
    """A row written by the superuser ``root`` through the API."""
    return audit_row(operation, interface="api", user="root", **fields)


class TestWrites:
    def test_put_global_created_then_updated(self, api: APIClient) -> None:
        assert api.put(GLOBAL, {"size": 10, "mediaType": OCTET}, format="json").status_code == 201
        assert api.put(GLOBAL, {"size": 12, "mediaType": OCTET}, format="json").status_code == 200
        assert audit_rows() == [
            row(
                scope="global",
                digest=SHA256,
                detail=f"created: size=10 mediaType={OCTET}",
            ),
            row(
                scope="global",
                digest=SHA256,
                detail=f"updated: size=12 mediaType={OCTET}",
            ),
        ]

    def test_put_in_a_repository(self, api: APIClient) -> None:
        response = api.put(SCOPED, {"size": 10, "mediaType": OCTET}, format="json")
        assert response.status_code == 201
        assert audit_rows() == [
            row(
                scope="repository",
                repository="library/alpine",
                digest=SHA256,
                detail=f"created: size=10 mediaType={OCTET}",
            )
        ]

    def test_delete_global_and_repository_entries(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        link(redis_client, "library/alpine", SHA256)
        assert api.delete(SCOPED).status_code == 204
        redis_client.hset(f"blobs::{SHA256_B}", mapping={"digest": SHA256_B, "size": "1"})
        assert api.delete(f"/api/blobs/{SHA256_B}").status_code == 204
        assert audit_rows() == [
            row(
                operation="clear",
                scope="repository",
                repository="library/alpine",
                digest=SHA256,
                cleared=1,
            ),
            row("clear", scope="global", digest=SHA256_B, cleared=1),
        ]

    def test_a_repository_scope_is_one_row_with_its_counts(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        for number in range(250):
            link(redis_client, "library/alpine", f"sha256:{number:064x}")
        assert api.delete(SCOPE).json() == {"cleared": 250, "keys_deleted": 251}
        assert redis_client.exists("repository::library/alpine::blobs") == 0
        assert audit_rows() == [
            row(
                operation="clear_repository_scope",
                scope="repository",
                repository="library/alpine",
                cleared=250,
                keys_deleted=251,
            )
        ]

    def test_reads_are_not_recorded(self, api: APIClient, redis_client: redis.Redis) -> None:
        link(redis_client, "library/alpine", SHA256)
        assert api.get(GLOBAL).status_code == 200
        assert api.get(SCOPED).status_code == 200
        assert api.get(SCOPE).status_code == 200
        assert api.get("/api/repositories").status_code == 200
        assert api.get(f"/api/blobs/{SHA256_B}").status_code == 404
        assert audit_rows() == []

    def test_a_token_user_is_named(self, redis_client: redis.Redis, db: None) -> None:
        user = User.objects.create_superuser("portal-bot", "bot@example.com", "pw")
        client = APIClient()
        client.force_authenticate(user)
        assert client.delete(GLOBAL).status_code == 404
        assert [(entry["user"], entry["outcome"]) for entry in audit_rows()] == [
            ("portal-bot", "miss")
        ]


class TestFailures:
    def test_clear_of_an_unknown_digest_is_a_miss(self, api: APIClient) -> None:
        assert api.delete(GLOBAL).status_code == 404
        assert audit_rows() == [
            row(
                operation="clear",
                scope="global",
                digest=SHA256,
                outcome="miss",
                detail="unknown blob",
            )
        ]

    def test_put_over_a_corrupt_entry(self, api: APIClient, redis_client: redis.Redis) -> None:
        redis_client.set(f"blobs::{SHA256}", "not a hash")
        assert api.put(GLOBAL, {"size": 1, "mediaType": OCTET}, format="json").status_code == 409
        (entry,) = audit_rows()
        assert (entry["operation"], entry["outcome"], entry["digest"]) == ("set", "corrupt", SHA256)
        assert entry["detail"] == (
            f"a cache key holds a value of the wrong type: blobs::{SHA256} "
            "holds a string"
        )

    @pytest.mark.parametrize(
        ("method", "path", "body", "operation"),
        [
            ("put", "/api/blobs/sha256:abc", {"size": 1, "mediaType": OCTET}, "set"),
            ("put", GLOBAL, {"size": -1, "mediaType": OCTET}, "set"),
            ("put", GLOBAL, "[1]", "set"),
            ("put", GLOBAL, "{", "set"),
            ("put", "/api/repositories/UPPER/blobs/" + SHA256, {"size": 1}, "set"),
            ("delete", "/api/blobs/md5:abc", None, "clear"),
            ("delete", "/api/repositories/UPPER/blobs", None, "clear_repository_scope"),
        ],
    )
    def test_bad_input_is_invalid(
        self,
        api: APIClient,
        redis_client: redis.Redis,
        method: str,
        path: str,
        body: Any,
        operation: str,
    ) -> None:
        if method == "put":
            raw = body if isinstance(body, str) else json.dumps(body)
            response = api.put(path, raw, content_type="application/json")
        else:
            response = api.delete(path)
        assert response.status_code == 400, response.content
        (entry,) = audit_rows()
        assert (entry["operation"], entry["interface"], entry["outcome"]) == (
            operation,
            "api",
            "invalid",
        )
        assert entry["detail"] == response.json()["errors"][0]["message"]
        assert redis_client.dbsize() == 0

    @pytest.mark.standalone
    def test_redis_down_is_unavailable(self, superuser: User, stopped_redis: int) -> None:
        client = APIClient()
        client.force_authenticate(superuser)
        assert client.delete(GLOBAL).status_code == 503
        assert client.put(SCOPED, {"size": 1, "mediaType": OCTET}, format="json").status_code == 503
        assert client.delete(SCOPE).status_code == 503
        assert [
            (entry["operation"], entry["scope"], entry["outcome"]) for entry in audit_rows()
        ] == [
            ("clear", "global", "unavailable"),
            ("set", "repository", "unavailable"),
            ("clear_repository_scope", "repository", "unavailable"),
        ]
        assert all(
            entry["detail"].startswith(f"cannot reach Redis at 127.0.0.1:{stopped_redis}: ")
            for entry in audit_rows()
        )

    def test_the_answer_stands_when_the_row_cannot_be_written(
        self, api: APIClient, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
    ) -> None:
        link(redis_client, "library/alpine", SHA256)
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE blobcache_auditentry RENAME TO blobcache_auditentry_away")
        response = api.delete(SCOPED)
        assert response.status_code == 204
        assert redis_client.exists("repository::library/alpine::blobs") == 0
        (message,) = [entry for entry in caplog.records if entry.name == "blobcache.audit"]
        assert message.levelname == "ERROR"
        assert "'operation': 'clear', " in message.getMessage()
        assert "'repository': 'library/alpine', " in message.getMessage()


class TestReconcile:
    @pytest.fixture()
    def configured(self, settings: Any, tree: StorageTree) -> StorageTree:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": str(tree.root)}
        return tree

    def test_one_row_per_call_with_counts_per_reason(
        self, api: APIClient, stale: redis.Redis, configured: StorageTree
    ) -> None:
        dry = api.post("/api/reconcile", {"dry_run": True}, format="json")
        assert dry.status_code == 200
        real = api.post("/api/reconcile", {"repository": APP}, format="json")
        assert real.status_code == 200
        assert audit_rows() == [
            row(
                operation="reconcile",
                cleared=5,
                keys_deleted=5,
                counts={**EXPECTED_REASONS, "skipped": 0},
                dry_run=True,
            ),
            row(
                operation="reconcile",
                scope="repository",
                repository=APP,
                cleared=real.json()["cleared"],
                keys_deleted=real.json()["keys_deleted"],
                counts={**real.json()["reasons"], "skipped": 0},
            ),
        ]
        assert real.json()["cleared"] == 2
