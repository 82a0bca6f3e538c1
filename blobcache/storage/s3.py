"""The ``s3`` driver: a registry's storage in S3 or an S3-compatible store, read with boto3.

The registry's ``s3`` driver keeps the filesystem layout under keys
``<rootdirectory>/docker/registry/v2/...`` (the root's slashes trimmed). This driver needs read
access only: ``s3:ListBucket`` on the bucket and ``s3:GetObject`` on its objects.

Cost: a walk of the cache asks :meth:`S3Storage.snapshot`, which lists ``blobs/`` once and each
examined repository's ``_layers/`` and ``_manifests/revisions/`` once (ListObjectsV2, 1,000 keys
a request), spooled to a temporary SQLite file so memory stays flat however large the bucket.
A link's content is needed only to follow an alias link, and the listing's ETag (the MD5 of a
single-part object) already proves that a link names its own digest; only a link whose ETag
proves nothing (a multipart or KMS-encrypted object) and whose own digest has no data is read
(GetObject). The re-check just before a batch is deleted asks storage again per entry, so a
push racing the run keeps its entry.

Failures never read as "absent": a missing bucket or missing credentials raise
:class:`StorageInvalid` (the configuration is wrong), a 403, a 5xx or throttling after
botocore's retries, a timeout or a refused connection raise :class:`StorageUnavailable`.
Messages name the bucket and the endpoint, never a credential.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from blobcache.digest import validate_digest
from blobcache.exceptions import DigestInvalid
from blobcache.storage import (
    LINK_MAX,
    V2_PARTS,
    Storage,
    StorageInvalid,
    StorageUnavailable,
    StorageUnconfigured,
    StorageView,
    blob_data_name,
    link_names,
    link_target,
    repository_name,
)

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:  # pragma: no cover - depends on the installation
    boto3 = None

#: Seconds to connect and to wait for an answer, and attempts per request (botocore's
#: "standard" retry mode backs off between them, and retries 5xx, throttling and timeouts).
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
MAX_ATTEMPTS = 5

#: Parameters of the registry's ``storage.s3`` section that only matter when writing
#: (encryption, chunk sizes, storage class...) are accepted and ignored; these are read.
_STRINGS = (
    "bucket",
    "region",
    "regionendpoint",
    "rootdirectory",
    "accesskey",
    "secretkey",
    "sessiontoken",
)

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_NO_BUCKET = {"NoSuchBucket"}
_NO_CREDENTIALS: tuple[type[BaseException], ...] = ()
if boto3 is not None:
    _NO_CREDENTIALS = (
        botocore.exceptions.NoCredentialsError,
        botocore.exceptions.PartialCredentialsError,
    )


def _flag(parameters: Mapping[str, Any], name: str, default: bool | None) -> bool | None:
    value = parameters.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise StorageUnconfigured(f"storage.s3.{name} must be true or false")


def _number(parameters: Mapping[str, Any], name: str, default: float) -> float:
    value = parameters.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if number <= 0:
        raise StorageUnconfigured(f"storage.s3.{name} must be a number above 0")
    return number


def _attempts(parameters: Mapping[str, Any]) -> int:
    value = parameters.get("maxattempts", MAX_ATTEMPTS)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if isinstance(value, bool) or number < 1 or number != int(number):
        raise StorageUnconfigured("storage.s3.maxattempts must be a whole number from 1")
    return int(number)


def _endpoint_url(endpoint: str, secure: bool) -> str:
    # The registry accepts an endpoint without a scheme and picks it from ``secure``.
    if "://" in endpoint:
        return endpoint
    return f"{'https' if secure else 'http'}://{endpoint}"


class S3Storage(Storage):
    """One registry's storage in a bucket. Never writes."""

    driver = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        region: str | None = None,
        regionendpoint: str | None = None,
        rootdirectory: str = "",
        accesskey: str | None = None,
        secretkey: str | None = None,
        sessiontoken: str | None = None,
        secure: bool = True,
        skipverify: bool = False,
        forcepathstyle: bool | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        super().__init__()
        if boto3 is None:
            raise StorageUnconfigured(
                "the s3 storage driver needs boto3: install django-blobcache[s3]"
            )
        if not bucket:
            raise StorageUnconfigured("storage.s3.bucket is required")
        self.bucket = bucket
        root = rootdirectory.strip("/")
        #: Every key of the registry's tree starts with this.
        self.v2 = "/".join(([root] if root else []) + list(V2_PARTS)) + "/"
        self.endpoint = _endpoint_url(regionendpoint, secure) if regionendpoint else None
        # The registry 2.8 addresses the bucket by path whenever an endpoint is given (what
        # MinIO and most S3-compatible stores need); ``forcepathstyle`` overrides that.
        path_style = forcepathstyle if forcepathstyle is not None else bool(regionendpoint)
        config = botocore.config.Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # botocore's ``max_attempts`` counts retries only; ``total_max_attempts`` counts
            # the first request too, as the documented parameter does.
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            s3={"addressing_style": "path" if path_style else "auto"},
        )
        # Without keys, boto3's default chain: environment, profile, instance or task role.
        session = boto3.session.Session(
            aws_access_key_id=accesskey or None,
            aws_secret_access_key=secretkey or None,
            aws_session_token=sessiontoken or None,
        )
        self.client = session.client(
            "s3",
            region_name=region or "us-east-1",
            endpoint_url=self.endpoint,
            use_ssl=secure,
            verify=not skipverify,
            config=config,
        )
        # Every HTTP attempt, retries included, is a request the store bills.
        self.client.meta.events.register("before-send.s3", self._count)

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> S3Storage:
        """From the registry's ``storage.s3`` parameters (and blobcache's tuning names)."""
        strings: dict[str, str] = {}
        for name in _STRINGS:
            value = parameters.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise StorageUnconfigured(f"storage.s3.{name} must be a string")
            strings[name] = value
        if not strings.get("bucket"):
            raise StorageUnconfigured("storage.s3.bucket is required")
        return cls(
            bucket=strings["bucket"],
            region=strings.get("region"),
            regionendpoint=strings.get("regionendpoint") or None,
            rootdirectory=strings.get("rootdirectory", ""),
            accesskey=strings.get("accesskey"),
            secretkey=strings.get("secretkey"),
            sessiontoken=strings.get("sessiontoken"),
            secure=bool(_flag(parameters, "secure", True)),
            skipverify=bool(_flag(parameters, "skipverify", False)),
            forcepathstyle=_flag(parameters, "forcepathstyle", None),
            connect_timeout=_number(parameters, "connecttimeout", CONNECT_TIMEOUT),
            read_timeout=_number(parameters, "readtimeout", READ_TIMEOUT),
            max_attempts=_attempts(parameters),
        )

    def _count(self, **_: Any) -> None:
        self.requests += 1

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.v2.removesuffix('/')}{self._at()}"

    def close(self) -> None:
        self.client.close()

    # --- requests ---

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Translate botocore's failures; the caller handles "no such key" itself."""
        try:
            yield
        except botocore.exceptions.ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _NO_BUCKET:
                raise StorageInvalid(
                    f"the bucket {self.bucket!r} does not exist{self._at()}"
                ) from None
            if status == 403:
                raise StorageUnavailable(
                    f"access denied ({code or 403}) {what} in {self.describe()}: blobcache "
                    "needs s3:ListBucket and s3:GetObject"
                ) from None
            raise StorageUnavailable(
                f"cannot read {what} in {self.describe()}: {code or status}"
            ) from None
        except _NO_CREDENTIALS:
            raise StorageInvalid(
                "no credentials for the s3 storage driver: give storage.s3.accesskey and "
                "secretkey, or configure the AWS default credential chain"
            ) from None
        except botocore.exceptions.BotoCoreError as error:
            # Timeouts, refused connections, TLS failures: after botocore's retries.
            raise StorageUnavailable(
                f"cannot read {what} in {self.describe()}: {type(error).__name__}"
            ) from None

    def _at(self) -> str:
        if not self.endpoint:
            return ""
        # An endpoint may carry credentials (user:password@host): never in a message.
        parts = urllib.parse.urlsplit(self.endpoint)
        host = parts.netloc.rpartition("@")[2]
        return f" at {urllib.parse.urlunsplit(parts._replace(netloc=host))}"

    def list_keys(self, prefix: str) -> Iterator[tuple[str, str]]:
        """``(key relative to prefix, ETag without quotes)`` of every object under ``prefix``,
        in key order, one ListObjectsV2 request per 1,000."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix)
        with self._reading(f"the listing of {prefix}"):
            for page in pages:
                for item in page.get("Contents", ()):
                    yield item["Key"][len(prefix) :], str(item.get("ETag", "")).strip('"')

    def read(self, key: str) -> bytes | None:
        """A small object's content (at most a link's size), None when there is no such key."""
        with self._reading(key):
            try:
                answer = self.client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes=0-{LINK_MAX - 1}"
                )
            except botocore.exceptions.ClientError as error:
                code = error.response.get("Error", {}).get("Code")
                if code in _NOT_FOUND:
                    return None
                if code == "InvalidRange":
                    return b""  # an empty object: no digest in it
                raise
            body = answer["Body"]
            try:
                return bytes(body.read(LINK_MAX))
            finally:
                body.close()

    def exists(self, key: str) -> bool:
        """Asked with a one-key listing: unlike a HEAD, its "not found" cannot be a missing
        bucket, which must stop the run instead."""
        with self._reading(key):
            answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        return any(item["Key"] == key for item in answer.get("Contents", ()))

    # --- keys ---

    def blob_data_key(self, digest: str) -> str:
        return f"{self.v2}{blob_data_name(digest)}"

    def repository_prefix(self, repository: str) -> str:
        return f"{self.v2}{repository_name(repository)}/"

    def link_keys(self, repository: str, digest: str) -> tuple[str, str]:
        prefix = self.repository_prefix(repository)
        layer, revision = link_names(digest)
        return f"{prefix}{layer}", f"{prefix}{revision}"

    # --- the interface ---

    def check(self) -> None:
        """One listing of a single key under ``docker/registry/v2/``."""
        with self._reading(self.v2):
            answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.v2, MaxKeys=1)
        if not answer.get("Contents"):
            raise StorageInvalid(
                f"{self.describe()} holds nothing under {'/'.join(V2_PARTS)}: give the "
                "registry's storage.s3.bucket and rootdirectory (a registry writes there on its "
                "first push)"
            )

    def has_blob_data(self, digest: str) -> bool:
        return self.exists(self.blob_data_key(digest))

    def linked_blob(self, repository: str, digest: str) -> str | None:
        for key in self.link_keys(repository, digest):
            content = self.read(key)
            if content is not None:
                return link_target(content, digest)
        return None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[StorageView]:
        with S3Listing(self) as listing:
            yield listing


def _digest_of(algorithm: str, encoded: str) -> str | None:
    try:
        return validate_digest(f"{algorithm}:{encoded}")
    except DigestInvalid:
        return None


def _self_etag(digest: str) -> str:
    """The ETag of a single-part link object whose content is ``digest`` (what the registry
    writes): the MD5 of the content."""
    return hashlib.md5(digest.encode(), usedforsecurity=False).hexdigest()


#: Data questions asked one by one before ``blobs/`` is listed: a run over a few entries (one
#: small repository) must not list a bucket of millions of blobs, and a large run loses at most
#: this many requests by starting this way.
DIRECT_DATA_QUESTIONS = 100

#: A link's row: its content is the digest itself, not known yet, or read (another digest).
_SELF = 0
_UNKNOWN = 1


class S3Listing:
    """Answers from listings made once per run, spooled to a temporary SQLite file.

    ``blobs/`` is listed once :data:`DIRECT_DATA_QUESTIONS` data questions have been asked one
    by one, a repository's links on the first question about that repository. Data written
    after its listing is missed here, which is safe: an entry only becomes a candidate, and the
    re-check asks storage again before deleting.
    """

    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage
        self._folder = tempfile.TemporaryDirectory(prefix="blobcache-s3-")
        self.db = sqlite3.connect(os.path.join(self._folder.name, "listing.sqlite3"))
        self.db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE blobs (digest TEXT PRIMARY KEY) WITHOUT ROWID;
            CREATE TABLE links (
                repository TEXT, digest TEXT, state INTEGER, target TEXT,
                PRIMARY KEY (repository, digest)
            ) WITHOUT ROWID;
            CREATE TABLE listed (repository TEXT PRIMARY KEY) WITHOUT ROWID;
            """
        )
        self._blobs_listed = False
        self._direct_left = DIRECT_DATA_QUESTIONS

    def __enter__(self) -> S3Listing:
        return self

    def __exit__(self, *_: object) -> None:
        self.db.close()
        self._folder.cleanup()

    def _insert(self, sql: str, rows: Iterator[tuple[Any, ...]]) -> None:
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= 1000:
                self.db.executemany(sql, batch)
                batch = []
        if batch:
            self.db.executemany(sql, batch)

    def _list_blobs(self) -> None:
        def rows() -> Iterator[tuple[str]]:
            # <alg>/<xx>/<hex>/data
            for key, _ in self.storage.list_keys(f"{self.storage.v2}blobs/"):
                parts = key.split("/")
                if len(parts) == 4 and parts[3] == "data":
                    digest = _digest_of(parts[0], parts[2])
                    if digest is not None:
                        yield (digest,)

        self._insert("INSERT OR IGNORE INTO blobs VALUES (?)", rows())
        self.db.commit()
        self._blobs_listed = True

    def _list_repository(self, repository: str) -> None:
        prefix = self.storage.repository_prefix(repository)

        def rows(folder: str) -> Iterator[tuple[str, str, int]]:
            # <alg>/<hex>/link
            for key, etag in self.storage.list_keys(prefix + folder):
                parts = key.split("/")
                if len(parts) == 3 and parts[2] == "link":
                    digest = _digest_of(parts[0], parts[1])
                    if digest is not None:
                        state = _SELF if etag == _self_etag(digest) else _UNKNOWN
                        yield (repository, digest, state)

        # Layers first: the filesystem driver reads the layer link before the revision link.
        for folder in ("_layers/", "_manifests/revisions/"):
            self._insert(
                "INSERT OR IGNORE INTO links (repository, digest, state) VALUES (?, ?, ?)",
                rows(folder),
            )
        self.db.execute("INSERT INTO listed VALUES (?)", (repository,))
        self.db.commit()

    def has_blob_data(self, digest: str) -> bool:
        if not self._blobs_listed:
            if self._direct_left > 0:
                self._direct_left -= 1
                return self.storage.has_blob_data(digest)
            self._list_blobs()
        found = self.db.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return found is not None

    def linked_blob(self, repository: str, digest: str) -> str | None:
        listed = self.db.execute("SELECT 1 FROM listed WHERE repository = ?", (repository,))
        if listed.fetchone() is None:
            self._list_repository(repository)
        row = self.db.execute(
            "SELECT state, target FROM links WHERE repository = ? AND digest = ?",
            (repository, digest),
        ).fetchone()
        if row is None:
            return None
        state, target = row
        if state == _SELF:
            return digest
        if target is not None:
            return str(target)
        # The ETag cannot tell what the link names. A link backed by its own digest's data
        # stays backed whatever it names; only one without is worth a read.
        if self.has_blob_data(digest):
            return digest
        resolved = self.storage.linked_blob(repository, digest) or digest
        self.db.execute(
            "UPDATE links SET target = ? WHERE repository = ? AND digest = ?",
            (resolved, repository, digest),
        )
        return resolved
