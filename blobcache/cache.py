"""The cache manager: the registry's blob descriptor service, on one Redis round trip per call.

Semantics follow the registry 3.1+: misses on incomplete entries, set-if-absent global media
types, alias writes, and a repository clear that removes membership, repository hash and global
fields together. Validation, metrics and signals live here; every Redis access goes through the
client's store (:mod:`blobcache.store`), which on a standalone or Sentinel-managed Redis makes
each operation one atomic script, which the registry's own code never is.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from redis import exceptions as redis_errors

from blobcache import keys, metrics, signals
from blobcache.connection import get_client
from blobcache.descriptor import SIZE_MAX, Descriptor, validate_descriptor
from blobcache.digest import algorithm_of, validate_digest
from blobcache.exceptions import BlobUnknown, DescriptorCorrupt, DescriptorInvalid
from blobcache.reference import validate_repository_name
from blobcache.store import Store, store_for
from blobcache.store.errors import translate_redis_errors, unavailable

__all__ = [
    "DescriptorCache",
    "RepositoryScopedCache",
    "descriptor_from_fields",
    "get_descriptor_cache",
    "reset_descriptor_cache",
    "translate_redis_errors",
]

# Go's strconv.ParseInt(s, 10, 64) grammar; the range is checked after parsing.
_SIZE_TEXT = re.compile(rb"[+-]?[0-9]+")


def _is_missing(value: Any) -> bool:
    # RESP2 gives None for a Lua false; RESP3 gives the boolean False.
    return value is None or value is False


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _as_text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except (UnicodeDecodeError, TypeError) as error:
        raise DescriptorCorrupt(f"the cached {what} is not UTF-8 text") from error


def descriptor_from_fields(
    digest: Any, size: Any, media_type: Any, override: Any = None
) -> Descriptor:
    """Build a descriptor from the raw ``HMGET digest size mediatype`` reply.

    A missing digest or size is a miss (a legacy ``length``-only hash reads as unknown, as in
    every registry since v2.1.0); a size that is not a base-10 int64 is a corrupt entry.
    """
    if _is_missing(digest) or _is_missing(size):
        raise BlobUnknown()
    size_bytes = _as_bytes(size)
    if not _SIZE_TEXT.fullmatch(size_bytes):
        raise DescriptorCorrupt(f"the cached size {size_bytes[:40]!r} is not an integer")
    size_value = int(size_bytes)
    if not 0 <= size_value <= SIZE_MAX:
        raise DescriptorCorrupt(f"the cached size {size_value} is out of range")
    chosen = media_type
    if not _is_missing(override) and override not in (b"", ""):
        chosen = override
    return Descriptor(
        digest=_as_text(digest, "digest"),
        size=size_value,
        media_type="" if _is_missing(chosen) else _as_text(chosen, "media type"),
    )


class DescriptorCache:
    """The global (registry-wide) descriptor service: the registry's cache provider."""

    repository: str | None = None

    def __init__(self, client: Any) -> None:
        self.client = client
        #: Every multi-key primitive, as the client's topology makes it atomic.
        self.store: Store = store_for(client)

    def eviction_policies(self) -> dict[str, str] | None:
        """``maxmemory-policy`` of each primary (one entry outside Cluster), or ``None`` when the
        server does not let CONFIG GET through (managed services often rename or forbid it).

        The registry's docs require ``allkeys-lru``: with ``noeviction`` a full Redis refuses
        every cache write, the registry's and blobcache's alike.
        """
        with translate_redis_errors(self.client):
            try:
                replies = self.store.on_primaries("config_get", "maxmemory-policy")
            except redis_errors.ResponseError:
                return None
        return {
            node: _as_text(reply.get("maxmemory-policy") or reply.get(b"maxmemory-policy"),
                           "policy")
            for node, reply in replies.items()
        }

    def ping(self) -> None:
        """One PING (to every primary on Cluster); raises ``CacheUnavailable`` when unanswered.

        Not counted in ``blobcache_redis_errors_total``: a probe's failures would grow with how
        often a load balancer asks, and ``blobcache_redis_up`` already tells the outage.
        """
        try:
            self.client.ping()
        except (redis_errors.RedisError, OSError) as error:
            raise unavailable(self.client, error) from error

    def repository_scoped(self, name: str) -> RepositoryScopedCache:
        """A service for one repository; validates the name and sends nothing to Redis."""
        return RepositoryScopedCache(self, validate_repository_name(name))

    @metrics.measured(metrics.STAT, metrics.HIT)
    def stat(self, digest: str) -> Descriptor:
        validate_digest(digest)
        global_key = keys.global_key(digest)
        with translate_redis_errors(self.client, (global_key,)):
            fields = self.store.stat_global(global_key)
        return descriptor_from_fields(*fields)

    def set_descriptor(self, digest: str, descriptor: Descriptor) -> None:
        self.put(digest, descriptor)

    @metrics.measured(metrics.SET, metrics.OK)
    def put(self, digest: str, descriptor: Descriptor) -> tuple[Descriptor, bool]:
        """Write like ``set_descriptor``; return what a stat now reads and whether it was a miss."""
        validate_digest(digest)
        validate_descriptor(descriptor)
        with translate_redis_errors(self.client):
            existed, *fields = self.store.set_global(keys.global_key(digest), descriptor)
        signals.descriptor_set.send(
            sender=type(self), digest=digest, descriptor=descriptor, repository=None
        )
        return descriptor_from_fields(*fields), not existed

    @metrics.measured(metrics.CLEAR, metrics.OK)
    def clear(self, digest: str) -> None:
        validate_digest(digest)
        with translate_redis_errors(self.client):
            removed = self.store.clear_global(keys.global_key(digest))
        if not removed:
            raise BlobUnknown()
        metrics.count_cleared(1)
        signals.descriptor_cleared.send(sender=type(self), digest=digest, repository=None)


