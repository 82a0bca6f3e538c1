"""Descriptor entries the bulk, statistics, command and reconcile tests write, and the keys of
other applications that share the database with the registry's layout."""

from __future__ import annotations

import redis

from blobcache import Descriptor
from blobcache.cache import DescriptorCache

LAYER = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"


def digest(number: int, algorithm: str = "sha256") -> str:
    """A valid digest made from a number, easy to read in a failing assertion."""
    length = {"sha256": 64, "sha384": 96, "sha512": 128}[algorithm]
    return f"{algorithm}:{number:0{length}x}"


D1, D2, D3, D4, D5, D6 = (digest(n) for n in range(1, 7))
UPPER = "sha256:" + "AB" * 32  # written by registries 2.3 to 2.8.2, invalid for go-digest 1.0


def put(cache: DescriptorCache, repository: str | None, key_digest: str, size: int = 10) -> None:
    target = cache if repository is None else cache.repository_scoped(repository)
    target.set_descriptor(key_digest, Descriptor(key_digest, size, LAYER))


def populate(cache: DescriptorCache, client: redis.Redis) -> None:
    """Two repositories, global-only entries, and the stale shapes older registries leave."""
    for member in (D1, D2, D3):
        put(cache, "foo/bar", member)
    put(cache, "foo/bar2", D1)
    put(cache, None, D5)
    # A member without its hash (registry < 3.1 repository clear), a hash without membership.
    client.sadd("repository::foo/bar::blobs", D4)
    client.hset(f"repository::foo/bar::blobs::{D5}", "mediatype", CONFIG)
    # Not the layout: an invalid digest suffix, and keys of other apps.
    client.hset("repository::foo/bar::blobs::garbage", "mediatype", CONFIG)
    client.set("blobs:other", "x")


NOT_LAYOUT = {
    "blobs::garbage": "x",
    "blobs:other": "x",
    ":1:django-cache-key": "x",
    "repository::Foo Bar::blobs::" + D1: "x",
    "repository::foo/bar::blobsx": "x",
    "repository::foo/bar::blobs::" + D1 + "::extra": "x",
    "blobs::" + UPPER: "x",
    "django.contrib.sessions.cache" + "a" * 32: "x",
}


def crowd(client: redis.Redis) -> None:
    """Keys that look like the layout but are not, and a third holder of D1."""
    for key, value in NOT_LAYOUT.items():
        client.set(key, value)
    client.sadd("repository::foo/baz::blobs", D1)
    client.hset(f"repository::foo/baz::blobs::{D1}", "mediatype", LAYER)
