"""blobcache and a real registry 2.8 on one Redis: each reads the other's writes.

Two tests replay the stale-membership flaw of registries 2.1 to 3.0 (CVE-2026-35172, fixed in
distribution v3.1.0): the registry's own blob DELETE leaves the repository's membership behind,
and a read from another repository revives the deleted blob. The control shows the flaw on the
real binary; the other shows that a blobcache repository clear closes it. The last tests pin down
what reconciliation and the notifications receiver build on: the keys an image push and pull
leave, and the notification a blob DELETE sends.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from blobcache import Descriptor
from blobcache.cache import DescriptorCache
from blobcache.exceptions import BlobUnknown
from tests.interop.registry import (
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    OCTET_STREAM,
    NotificationEndpoint,
    RegistryClient,
    RegistryFactory,
    RegistryServer,
    make_image,
)

# The registry 2.8 under test reaches a single Redis only (no Sentinel, no Cluster).
pytestmark = [pytest.mark.interop, pytest.mark.standalone]

ALPINE = "library/alpine"
APP = "team/app"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


# Spelled out here rather than taken from blobcache.keys, so that a change there cannot hide a
# layout the registry would no longer read.
def global_key(digest: str) -> str:
    return f"blobs::{digest}"


def membership_key(repository: str) -> str:
    return f"repository::{repository}::blobs"


def repository_key(repository: str, digest: str) -> str:
    return f"repository::{repository}::blobs::{digest}"


def assert_no_ttl(client: redis.Redis) -> None:
    keys = client.keys("*")
    assert keys
    assert {key: client.ttl(key) for key in keys} == dict.fromkeys(keys, -1)


def test_stat_reads_what_the_registry_wrote(
    registry: RegistryServer, redis_client: redis.Redis, descriptor_cache: DescriptorCache
) -> None:
    blob = b"layer bytes pushed through the registry's own upload API\n"
    digest = registry.client.push_blob(ALPINE, blob)

    expected = Descriptor(digest=digest, size=len(blob), media_type=OCTET_STREAM)
    cache = descriptor_cache
    assert cache.repository_scoped(ALPINE).stat(digest) == expected
    assert cache.stat(digest) == expected
    with pytest.raises(BlobUnknown):
        cache.repository_scoped(APP).stat(digest)

    # The registry's commit wrote exactly its three keys (global hash, membership, repository
    # hash), without TTLs: the registry never sets one.
    assert sorted(redis_client.keys("*")) == sorted(
        [global_key(digest), membership_key(ALPINE), repository_key(ALPINE, digest)]
    )
    assert redis_client.hgetall(global_key(digest)) == {
        "digest": digest,
        "size": str(len(blob)),
        "mediatype": OCTET_STREAM,
    }
    assert redis_client.smembers(membership_key(ALPINE)) == {digest}
    assert redis_client.hgetall(repository_key(ALPINE, digest)) == {"mediatype": OCTET_STREAM}
    assert_no_ttl(redis_client)


@pytest.mark.parametrize("scope", ["global", "repository"])
def test_registry_serves_the_size_blobcache_wrote(
    registry: RegistryServer,
    redis_client: redis.Redis,
    descriptor_cache: DescriptorCache,
    scope: str,
) -> None:
    client = registry.client
    blob = b"0123456789" * 10
    digest = client.push_blob(ALPINE, blob)
    before = client.head_blob(ALPINE, digest)
    assert (before.status, before.headers["Content-Length"]) == (200, "100")

    cache = descriptor_cache
    service = cache if scope == "global" else cache.repository_scoped(ALPINE)
    service.set_descriptor(digest, Descriptor(digest=digest, size=4242, media_type=LAYER_TYPE))

    after = client.head_blob(ALPINE, digest)
    assert after.status == 200
    assert after.headers["Content-Length"] == "4242"
    assert after.headers["Docker-Content-Digest"] == digest
    # The global media type is set only if absent, so the registry's octet-stream stays; a
    # repository write overrides the repository's media type, which the registry serves.
    served_type = OCTET_STREAM if scope == "global" else LAYER_TYPE
    assert after.headers["Content-Type"] == served_type
    assert redis_client.hgetall(global_key(digest)) == {
        "digest": digest,
        "size": "4242",
        "mediatype": OCTET_STREAM,
    }
    assert redis_client.hgetall(repository_key(ALPINE, digest)) == {"mediatype": served_type}
    assert redis_client.smembers(membership_key(ALPINE)) == {digest}


def share_and_delete(client: RegistryClient, redis_client: redis.Redis, blob: bytes) -> str:
    """Push to library/alpine, mount into team/app, then the registry's own DELETE in team/app."""
    digest = client.push_blob(ALPINE, blob)
    assert client.mount_blob(APP, digest, source=ALPINE).status == 201
    # The mount writes nothing for team/app; its first HEAD fills the cache (read-through).
    assert client.head_blob(APP, digest).status == 200
    assert redis_client.smembers(membership_key(APP)) == {digest}

    assert client.delete_blob(APP, digest).status == 202
    # What the registry's DELETE left: the global hash is gone, team/app's entries are not.
    assert redis_client.exists(global_key(digest)) == 0
    assert redis_client.smembers(membership_key(APP)) == {digest}
    assert redis_client.hgetall(repository_key(APP, digest)) == {"mediatype": OCTET_STREAM}
    assert redis_client.smembers(membership_key(ALPINE)) == {digest}
    return digest


def refill_from_alpine(
    client: RegistryClient, redis_client: redis.Redis, digest: str, size: int
) -> None:
    """A read in library/alpine misses, finds the blob in storage and refills the global hash."""
    refill = client.head_blob(ALPINE, digest)
    assert (refill.status, refill.headers["Content-Length"]) == (200, str(size))
    assert redis_client.hgetall(global_key(digest)) == {
        "digest": digest,
        "size": str(size),
        "mediatype": OCTET_STREAM,
    }