class RepositoryScopedCache:
    """The descriptor service of one repository: answers only for digests linked into it."""

    def __init__(self, provider: DescriptorCache, repository: str) -> None:
        self.provider = provider
        self.client = provider.client
        self.store = provider.store
        self.repository = repository
        self._membership_key = keys.membership_key(repository)

    @metrics.measured(metrics.STAT, metrics.HIT)
    def stat(self, digest: str) -> Descriptor:
        validate_digest(digest)
        global_key = keys.global_key(digest)
        repository_key = keys.repository_key(self.repository, digest)
        involved = (self._membership_key, global_key, repository_key)
        with translate_redis_errors(self.client, involved):
            member, *fields = self.store.stat_repository(
                self._membership_key, global_key, repository_key, digest
            )
        if not member:
            raise BlobUnknown()
        # The global hash is read (and a bad size reported) before the repository hash, as the
        # registry does: a corrupt entry is not hidden behind a miss.
        descriptor = descriptor_from_fields(*fields)
        if _is_missing(fields[3]):
            # 3.x: a member without its repository hash is a miss (registry 2.x said ErrNil).
            raise BlobUnknown()
        return descriptor

    def set_descriptor(self, digest: str, descriptor: Descriptor) -> None:
        self.put(digest, descriptor)

    @metrics.measured(metrics.SET, metrics.OK)
    def put(self, digest: str, descriptor: Descriptor) -> tuple[Descriptor, bool]:
        """Write like ``set_descriptor``; return what a stat now reads and whether it was a miss."""
        validate_digest(digest)
        validate_descriptor(descriptor)
        canonical = descriptor.digest
        write_keys = [
            self._membership_key,
            keys.global_key(digest),
            keys.repository_key(self.repository, digest),
        ]
        if canonical != digest:
            if algorithm_of(canonical) == algorithm_of(digest):
                raise DescriptorInvalid(
                    f"digest for descriptors differ but algorithm does not: "
                    f"{digest!r} != {canonical!r}"
                )
            # The registry also caches the content under its canonical digest (alias write).
            write_keys += [
                keys.global_key(canonical),
                keys.repository_key(self.repository, canonical),
            ]
        with translate_redis_errors(self.client, write_keys):
            existed, *fields = self.store.set_repository(write_keys, digest, descriptor)
        signals.descriptor_set.send(
            sender=type(self), digest=digest, descriptor=descriptor, repository=self.repository
        )
        return descriptor_from_fields(*fields), not existed

    @metrics.measured(metrics.CLEAR, metrics.OK)
    def clear(self, digest: str) -> None:
        validate_digest(digest)
        repository_key = keys.repository_key(self.repository, digest)
        global_key = keys.global_key(digest)
        involved = (self._membership_key, repository_key, global_key)
        with translate_redis_errors(self.client, involved):
            removed = self.store.clear_repository(
                self._membership_key, repository_key, global_key, digest
            )
        if not removed:
            raise BlobUnknown()
        metrics.count_cleared(int(removed))
        signals.descriptor_cleared.send(
            sender=type(self), digest=digest, repository=self.repository
        )


_lock = threading.Lock()
_instance: DescriptorCache | None = None


def get_descriptor_cache() -> DescriptorCache:
    """The process-wide manager on the configured connection, built on first use."""
    global _instance
    instance = _instance
    if instance is None:
        with _lock:
            if _instance is None:
                _instance = DescriptorCache(get_client())
            instance = _instance
    return instance


def reset_descriptor_cache() -> None:
    """Forget the manager so the next call resolves the connection again (settings changed)."""
    global _instance
    with _lock:
        _instance = None
