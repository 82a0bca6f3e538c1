"""blobcache's settings: one ``BLOBCACHE`` dict in the host's settings, read lazily.

Values are looked up on every access (cheap: one dict lookup) so that ``override_settings`` and
pytest-django's ``settings`` fixture work without a reload step; only resolved objects that are
costly to build (the imported factory, the cache manager) are cached, and those are dropped on
``setting_changed``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # The django-redis cache alias whose raw redis-py client blobcache uses.
    "CACHE_ALIAS": "default",
    # Optional dotted path to a callable returning a redis-py client (Cluster, or any topology
    # django-redis cannot give). When set, CACHE_ALIAS is not used for the connection.
    "CLIENT_FACTORY": None,
    # Redis Cluster without writing a factory: set CLIENT_FACTORY to
    # "blobcache.connection.cluster_client" and give a startup node URL and RedisCluster kwargs.
    "CLUSTER_URL": None,
    "CLUSTER_OPTIONS": {},
    # DRF classes (or dotted paths) for the API. None means: the host's default authentication
    # classes; blobcache.api.permissions.DescriptorPermissions; the host's default throttles
    # plus the "blobcache" scope, which throttles once the host gives that scope a rate.
    "AUTHENTICATION_CLASSES": None,
    "PERMISSION_CLASSES": None,
    "THROTTLE_CLASSES": None,
    # Seconds a client is told to wait (Retry-After) when Redis is unavailable.
    "RETRY_AFTER": 1,
    # The registry's storage for reconciliation: its config.yml "storage" section as a dict,
    # e.g. {"s3": {"bucket": ..., "region": ...}} (see blobcache.storage.config).
    "STORAGE": None,
    # Shorthand for {"filesystem": {"rootdirectory": STORAGE_ROOT}}; STORAGE wins when set.
    "STORAGE_ROOT": None,
    # Shared secret expected from the registry's notification endpoint.
    "NOTIFICATIONS_SECRET": None,
    "NOTIFICATIONS_HEADER": "Authorization",
    # Seconds the notifications receiver waits for Redis before answering 503: the registry
    # delivers events one at a time per endpoint, so a slow answer holds up every later event.
    "NOTIFICATIONS_TIMEOUT": 0.8,
    # Envelopes above these sizes are refused with 413 before anything is parsed or cleared: a
    # 1,000-event envelope clears in a few round trips, far within the timeout.
    "NOTIFICATIONS_MAX_EVENTS": 1000,
    "NOTIFICATIONS_MAX_BYTES": 1_048_576,
    # Receiver jobs (running, or abandoned by a timed-out request and finishing their batch) per
    # process; one more is answered 503 with Retry-After at once.
    "NOTIFICATIONS_MAX_JOBS": 4,
    # Days the audit log keeps its rows (blobcache_audit_prune deletes older ones); None keeps
    # them forever.
    "AUDIT_RETENTION_DAYS": 90,
    # Count operations for Prometheus (False: every count is skipped and /api/metrics is 404).
    "METRICS": True,
    # Who may scrape /api/metrics: a bearer token, and/or users with blobcache.view_descriptor.
    # With neither, the endpoint answers 404: it is never open by accident.
    "METRICS_TOKEN": None,
    "METRICS_ALLOW_USERS": False,
    # Seconds /api/health and the blobcache_redis_up gauge wait for Redis's answer to a PING.
    "HEALTH_TIMEOUT": 0.9,
}

SETTING_NAME = "BLOBCACHE"


class BlobCacheSettings:
    """Attribute access to the ``BLOBCACHE`` dict with defaults; unknown names raise."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown blobcache setting {name!r}")
        user = getattr(settings, SETTING_NAME, None) or {}
        return user.get(name, DEFAULTS[name])

    def unknown_keys(self) -> list[str]:
        user = getattr(settings, SETTING_NAME, None) or {}
        return sorted(key for key in user if key not in DEFAULTS)


blobcache_settings = BlobCacheSettings()
