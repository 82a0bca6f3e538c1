"""End to end on S3: the real registry 2.8 with its s3 driver on moto's S3 server.

The registry, its ``garbage-collect`` and ``blobcache_reconcile --registry-config`` all read the
same configuration file, as an operator's would: blobcache finds the bucket, the endpoint, the
root directory and the keys there.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import pytest
import redis

from blobcache.reconcile import reconcile
from blobcache.testing import S3Server
from tests.helpers.reconcile_report import (
    report_after_garbage_collect,
    report_clearing_nothing,
    run_reconcile_json,
)
from tests.helpers.storage_tree import ALPINE, APP
from tests.interop.registry import (
    RegistryFactory,
    RegistryServer,
    assert_pulls_every_byte,
    make_image,
    push_healthy_images,
)
from tests.redis_state import dump

# The registry 2.8 under test reaches a single Redis only (no Sentinel, no Cluster).
pytestmark = [pytest.mark.interop, pytest.mark.standalone]

ROOT = "/registry"
_buckets = itertools.count()


@pytest.fixture()
def s3_registry(s3_server: S3Server, registry_factory: RegistryFactory) -> RegistryServer:
    """A registry whose storage is a fresh bucket on the test S3 server."""
    bucket = f"blobcache-e2e-{next(_buckets)}"
    s3_server.client().create_bucket(Bucket=bucket)
    parameters = s3_server.parameters(bucket, rootdirectory=ROOT, v4auth=True)
    return registry_factory(driver={"s3": parameters})


def run_reconcile(registry: RegistryServer, *args: str) -> dict[str, Any]:
    """``blobcache_reconcile --registry-config <the registry's file> --format json``."""
    return run_reconcile_json("--registry-config", str(registry.config_path), *args)


def data_keys(server: S3Server, registry: RegistryServer) -> set[str]:
    bucket = registry.driver["s3"]["bucket"]  # type: ignore[index]
    keys: set[str] = set()
    for page in server.client().get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix="registry/docker/registry/v2/blobs/"
    ):
        keys.update(item["Key"] for item in page.get("Contents", ()))
    return keys


def test_reconcile_after_garbage_collect_on_s3(
    s3_server: S3Server, s3_registry: RegistryServer, redis_client: redis.Redis
) -> None:
    registry = s3_registry
    client = registry.client
    image = make_image("kept in S3, swept by the garbage collector, then pushed again\n")
    layer, config = image.layer_digests[0], image.config_digest
    manifest = client.push_image(ALPINE, "latest", image)
    assert_pulls_every_byte(client, ALPINE, image)
    layer_key = f"registry/docker/registry/v2/blobs/sha256/{layer[7:9]}/{layer[7:]}/data"
    assert layer_key in data_keys(s3_server, registry)
    assert client.delete_manifest(ALPINE, manifest).status == 202

    swept = registry.garbage_collect(delete_untagged=True)
    assert f"blob eligible for deletion: {layer}" in swept.stdout
    assert data_keys(s3_server, registry) == set()
    registry.restart()

    # The control: the cache still says the layer exists.
    assert client.head_blob(ALPINE, layer).status == 200

    before = dump(redis_client)
    dry = run_reconcile(registry, "--dry-run")
    assert dump(redis_client) == before
    result = run_reconcile(registry)
    assert dry == {**result, "dry_run": True}
    assert result == report_after_garbage_collect(
        layer=layer,
        config=config,
        manifest=manifest,
        # The walk: library/alpine's _layers and revisions listings, the data of its two
        # members and of the three global entries (a one-key listing each). The re-checks: the
        # two members (their link, their data), the three global entries (their data).
        storage_requests=2 + 2 + 3 + 2 * 2 + 3,
    )
    assert dump(redis_client) == {}

    assert client.head_blob(ALPINE, layer).status == 404
    assert client.get_blob(ALPINE, layer).status == 404
    assert client.push_image(ALPINE, "latest", image) == manifest
    assert_pulls_every_byte(client, ALPINE, image)


def test_reconcile_on_a_healthy_s3_registry_clears_nothing(
    s3_registry: RegistryServer, redis_client: redis.Redis
) -> None:
    registry = s3_registry
    client = registry.client
    first, second = push_healthy_images(client, ALPINE, APP, " in S3")
    before = dump(redis_client)
    assert redis_client.scard(f"repository::{APP}::blobs") == 3

    # Each repository's _layers and revisions listings; the data of the five memberships
    # and of the six global entries, one question each.
    nothing = report_clearing_nothing(storage_requests=2 * 2 + 5 + 6)
    assert run_reconcile(registry, "--dry-run") == {**nothing, "dry_run": True}
    assert run_reconcile(registry) == nothing
    section = {"s3": registry.driver["s3"]}  # type: ignore[index]
    for repository, members in ((ALPINE, 2), (APP, 3)):
        scoped = reconcile(section, repository=repository)
        assert (scoped.cleared, scoped.keys_deleted) == (0, 0)
        assert scoped.storage_requests == 2 + members
    assert dump(redis_client) == before
    assert_pulls_every_byte(client, ALPINE, first)
    assert_pulls_every_byte(client, APP, second)


def test_reconcile_keeps_a_blob_pushed_under_its_sha512_digest_on_s3(
    s3_server: S3Server, s3_registry: RegistryServer, redis_client: redis.Redis
) -> None:
    """The registry writes the sha512 link holding the sha256 digest; its listing's ETag does
    not prove what it names, so blobcache reads that one link."""
    registry = s3_registry
    client = registry.client
    data = b"a layer pushed under its sha512 digest, into S3\n"
    alias = "sha512:" + hashlib.sha512(data).hexdigest()
    canonical = client.push_blob(APP, data, as_digest=alias)
    bucket = registry.driver["s3"]["bucket"]  # type: ignore[index]
    link = s3_server.client().get_object(
        Bucket=bucket,
        Key=f"registry/docker/registry/v2/repositories/{APP}/_layers/sha512/{alias[7:]}/link",
    )
    assert link["Body"].read() == canonical.encode()
    assert client.head_blob(APP, alias).status == 200
    before = dump(redis_client)
    assert redis_client.smembers(f"repository::{APP}::blobs") == {alias, canonical}

    result = run_reconcile(registry)
    assert (result["cleared"], result["keys_deleted"], result["digests"]) == (0, 0, [])
    # team/app's _layers and revisions listings; the sha256 member's data; for the sha512
    # member, its own data (none), one read of its link, the data that names; the data of the two
    # global entries; the sha512 one has none of its own, so its re-check asks for it and for the
    # sha256 data its descriptor names.
    assert result["storage_requests"] == 2 + 1 + 3 + 2 + 2
    assert dump(redis_client) == before
    assert client.get_blob(APP, alias).body == data
