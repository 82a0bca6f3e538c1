"""A registry's storage tree written into a bucket, key for key as the registry's s3 driver
writes it (``<rootdirectory>/docker/registry/v2/...``, links holding the canonical digest)."""

from __future__ import annotations

import itertools
from typing import Any

from blobcache.testing import S3Server

_names = itertools.count()


class S3Tree:
    """The same methods as ``tests.test_reconcile.StorageTree``, on a fresh bucket."""

    def __init__(self, server: S3Server, rootdirectory: str = "/registry") -> None:
        self.server = server
        self.client = server.client()
        self.bucket = f"blobcache-test-{next(_names)}"
        self.client.create_bucket(Bucket=self.bucket)
        self.rootdirectory = rootdirectory
        root = rootdirectory.strip("/")
        self.v2 = (f"{root}/" if root else "") + "docker/registry/v2/"
        # A registry writes this with its first push; check() looks for anything under v2.
        self.put("repositories/.first-push", b"")

    def parameters(self, **extra: Any) -> dict[str, Any]:
        return self.server.parameters(
            self.bucket, **{"rootdirectory": self.rootdirectory, **extra}
        )

    @property
    def section(self) -> dict[str, Any]:
        """The registry's ``storage`` section for this bucket."""
        return {"s3": self.parameters(), "delete": {"enabled": True}}

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.v2 + key, Body=body)

    def remove(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.v2 + key)

    def blob_key(self, digest: str) -> str:
        algorithm, _, encoded = digest.partition(":")
        return f"blobs/{algorithm}/{encoded[:2]}/{encoded}/data"

    def blob(self, digest: str, data: bytes = b"x") -> None:
        self.put(self.blob_key(digest), data)

    def layer_key(self, repository: str, digest: str) -> str:
        algorithm, _, encoded = digest.partition(":")
        return f"repositories/{repository}/_layers/{algorithm}/{encoded}/link"

    def layer(self, repository: str, digest: str) -> None:
        self.put(self.layer_key(repository, digest), digest.encode())

    def revision(self, repository: str, digest: str) -> None:
        algorithm, _, encoded = digest.partition(":")
        key = f"repositories/{repository}/_manifests/revisions/{algorithm}/{encoded}/link"
        self.put(key, digest.encode())

    def alias(self, repository: str, alias: str, canonical: str) -> None:
        self.put(self.layer_key(repository, alias), canonical.encode())

    def pushed(self, repository: str, digest: str) -> None:
        self.blob(digest)
        self.layer(repository, digest)
