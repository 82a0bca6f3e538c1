"""The cache manager: the registry's blob descriptor service, on one Redis round trip per call.

Semantics follow the registry 3.1+ (SPEC Part A): misses on incomplete entries, set-if-absent
global media types, alias writes, and a repository clear that removes membership, repository
hash and global fields together. Every operation is a single command or a single script, so on a
standalone or Sentinel-managed Redis it is atomic, which the registry's own code never is.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis import exceptions as redis_errors

from blobcache import keys, metrics, scripts, signals
from blobcache.connection import describe_client, get_client
from blobcache.descriptor import SIZE_MAX, Descriptor, validate_descriptor
from blobcache.digest import algorithm_of, validate_digest
from blobcache.exceptions import (
    BlobUnknown,
    CacheUnavailable,
    DescriptorCorrupt,
    DescriptorInvalid,
)
from blobcache.reference import validate_repository_name

# Go's strconv.ParseInt(s, 10, 64) grammar; the range is checked after parsing.
_SIZE_TEXT = re.compile(rb"[+-]?[0-9]+")


@contextmanager
def translate_redis_errors(client: Any, involved: Sequence[str] = ()) -> Iterator[None]:
    """Turn redis-py exceptions into blobcache's: outages and corrupt entries differ for callers.

    ``involved`` names the keys of the call, for a WRONGTYPE reply that does not say which key
    (the scripts name it themselves; plain commands on Cluster do not).
    """
    try:
        yield
    except redis_errors.ResponseError as error:
        text = str(error)
        if "WRONGTYPE" in text or "BLOBCACHE_CORRUPT" in text:
            where = ""
            if "BLOBCACHE_CORRUPT" not in text and involved:
                where = f" (one of {', '.join(involved)})"
            raise DescriptorCorrupt(
                f"a cache key holds a value of the wrong type: {_strip_script_noise(text)}{where}"
            ) from error
        # Everything else (OOM, READONLY, LOADING, MASTERDOWN, NOAUTH...) means Redis cannot
        # serve this call now; the entry itself is not at fault. Said apart from "cannot
        # reach", because the operator's fix differs (memory, replication, ACLs).
        metrics.count_redis_error(error)
        raise CacheUnavailable(
            f"Redis at {describe_client(client)} refused the command"
            f" ({type(error).__name__}): {_strip_script_noise(text)}"
        ) from error
    except (redis_errors.RedisError, OSError) as error:
        metrics.count_redis_error(error)
        raise _unavailable(client, error) from error


def _unavailable(client: Any, error: BaseException) -> CacheUnavailable:
    reason = str(error) or type(error).__name__
    return CacheUnavailable(f"cannot reach Redis at {describe_client(client)}: {reason}")


def _strip_script_noise(text: str) -> str:
    # Redis 6 wraps errors raised inside a script in "Error running script (call to f_...)".
    return text.split(": ", 2)[-1] if text.startswith("Error running script") else text


def is_cluster_client(client: Any) -> bool:
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


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


class _Scripts:
    """The Lua scripts of one client; redis-py runs them by SHA and reloads them on NOSCRIPT."""

    def __init__(self, client: Any) -> None:
        self.stat_repository = client.register_script(scripts.load("stat_repository"))
        self.set_global = client.register_script(scripts.load("set_global"))
        self.set_repository = client.register_script(scripts.load("set_repository"))
        self.clear_global = client.register_script(scripts.load("clear_global"))
        self.clear_repository = client.register_script(scripts.load("clear_repository"))


class DescriptorCache:
    """The global (registry-wide) descriptor service: the registry's cache provider."""

    repository: str | None = None

    def __init__(self, client: Any) -> None:
        self.client = client
        self.scripts = _Scripts(client)
        # A repository operation touches keys in different hash slots, and the key names are the
        # registry's (no hash tags possible), so on Cluster it runs as ordered per-slot steps.
        self.cluster = is_cluster_client(client)

    def eviction_policies(self) -> dict[str, str] | None:
        """``maxmemory-policy`` of each primary (one entry outside Cluster), or ``None`` when the
        server does not let CONFIG GET through (managed services often rename or forbid it).

        The registry's docs require ``allkeys-lru``: with ``noeviction`` a full Redis refuses
        every cache write, the registry's and blobcache's alike.
        """
        with translate_redis_errors(self.client):
            try:
                if self.cluster:
                    replies = self.client.config_get(
                        "maxmemory-policy", target_nodes=self.client.PRIMARIES
                    )
                else:
                    replies = {"": self.client.config_get("maxmemory-policy")}
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
            raise _unavailable(self.client, error) from error

    def repository_scoped(self, name: str) -> RepositoryScopedCache:
        """A service for one repository; validates the name and sends nothing to Redis."""
        return RepositoryScopedCache(self, validate_repository_name(name))

    @metrics.measured(metrics.STAT, metrics.HIT)
    def stat(self, digest: str) -> Descriptor:
        validate_digest(digest)
        with translate_redis_errors(self.client):
            fields = self.client.hmget(keys.global_key(digest), keys.DESCRIPTOR_FIELDS)
        return descriptor_from_fields(*fields)

    def set_descriptor(self, digest: str, descriptor: Descriptor) -> None:
        self.put(digest, descriptor)

    @metrics.measured(metrics.SET, metrics.OK)
    def put(self, digest: str, descriptor: Descriptor) -> tuple[Descriptor, bool]:
        """Write like ``set_descriptor``; return what a stat now reads and whether it was a miss."""
        validate_digest(digest)
        validate_descriptor(descriptor)
        with translate_redis_errors(self.client):
            existed, *fields = self.scripts.set_global(
                keys=[keys.global_key(digest)],
                args=[descriptor.digest, descriptor.size, descriptor.media_type],
            )
        signals.descriptor_set.send(
            sender=type(self), digest=digest, descriptor=descriptor, repository=None
        )
        return descriptor_from_fields(*fields), not existed

    @metrics.measured(metrics.CLEAR, metrics.OK)
    def clear(self, digest: str) -> None:
        validate_digest(digest)
        with translate_redis_errors(self.client):
            removed = self.scripts.clear_global(keys=[keys.global_key(digest)])
        if not removed:
            raise BlobUnknown()
        metrics.count_cleared(1)
        signals.descriptor_cleared.send(sender=type(self), digest=digest, repository=None)


