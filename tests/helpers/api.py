"""What the API tests send and expect: digests, routes, the registry's error envelope, and
drivers for the listings."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis
from rest_framework.test import APIClient

SHA256 = "sha256:" + "ab" * 32
SHA256_B = "sha256:" + "cd" * 32
SHA384 = "sha384:" + "ef" * 48
OCTET = "application/octet-stream"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

GLOBAL = f"/api/blobs/{SHA256}"
SCOPED = f"/api/repositories/library/alpine/blobs/{SHA256}"
MEMBERS = "/api/repositories/library/alpine/blobs"
DESCRIPTOR = json.dumps({"size": 1, "mediaType": OCTET})

# Every route and method, with the permission it needs.
OPERATIONS = [
    ("get", GLOBAL, "view_descriptor"),
    ("head", GLOBAL, "view_descriptor"),
    ("put", GLOBAL, "change_descriptor"),
    ("delete", GLOBAL, "delete_descriptor"),
    ("get", SCOPED, "view_descriptor"),
    ("head", SCOPED, "view_descriptor"),
    ("put", SCOPED, "change_descriptor"),
    ("delete", SCOPED, "delete_descriptor"),
    ("get", MEMBERS, "view_descriptor"),
    ("head", MEMBERS, "view_descriptor"),
    ("delete", MEMBERS, "delete_descriptor"),
    ("get", "/api/repositories", "view_descriptor"),
    ("head", "/api/repositories", "view_descriptor"),
]


def call(client: Any, method: str, path: str, **extra: Any) -> Any:
    if method == "put":
        return client.put(path, DESCRIPTOR, content_type="application/json", **extra)
    return getattr(client, method)(path, **extra)


def envelope(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "detail": detail}]}


def body(digest: str = SHA256, size: int = 42, media_type: str = OCTET) -> dict[str, Any]:
    return {"digest": digest, "size": size, "mediaType": media_type}


def digest_of(n: int) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def link(redis_client: redis.Redis, repository: str, digest: str, size: int = 1) -> None:
    """What a registry's repository-scoped SetDescriptor leaves behind."""
    pipe = redis_client.pipeline()
    pipe.sadd(f"repository::{repository}::blobs", digest)
    pipe.hset(f"blobs::{digest}", mapping={"digest": digest, "size": size})
    pipe.hsetnx(f"blobs::{digest}", "mediatype", OCTET)
    pipe.hset(f"repository::{repository}::blobs::{digest}", "mediatype", OCTET)
    pipe.execute()


def walk(api: APIClient, url: str, between: Any = None, limit: int = 10_000) -> list[list[Any]]:
    """Follow ``next`` links to the end; returns the pages' results."""
    pages: list[list[Any]] = []
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        data = response.json()
        assert set(data) == {"results", "next"}
        pages.append(data["results"])
        url = data["next"]
        if between is not None:
            between(len(pages))
        assert len(pages) < limit, "the walk does not end"
    return pages