def test_control_registry_delete_revives_the_blob_through_another_repository(
    registry: RegistryServer, redis_client: redis.Redis
) -> None:
    client = registry.client
    blob = b"a layer shared by two repositories, then deleted from one of them\n"
    digest = share_and_delete(client, redis_client, blob)
    assert client.head_blob(APP, digest).status == 404

    refill_from_alpine(client, redis_client, digest, len(blob))

    # The flaw is real on this binary: the blob deleted from team/app is served there again.
    revived = client.head_blob(APP, digest)
    assert (revived.status, revived.headers["Content-Length"]) == (200, str(len(blob)))
    pulled = client.get_blob(APP, digest)
    assert (pulled.status, pulled.body, pulled.complete) == (200, blob, True)
    assert client.delete_blob(APP, digest).status == 202


def test_blobcache_clear_after_registry_delete_keeps_the_blob_deleted(
    registry: RegistryServer, redis_client: redis.Redis, descriptor_cache: DescriptorCache
) -> None:
    client = registry.client
    blob = b"a layer shared by two repositories, then deleted from one of them\n"
    digest = share_and_delete(client, redis_client, blob)

    descriptor_cache.repository_scoped(APP).clear(digest)
    assert redis_client.exists(membership_key(APP), repository_key(APP, digest)) == 0
    assert client.head_blob(APP, digest).status == 404

    refill_from_alpine(client, redis_client, digest, len(blob))

    assert client.head_blob(APP, digest).status == 404
    assert client.get_blob(APP, digest).status == 404
    assert client.delete_blob(APP, digest).status == 404
    # The refill left team/app out of the cache; library/alpine still serves its copy.
    assert redis_client.exists(membership_key(APP), repository_key(APP, digest)) == 0
    assert redis_client.smembers(membership_key(ALPINE)) == {digest}
    assert client.get_blob(ALPINE, digest).body == blob


@pytest.mark.parametrize("oci", [False, True], ids=["docker-v2", "oci"])
def test_image_round_trip_caches_blobs_per_repository_and_manifests_globally(
    registry: RegistryServer,
    redis_client: redis.Redis,
    descriptor_cache: DescriptorCache,
    oci: bool,
) -> None:
    client = registry.client
    image = make_image("hello from an interop test\n", oci=oci)
    manifest_digest = client.push_image(ALPINE, "latest", image)
    accept = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest, blobs = client.pull_image(ALPINE, "latest", accept=accept)

    assert (manifest.status, manifest.body) == (200, image.manifest)
    assert manifest.headers["Content-Type"] == image.manifest_media_type
    by_digest = {image.config_digest: image.config, image.layer_digests[0]: image.layers[0]}
    assert {digest: (got.status, got.body) for digest, got in blobs.items()} == {
        digest: (200, data) for digest, data in by_digest.items()
    }
    # Whatever the manifest declares, registry 2.8 caches octet-stream; the
    # manifest itself only gets a global hash, written when the pull by tag read it.
    for digest, data in by_digest.items():
        expected = Descriptor(digest=digest, size=len(data), media_type=OCTET_STREAM)
        assert descriptor_cache.repository_scoped(ALPINE).stat(digest) == expected
    assert descriptor_cache.stat(manifest_digest) == Descriptor(
        digest=manifest_digest, size=len(image.manifest), media_type=OCTET_STREAM
    )
    with pytest.raises(BlobUnknown):
        descriptor_cache.repository_scoped(ALPINE).stat(manifest_digest)
    assert sorted(redis_client.keys("*")) == sorted(
        [global_key(digest) for digest in (*by_digest, manifest_digest)]
        + [membership_key(ALPINE)]
        + [repository_key(ALPINE, digest) for digest in by_digest]
    )
    assert redis_client.smembers(membership_key(ALPINE)) == set(by_digest)
    assert_no_ttl(redis_client)


class EventSink:
    """A loopback HTTP endpoint that records the registry's notification envelopes."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[dict[str, str], Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.envelopes.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"

    def events(self, action: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The events with ``action`` received so far, waiting for at least one (async delivery)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                event
                for _, envelope in list(self.envelopes)
                for event in envelope["events"]
                if event["action"] == action
            ]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


@pytest.fixture()
def event_sink() -> Iterator[EventSink]:
    sink = EventSink()
    thread = threading.Thread(target=sink.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield sink
    sink.server.shutdown()
    sink.server.server_close()
    thread.join()


def test_notifications_deliver_blob_deletes_with_the_configured_header(
    registry_factory: RegistryFactory, event_sink: EventSink
) -> None:
    """What the receiver gets: the secret header and a delete naming repository and digest."""
    endpoint = NotificationEndpoint(
        url=event_sink.url,
        headers={"X-Blobcache-Secret": "interop"},
        ignored_media_types=[OCTET_STREAM],
    )
    client = registry_factory(notifications=[endpoint]).client
    digest = client.push_blob(APP, b"a blob whose deletion is announced\n")
    assert client.delete_blob(APP, digest).status == 202

    deletes = event_sink.events("delete")
    assert [event["target"] for event in deletes] == [{"digest": digest, "repository": APP}]
    assert deletes[0]["request"]["method"] == "DELETE"
    headers, _ = event_sink.envelopes[-1]
    assert headers["X-Blobcache-Secret"] == "interop"
    assert headers["Content-Type"] == "application/vnd.docker.distribution.events.v1+json"
    # The push of an octet-stream blob was filtered by ignoredmediatypes; nothing else was sent.
    assert [
        event["action"] for _, envelope in event_sink.envelopes for event in envelope["events"]
    ] == ["delete"]
