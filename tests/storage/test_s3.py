"""The s3 driver against moto's standalone S3 server (real HTTP), and reconcile() through it.

The same scenarios as the filesystem's (tests/test_reconcile.py) give the same outcome; on top:
pagination, the failures an object store adds (403, a missing bucket, a timeout), and the number
of requests a run costs.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from blobcache.cache import DescriptorCache
from blobcache.reconcile import MEMBERSHIP_DATA_MISSING, MEMBERSHIP_UNLINKED, reconcile
from blobcache.storage import (
    StorageInvalid,
    StorageUnavailable,
    StorageUnconfigured,
    open_storage,
    s3,
)
from blobcache.storage.config import storage_from_section
from blobcache.storage.s3 import S3Storage
from blobcache.testing import S3Server
from tests.helpers.entries import D1, D2, D3, D4, D5, digest
from tests.helpers.s3_tree import S3Tree
from tests.helpers.storage_tree import (
    APP,
    EXPECTED_REASONS,
    EXPECTED_S3_REQUESTS,
    EXPECTED_WHOLE,
    assert_same_outcome,
    by_reason,
    cache_entry,
    cache_sha512_alias,
    populate_stale,
)
from tests.redis_state import dump

ATTEMPTS_MESSAGE = "storage.s3.maxattempts must be a whole number from 1"


def opened(tree: S3Tree, **extra: Any) -> S3Storage:
    storage = storage_from_section({"s3": tree.parameters(**extra)})
    assert isinstance(storage, S3Storage)
    return storage


class TestReconcile:
    def test_stale_entries_are_cleared_as_on_the_filesystem(
        self, cache: DescriptorCache, redis_client: redis.Redis, bucket: S3Tree
    ) -> None:
        populate_stale(cache, redis_client, bucket)
        before = dump(redis_client)
        dry = reconcile(bucket.section, dry_run=True)
        assert dump(redis_client) == before
        real = reconcile(bucket.section)
        assert_same_outcome(dry, real)
        assert by_reason(real) == EXPECTED_WHOLE
        assert real.counts == EXPECTED_REASONS
        assert real.keys_deleted == 5
        assert (dry.storage_requests, real.storage_requests) == (EXPECTED_S3_REQUESTS,) * 2
        assert set(before) - set(dump(redis_client)) == {
            f"repository::{APP}::blobs::{D1}",
            f"repository::{APP}::blobs::{D4}",
            f"repository::library/alpine::blobs::{D2}",
            f"blobs::{D2}",
            f"blobs::{D5}",
        }
        again = reconcile(bucket.section)
        assert (again.cleared, again.keys_deleted) == (0, 0)
        # No candidate any more: the listings and the data of alpine's D1, team/app's D3, and
        # the global D1, D3 and D6.
        assert again.storage_requests == 2 * 2 + 2 + 3

    def test_configured_storage_is_the_same_section(self, stale_bucket: S3Tree) -> None:
        assert by_reason(reconcile(dry_run=True)) == EXPECTED_WHOLE

    def test_alias_link_is_followed_with_one_read(
        self, cache: DescriptorCache, redis_client: redis.Redis, bucket: S3Tree
    ) -> None:
        # As the registry stores a blob pushed under sha512: data and link under sha256, the
        # sha512 link naming the sha256 digest. Its ETag is not the MD5 of its own digest.
        bucket.pushed(APP, D1)
        cache_sha512_alias(cache, bucket)
        before = dump(redis_client)
        result = reconcile(bucket.section, repository=APP)
        assert (result.cleared, result.keys_deleted) == (0, 0)
        assert dump(redis_client) == before
        # Listings of _layers and revisions; D1's link proves itself by its ETag, its data is
        # one question; the alias link does not and its own digest has no data: one read of the
        # link, then the data of the digest it names.
        assert result.storage_requests == 2 + 1 + 1 + 1 + 1

    def test_alias_link_whose_canonical_data_is_gone_is_cleared(
        self, cache: DescriptorCache, redis_client: redis.Redis, bucket: S3Tree
    ) -> None:
        alias = cache_sha512_alias(cache, bucket)
        bucket.layer(APP, D1)
        result = reconcile(bucket.section, repository=APP)
        assert by_reason(result) == [
            (MEMBERSHIP_DATA_MISSING, APP, D1),
            (MEMBERSHIP_DATA_MISSING, APP, alias),
        ]

    def test_a_push_racing_the_run_keeps_its_entry(
        self,
        cache: DescriptorCache,
        redis_client: redis.Redis,
        bucket: S3Tree,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The listing says unlinked; the link is written before the batch: re-checked, kept."""
        cache_entry(cache, APP, D1)
        cache_entry(cache, APP, D2)
        bucket.blob(D1)
        bucket.blob(D2)
        real_linked_blob = S3Storage.linked_blob

        def push_then_recheck(storage: S3Storage, repository: str, key_digest: str) -> Any:
            if key_digest == D1:
                bucket.layer(APP, D1)
            return real_linked_blob(storage, repository, key_digest)

        monkeypatch.setattr(S3Storage, "linked_blob", push_then_recheck)
        result = reconcile(bucket.section, repository=APP)
        assert by_reason(result) == [(MEMBERSHIP_UNLINKED, APP, D2)]
        assert redis_client.smembers(f"repository::{APP}::blobs") == {D1}

    def test_interrupt_stops_between_batches_and_removes_the_spool(
        self,
        cache: DescriptorCache,
        redis_client: redis.Redis,
        bucket: S3Tree,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        stale_digests = [digest(n) for n in range(100, 110)]
        for key_digest in stale_digests:
            cache_entry(cache, APP, key_digest)
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

        def interrupt(done: int) -> None:
            (spool,) = tmp_path.iterdir()
            assert spool.name.startswith("blobcache-s3-")
            raise KeyboardInterrupt

        result = reconcile(bucket.section, repository=APP, batch_size=4, progress=interrupt)
        assert (result.interrupted, result.cleared) == (True, 4)
        left = redis_client.smembers(f"repository::{APP}::blobs")
        assert len(left) == 6
        hashes = {
            key.rsplit("::", 1)[1] for key in redis_client.keys(f"repository::{APP}::blobs::*")
        }
        assert hashes == left
        # The listing's SQLite file went with the run.
        assert list(tmp_path.iterdir()) == []
        assert reconcile(bucket.section, repository=APP).cleared == 6

    def test_pagination_past_1000_keys(
        self,
        cache: DescriptorCache,
        redis_client: redis.Redis,
        bucket: S3Tree,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        stored = [digest(n) for n in range(1, 1206)]
        for key_digest in stored:
            bucket.pushed(APP, key_digest)
            cache_entry(cache, APP, key_digest)
        swept = digest(5000)
        bucket.layer(APP, swept)
        cache_entry(cache, APP, swept)
        storage = opened(bucket)
        assert storage.requests == 1  # the check: one key under docker/registry/v2
        storage.requests = 0
        with monkeypatch.context() as patched:
            patched.setattr(s3, "DIRECT_DATA_QUESTIONS", 0)
            with storage.snapshot() as view:
                assert view.has_blob_data(stored[-1]) is True
                assert view.linked_blob(APP, stored[0]) == stored[0]
        # blobs/ in two pages, _layers/ in two, revisions/ in one.
        assert storage.requests == 2 + 2 + 1
        storage.requests = 0
        result = reconcile(storage, repository=APP, batch_size=500)
        # Every stored entry found in a listing past the first page: only the swept one goes.
        assert by_reason(result) == [(MEMBERSHIP_DATA_MISSING, APP, swept)]
        assert redis_client.scard(f"repository::{APP}::blobs") == len(stored)
        # The link listings; the first data questions one by one, then blobs/ in two pages; the
        # swept entry's re-check (its link, its data).
        assert result.storage_requests == 3 + s3.DIRECT_DATA_QUESTIONS + 2 + 2
        storage.close()

    def test_a_few_entries_do_not_list_every_blob(
        self, cache: DescriptorCache, redis_client: redis.Redis, bucket: S3Tree
    ) -> None:
        for key_digest in (D1, D2, D3):
            bucket.pushed(APP, key_digest)
            cache_entry(cache, APP, key_digest)
        result = reconcile(bucket.section, repository=APP)
        assert (result.cleared, result.keys_deleted) == (0, 0)
        # The repository's two link listings and the three data questions; blobs/ is not
        # listed, however many blobs the bucket holds.
        assert result.storage_requests == 2 + 3


class TestFailures:
    def test_missing_bucket_is_invalid(
        self, s3_server: S3Server, stale_redis: redis.Redis
    ) -> None:
        before = dump(stale_redis)
        with pytest.raises(StorageInvalid, match="^the bucket 'no-such-bucket' does not exist"):
            reconcile({"s3": s3_server.parameters("no-such-bucket")})
        assert dump(stale_redis) == before

    def test_empty_root_is_invalid(self, bucket: S3Tree, stale_redis: redis.Redis) -> None:
        with pytest.raises(StorageInvalid, match="holds nothing under docker/registry/v2"):
            reconcile({"s3": bucket.parameters(rootdirectory="/elsewhere")})

    def test_403_is_unavailable_and_changes_nothing(
        self, s3_server: S3Server, bucket: S3Tree, stale_redis: redis.Redis
    ) -> None:
        storage = opened(bucket)
        before = dump(stale_redis)
        s3_server.require_authentication(True)
        try:
            with pytest.raises(StorageUnavailable, match=r"access denied \(InvalidAccessKeyId\)"):
                reconcile(storage)
            with pytest.raises(StorageUnavailable, match="access denied"):
                storage.check()
        finally:
            s3_server.require_authentication(False)
        assert dump(stale_redis) == before
        storage.close()

    def test_timeout_is_unavailable(self, bucket: S3Tree) -> None:
        """An endpoint that accepts connections and never answers."""
        with silent_endpoint() as endpoint:
            started = time.monotonic()
            with pytest.raises(StorageUnavailable, match="ReadTimeoutError"):
                storage_from_section(
                    {
                        "s3": bucket.parameters(
                            regionendpoint=endpoint, readtimeout=0.3, maxattempts=2
                        )
                    }
                )
            assert time.monotonic() - started < 10

    @pytest.mark.parametrize(("status", "code"), [(500, "InternalError"), (503, "SlowDown")])
    def test_a_server_error_is_unavailable_after_the_retries(
        self, bucket: S3Tree, stale_redis: redis.Redis, db: None, status: int, code: str
    ) -> None:
        before = dump(stale_redis)
        with failing_endpoint(status, code) as endpoint:
            parameters = bucket.parameters(regionendpoint=endpoint.url, maxattempts=3)
            with pytest.raises(StorageUnavailable) as raised:
                reconcile({"s3": parameters})
            # botocore's standard mode retried the 5xx: maxattempts in all, the first included.
            assert endpoint.requests == 3
        root = "registry/docker/registry/v2"
        assert raised.value.message == (
            f"cannot read {root}/ in s3://{bucket.bucket}/{root} at {endpoint.url}: {code}"
        )
        assert dump(stale_redis) == before

    def test_no_credentials_anywhere_is_invalid(
        self, bucket: S3Tree, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        # Nothing in the AWS default chain: no variables, no files, no instance metadata (which
        # botocore would otherwise ask 169.254.169.254 for).
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        parameters = bucket.parameters()
        del parameters["accesskey"], parameters["secretkey"]
        with pytest.raises(StorageInvalid) as raised:
            storage_from_section({"s3": parameters})
        assert raised.value.message.startswith("no credentials for the s3 storage driver")

    def test_refused_connection_is_unavailable(self, bucket: S3Tree) -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        with pytest.raises(StorageUnavailable, match="EndpointConnectionError"):
            storage_from_section(
                {"s3": bucket.parameters(regionendpoint=f"127.0.0.1:{port}", maxattempts=1)}
            )


class TestConfiguration:
    def test_registry_parameter_names(self, bucket: S3Tree) -> None:
        storage = opened(bucket, encrypt=False, chunksize=5 << 20, v4auth=True)
        assert storage.describe() == (
            f"s3://{bucket.bucket}/registry/docker/registry/v2 at {bucket.server.endpoint}"
        )
        assert storage.client.meta.config.s3 == {"addressing_style": "path"}
        storage.close()

    def test_credentials_in_the_endpoint_are_not_described(self) -> None:
        storage = S3Storage(
            bucket="registry", regionendpoint="https://user:hidden@minio.example:9000/"
        )
        assert storage.describe() == (
            "s3://registry/docker/registry/v2 at https://minio.example:9000/"
        )
        storage.close()

    def test_endpoint_without_scheme_follows_secure(self, bucket: S3Tree) -> None:
        host = bucket.server.endpoint.removeprefix("http://")
        storage = opened(bucket, regionendpoint=host, secure="false")
        assert storage.endpoint == bucket.server.endpoint
        storage.close()

    @pytest.mark.parametrize(
        ("parameters", "message"),
        [
            ({}, "storage.s3.bucket is required"),
            ({"bucket": 7}, "storage.s3.bucket must be a string"),
            ({"bucket": "b", "secure": "maybe"}, "storage.s3.secure must be true or false"),
            ({"bucket": "b", "readtimeout": 0}, "storage.s3.readtimeout must be a number above 0"),
            ({"bucket": "b", "maxattempts": 0}, ATTEMPTS_MESSAGE),
            ({"bucket": "b", "maxattempts": 1.5}, ATTEMPTS_MESSAGE),
            ({"bucket": "b", "maxattempts": True}, ATTEMPTS_MESSAGE),
        ],
    )
    def test_bad_parameters(self, parameters: dict[str, Any], message: str) -> None:
        with pytest.raises(StorageUnconfigured) as raised:
            open_storage({"s3": parameters})
        assert raised.value.message == message


@pytest.fixture()
def stale_redis(cache: DescriptorCache, redis_client: redis.Redis) -> redis.Redis:
    cache_entry(cache, APP, D3)
    return redis_client


class silent_endpoint:  # noqa: N801 - used as a context manager
    def __enter__(self) -> str:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def __exit__(self, *_: object) -> None:
        self.socket.close()



class failing_endpoint:  # noqa: N801 - used as a context manager
    """An S3 endpoint whose every answer is one server error, counting the requests."""

    def __init__(self, status: int, code: str) -> None:
        self.status, self.code, self.requests = status, code, 0

    def __enter__(self) -> failing_endpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                endpoint.requests += 1
                body = (
                    f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{endpoint.code}"
                    f"</Code><Message>failing on purpose</Message></Error>"
                ).encode()
                self.send_response(endpoint.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = answer  # noqa: N815 - http.server's names

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