class RepositoryScopedCache:
    """The descriptor service of one repository: answers only for digests linked into it."""

    def __init__(self, provider: DescriptorCache, repository: str) -> None:
        self.provider = provider
        self.client = provider.client
        self.repository = repository
        self._membership_key = keys.membership_key(repository)

    @metrics.measured(metrics.STAT, metrics.HIT)
    def stat(self, digest: str) -> Descriptor:
        validate_digest(digest)
        global_key = keys.global_key(digest)
        repository_key = keys.repository_key(self.repository, digest)
        involved = (self._membership_key, global_key, repository_key)
        with translate_redis_errors(self.client, involved):
            if self.provider.cluster:
                member, *fields = self._stat_cluster(digest, global_key, repository_key)
            else:
                member, *fields = self.provider.scripts.stat_repository(
                    keys=[self._membership_key, global_key, repository_key], args=[digest]
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

    def _stat_cluster(self, digest: str, global_key: str, repository_key: str) -> list[Any]:
        # Membership first: writers add it last and clears remove it first, so a member seen
        # here has its hashes in place (or is being cleared, which reads as a miss). Plain
        # sequential commands: redis-py's ClusterPipeline costs more than it saves for two keys.
        if not self.client.sismember(self._membership_key, digest):
            return [0]
        fields = self.client.hmget(global_key, keys.DESCRIPTOR_FIELDS)
        override = self.client.hget(repository_key, keys.FIELD_MEDIA_TYPE)
        return [1, *fields, override]

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
            if self.provider.cluster:
                existed, *fields = self._put_cluster(digest, descriptor, write_keys)
            else:
                existed, *fields = self.provider.scripts.set_repository(
                    keys=write_keys,
                    args=[digest, canonical, descriptor.size, descriptor.media_type],
                )
        signals.descriptor_set.send(
            sender=type(self), digest=digest, descriptor=descriptor, repository=self.repository
        )
        return descriptor_from_fields(*fields), not existed

    def _put_cluster(
        self, digest: str, descriptor: Descriptor, write_keys: list[str]
    ) -> list[Any]:
        """Per-slot steps in a reader-safe order: global hashes, repository hashes, membership.

        The registry's keys for one blob hash to different slots, so no script or MULTI can
        span them. A reader checks membership first, so it never sees a member whose hashes
        are not written yet; a fault between steps leaves hashes without membership, which
        reads as a miss (the weaker Cluster guarantee, documented in the README).
        """
        membership_key = write_keys[0]
        digests = [digest] if len(write_keys) == 3 else [descriptor.digest, digest]
        args = [descriptor.digest, descriptor.size, descriptor.media_type]
        global_results = [
            self.provider.scripts.set_global(keys=[key], args=args) for key in write_keys[1::2]
        ]
        new_fields = [
            self.client.hset(key, keys.FIELD_MEDIA_TYPE, descriptor.media_type)
            for key in write_keys[2::2]
        ]
        added = [self.client.sadd(membership_key, member) for member in digests]
        # The key digest comes first in the hash lists and last in ``digests``.
        existed = bool(global_results[0][0]) and not new_fields[0] and not added[-1]
        return [int(existed), *global_results[0][1:], descriptor.media_type]

    @metrics.measured(metrics.CLEAR, metrics.OK)
    def clear(self, digest: str) -> None:
        validate_digest(digest)
        repository_key = keys.repository_key(self.repository, digest)
        global_key = keys.global_key(digest)
        involved = (self._membership_key, repository_key, global_key)
        with translate_redis_errors(self.client, involved):
            if self.provider.cluster:
                # Membership first, so no reader sees a member whose hashes are going away.
                removed = self.client.srem(self._membership_key, digest)
                if removed:
                    self.client.delete(repository_key)
                    # The global entry counts as a second entry, as the bulk clears count it.
                    removed += bool(self.provider.scripts.clear_global(keys=[global_key]))
            else:
                removed = self.provider.scripts.clear_repository(
                    keys=[self._membership_key, repository_key, global_key], args=[digest]
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
