"""POST /api/reconcile: permissions, the envelope for every error, the result, Redis state."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from blobcache.reconcile import (
    GLOBAL_DATA_MISSING,
    MEMBERSHIP_DATA_MISSING,
    MEMBERSHIP_UNLINKED,
    ORPHAN_REPOSITORY_HASH,
)
from blobcache.testing import S3Server
from tests.helpers.api import envelope
from tests.helpers.entries import D1, D4, D5
from tests.helpers.outage import PrivateRedis
from tests.helpers.s3_tree import S3Tree
from tests.helpers.storage_tree import (
    APP,
    EXPECTED_S3_REQUESTS,
    EXPECTED_STORAGE_REQUESTS,
    StorageTree,
    expected_stale_report,
    in_order,
)
from tests.redis_state import dump

URL = "/api/reconcile"
NO_COUNTS = {
    MEMBERSHIP_UNLINKED: 0,
    MEMBERSHIP_DATA_MISSING: 0,
    ORPHAN_REPOSITORY_HASH: 0,
    GLOBAL_DATA_MISSING: 0,
}


def post(client: APIClient, body: Any = None, raw: str | None = None, **extra: Any) -> Any:
    data = raw if raw is not None else ("" if body is None else json.dumps(body))
    return client.post(URL, data, content_type="application/json", **extra)


@pytest.fixture()
def configured(settings: Any, tree: StorageTree) -> StorageTree:
    settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": str(tree.root)}
    return tree


class TestAccess:
    def test_anonymous_is_401(
        self, anonymous: APIClient, stale: redis.Redis, configured: StorageTree
    ) -> None:
        before = dump(stale)
        response = post(anonymous, {})
        assert response.status_code == 401
        assert response.json() == envelope(
            "UNAUTHORIZED", "Authentication credentials were not provided."
        )
        assert response["WWW-Authenticate"].startswith("Basic")
        assert dump(stale) == before

    @pytest.mark.parametrize("codenames", [(), ("view_descriptor", "change_descriptor")])
    def test_without_the_delete_permission_is_403(
        self,
        make_user: Callable[..., User],
        stale: redis.Redis,
        configured: StorageTree,
        codenames: tuple[str, ...],
    ) -> None:
        client = APIClient()
        client.force_authenticate(make_user(*codenames))
        before = dump(stale)
        response = post(client, {"dry_run": True})
        assert response.status_code == 403
        assert response.json() == envelope(
            "DENIED", "You do not have permission to perform this action."
        )
        assert dump(stale) == before

    def test_the_delete_permission_is_enough(
        self, make_user: Callable[..., User], stale: redis.Redis, configured: StorageTree
    ) -> None:
        client = APIClient()
        client.force_authenticate(make_user("delete_descriptor"))
        response = post(client, {"repository": APP})
        assert response.status_code == 200
        assert response.json()["cleared"] == 2

    def test_other_methods_are_405(self, api: APIClient, configured: StorageTree) -> None:
        response = api.get(URL)
        assert response.status_code == 405
        assert response.json() == envelope("UNSUPPORTED", 'Method "GET" not allowed.')
        assert response["Allow"] == "POST"


class TestResult:
    def test_whole_database(
        self, api: APIClient, stale: redis.Redis, configured: StorageTree
    ) -> None:
        response = post(api)
        assert response.status_code == 200
        assert in_order(response.json()) == expected_stale_report(EXPECTED_STORAGE_REQUESTS)
        assert stale.exists(f"blobs::{D5}", f"repository::{APP}::blobs::{D4}") == 0

    def test_dry_run_changes_nothing_and_matches_the_real_run(
        self, api: APIClient, stale: redis.Redis, configured: StorageTree
    ) -> None:
        before = dump(stale)
        dry = post(api, {"dry_run": True, "repository": None})
        assert dry.status_code == 200
        assert dump(stale) == before
        real = post(api, {"dry_run": False})
        assert in_order(dry.json()) == {**in_order(real.json()), "dry_run": True}
        again = post(api, {})
        assert again.json() == {
            "cleared": 0,
            "keys_deleted": 0,
            "dry_run": False,
            "repository": None,
            "reasons": NO_COUNTS,
            "skipped": 0,
            # What is left: alpine's D1 and team/app's D3 (a link and data each), and the
            # global D1, D3 and D6 (data each).
            "storage_requests": 2 * 2 + 3,
            "digests": [],
        }

    def test_one_repository(
        self, api: APIClient, stale: redis.Redis, configured: StorageTree
    ) -> None:
        before = dump(stale)
        response = api.post(
            URL + "/", json.dumps({"repository": APP}), content_type="application/json"
        )
        assert response.status_code == 200
        document = in_order(response.json())
        assert (document["repository"], document["cleared"]) == (APP, 2)
        assert set(before) - set(dump(stale)) == {
            f"repository::{APP}::blobs::{D1}",
            f"repository::{APP}::blobs::{D4}",
        }

    def test_no_body_is_a_real_run_over_everything(
        self, api: APIClient, stale: redis.Redis, configured: StorageTree
    ) -> None:
        response = api.post(URL)
        assert response.status_code == 200
        assert (response.json()["dry_run"], response.json()["cleared"]) == (False, 5)


class TestErrors:
    @pytest.mark.parametrize(
        ("raw", "code", "message", "detail"),
        [
            ("{", "REQUEST_INVALID", None, None),
            ("[]", "REQUEST_INVALID", "the request body must be a JSON object", None),
            ("null", "REQUEST_INVALID", "the request body must be a JSON object", None),
            (
                '{"dryrun": true}',
                "REQUEST_INVALID",
                "unknown field 'dryrun': expected repository or dry_run",
                {"field": "dryrun"},
            ),
            (
                '{"dry_run": "true"}',
                "REQUEST_INVALID",
                "dry_run must be true or false",
                {"field": "dry_run"},
            ),
            (
                '{"dry_run": 0}',
                "REQUEST_INVALID",
                "dry_run must be true or false",
                {"field": "dry_run"},
            ),
            (
                '{"repository": 1}',
                "REQUEST_INVALID",
                "repository must be a string or null",
                {"field": "repository"},
            ),
            (
                '{"repository": "Team/App"}',
                "NAME_INVALID",
                "invalid reference format: 'Team/App' is not a repository name",
                {"field": "repository"},
            ),
        ],
        ids=["malformed", "list", "null", "typo", "string-bool", "int-bool", "int-name", "name"],
    )
    def test_bad_body_is_400_and_changes_nothing(
        self,
        api: APIClient,
        stale: redis.Redis,
        configured: StorageTree,
        raw: str,
        code: str,
        message: str | None,
        detail: Any,
    ) -> None:
        before = dump(stale)
        response = post(api, raw=raw)
        assert response.status_code == 400
        (error,) = response.json()["errors"]
        assert (error["code"], error["detail"]) == (code, detail)
        if message is None:
            assert error["message"].startswith("the request body is not valid JSON: ")
        else:
            assert error["message"] == message
        assert dump(stale) == before

    def test_form_body_is_415(self, api: APIClient, configured: StorageTree) -> None:
        response = api.post(URL, "dry_run=1", content_type="application/x-www-form-urlencoded")
        assert response.status_code == 415
        assert response.json()["errors"][0]["code"] == "UNSUPPORTED"

    def test_storage_root_not_configured_is_400(
        self, api: APIClient, stale: redis.Redis, settings: Any
    ) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE}
        before = dump(stale)
        response = post(api, {"dry_run": True})
        assert response.status_code == 400
        assert response.json() == envelope(
            "STORAGE_UNCONFIGURED",
            "reconciliation needs BLOBCACHE['STORAGE'] (the registry's storage section) or "
            "BLOBCACHE['STORAGE_ROOT'] (its storage.filesystem.rootdirectory)",
        )
        assert dump(stale) == before

    def test_storage_root_that_is_no_registry_is_503(
        self, api: APIClient, stale: redis.Redis, settings: Any, tmp_path: Path
    ) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": str(tmp_path)}
        before = dump(stale)
        response = post(api)
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        # The API names the setting; the server's paths are for the operator's command.
        assert response.json() == envelope(
            "STORAGE_INVALID",
            "BLOBCACHE['STORAGE_ROOT'] has no docker/registry/v2 folder: give the registry's "
            "storage.filesystem.rootdirectory (a registry creates that folder on its first push)",
        )
        assert dump(stale) == before

    @pytest.mark.parametrize("trailing", ["", "/"])
    def test_storage_root_that_does_not_exist_is_503_without_its_path(
        self, api: APIClient, stale: redis.Redis, settings: Any, tmp_path: Path, trailing: str
    ) -> None:
        root = f"{tmp_path / 'gone'}{trailing}"
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": root}
        response = post(api)
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        assert response.json() == envelope(
            "STORAGE_INVALID", "the storage root BLOBCACHE['STORAGE_ROOT'] does not exist"
        )

    def test_unreadable_storage_is_503_without_server_paths(
        self, api: APIClient, stale: redis.Redis, configured: StorageTree
    ) -> None:
        loop = configured.v2 / "blobs" / "sha256"
        shutil.rmtree(loop)
        os.symlink(loop, loop)
        before = dump(stale)
        response = post(api)
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        (error,) = response.json()["errors"]
        assert error["code"] == "STORAGE_UNAVAILABLE"
        assert error["message"].startswith(
            "cannot read BLOBCACHE['STORAGE_ROOT']/docker/registry/v2/blobs/sha256/"
        )
        assert str(configured.root) not in response.content.decode()
        assert dump(stale) == before

    @pytest.mark.standalone  # a private standalone server, stopped
    def test_redis_down_is_503_unavailable(
        self, api: APIClient, private_redis: PrivateRedis, configured: StorageTree
    ) -> None:
        private_redis.stop()
        started = time.monotonic()
        response = post(api, {"dry_run": True})
        assert time.monotonic() - started < 2
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        (error,) = response.json()["errors"]
        assert error["code"] == "UNAVAILABLE"
        assert error["message"].startswith(f"cannot reach Redis at 127.0.0.1:{private_redis.port}")


class TestConfiguredStorage:
    """``BLOBCACHE["STORAGE"]``: the registry's storage section, filesystem or s3."""

    def test_s3_section(self, api: APIClient, stale_bucket: S3Tree) -> None:
        response = post(api)
        assert response.status_code == 200
        assert in_order(response.json()) == expected_stale_report(EXPECTED_S3_REQUESTS)

    def test_storage_wins_over_storage_root(
        self, api: APIClient, stale: redis.Redis, tree: StorageTree, settings: Any, tmp_path: Path
    ) -> None:
        settings.BLOBCACHE = {
            **settings.BLOBCACHE,
            "STORAGE": {"filesystem": {"rootdirectory": str(tree.root)}},
            "STORAGE_ROOT": str(tmp_path),
        }
        response = post(api, {"dry_run": True})
        assert response.status_code == 200
        assert response.json()["cleared"] == 5

    def test_a_filesystem_section_is_named_by_its_setting(
        self, api: APIClient, stale: redis.Redis, settings: Any, tmp_path: Path
    ) -> None:
        settings.BLOBCACHE = {
            **settings.BLOBCACHE,
            "STORAGE": {"filesystem": {"rootdirectory": str(tmp_path)}},
        }
        response = post(api)
        assert response.status_code == 503
        assert response.json() == envelope(
            "STORAGE_INVALID",
            "BLOBCACHE['STORAGE']['filesystem']['rootdirectory'] has no docker/registry/v2 "
            "folder: give the registry's storage.filesystem.rootdirectory (a registry creates "
            "that folder on its first push)",
        )

    @pytest.mark.parametrize("driver", ["gcs", "azure", "inmemory"])
    def test_unsupported_driver_is_400_unconfigured(
        self, api: APIClient, stale: redis.Redis, settings: Any, driver: str
    ) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE": {driver: {"bucket": "b"}}}
        before = dump(stale)
        response = post(api)
        assert response.status_code == 400
        assert response.json() == envelope(
            "STORAGE_UNCONFIGURED",
            f"the storage driver {driver!r} is not supported: blobcache reads filesystem and s3",
        )
        assert dump(stale) == before

    def test_missing_bucket_is_503_invalid(
        self, api: APIClient, stale: redis.Redis, s3_server: S3Server, settings: Any
    ) -> None:
        settings.BLOBCACHE = {
            **settings.BLOBCACHE,
            "STORAGE": {"s3": s3_server.parameters("no-such-bucket")},
        }
        response = post(api)
        assert response.status_code == 503
        assert response.json() == envelope(
            "STORAGE_INVALID",
            f"the bucket 'no-such-bucket' does not exist at {s3_server.endpoint}",
        )

    def test_403_is_503_unavailable(
        self,
        api: APIClient,
        stale: redis.Redis,
        s3_server: S3Server,
        bucket: S3Tree,
        settings: Any,
    ) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE": bucket.section}
        before = dump(stale)
        s3_server.require_authentication(True)
        try:
            response = post(api)
        finally:
            s3_server.require_authentication(False)
        assert response.status_code == 503
        (error,) = response.json()["errors"]
        assert error["code"] == "STORAGE_UNAVAILABLE"
        assert error["message"].startswith("access denied (InvalidAccessKeyId) ")
        assert bucket.parameters()["secretkey"] not in error["message"]
        assert dump(stale) == before
