"""System checks: static configuration by default; only ``check --deploy`` talks to Redis."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from blobcache.conf import blobcache_settings
from blobcache.connection import import_client_factory

E001 = "blobcache.E001"  # the cache alias is not configured
E002 = "blobcache.E002"  # the cache alias is not a django-redis backend
E003 = "blobcache.E003"  # CLIENT_FACTORY cannot be imported or is not callable
E004 = "blobcache.E004"  # BLOBCACHE is not a dict or holds unknown keys
E005 = "blobcache.E005"  # AUDIT_RETENTION_DAYS is not a number of days or None
E006 = "blobcache.E006"  # a notifications receiver limit is not a positive number
W001 = "blobcache.W001"  # (deploy) Redis cannot be reached
W002 = "blobcache.W002"  # (deploy) maxmemory-policy is not allkeys-lru

REQUIRED_EVICTION_POLICY = "allkeys-lru"

DJANGO_REDIS_BACKEND = "django_redis.cache.RedisCache"


@register(Tags.caches)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    user = getattr(settings, "BLOBCACHE", None)
    if user is not None and not isinstance(user, dict):
        return [Error("BLOBCACHE must be a dict.", hint="Set BLOBCACHE = {...}.", id=E004)]
    unknown = blobcache_settings.unknown_keys()
    if unknown:
        return [
            Error(
                f"BLOBCACHE has unknown keys: {', '.join(unknown)}.",
                hint="Check the spelling against the README's settings table.",
                id=E004,
            )
        ]
    return []


@register(Tags.caches)
def check_connection_source(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not isinstance(getattr(settings, "BLOBCACHE", None) or {}, dict):
        return []  # E004 from check_settings; nothing can be read from it
    factory = blobcache_settings.CLIENT_FACTORY
    if factory:
        try:
            import_client_factory(factory)
        # Checks run before every command: whatever importing the factory raises (a non-string
        # path, an error inside the module) must become E003, not a traceback.
        except Exception as error:
            return [
                Error(
                    f"BLOBCACHE['CLIENT_FACTORY'] = {factory!r} cannot be used: {error}",
                    hint="Give the dotted path of a callable that returns a redis-py client.",
                    id=E003,
                )
            ]
        return []
    alias = blobcache_settings.CACHE_ALIAS
    caches = getattr(settings, "CACHES", {})
    if alias not in caches:
        return [
            Error(
                f"BLOBCACHE['CACHE_ALIAS'] is {alias!r}, but CACHES has no such alias.",
                hint="Add a django-redis cache under that alias or set CACHE_ALIAS.",
                id=E001,
            )
        ]
    backend = caches[alias].get("BACKEND", "")
    try:
        backend_class = import_string(backend)
        from django_redis.cache import RedisCache

        is_django_redis = issubclass(backend_class, RedisCache)
    except ImportError:
        is_django_redis = False
    if not is_django_redis:
        return [
            Error(
                f"CACHES[{alias!r}] uses {backend!r}, which is not a django-redis backend.",
                hint=f"Use BACKEND = {DJANGO_REDIS_BACKEND!r}, or set BLOBCACHE['CLIENT_FACTORY'].",
                id=E002,
            )
        ]
    return []


# Not tagged "caches": the commands run only those checks, and a bad retention must not stop a
# clear during an incident; ``manage.py check``, ``migrate`` and the servers report it.
@register()
def check_audit_retention(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not isinstance(getattr(settings, "BLOBCACHE", None) or {}, dict):
        return []  # E004
    from blobcache.audit import retention_days

    try:
        retention_days()
    except ValueError as error:
        return [Error(str(error), hint="Give whole days, e.g. 90, or None.", id=E005)]
    return []


# Not tagged "caches" either: a bad receiver limit must not stop a clear during an incident.
@register()
def check_notifications_limits(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not isinstance(getattr(settings, "BLOBCACHE", None) or {}, dict):
        return []  # E004
    from blobcache.api.notifications import receiver_limits

    try:
        receiver_limits()
    except ValueError as error:
        return [
            Error(
                str(error),
                hint="The receiver answers 503 NOTIFICATIONS_UNCONFIGURED until it is fixed.",
                id=E006,
            )
        ]
    return []


@register(Tags.caches, deploy=True)
def check_redis_deployment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Only under ``check --deploy``: checks run before most commands and must not need Redis."""
    if check_settings() or check_connection_source():
        return []  # the static checks already report what is wrong
    from blobcache.cache import get_descriptor_cache
    from blobcache.exceptions import CacheUnavailable

    try:
        policies = get_descriptor_cache().eviction_policies()
    except CacheUnavailable as error:
        return [
            Warning(
                str(error),
                hint="The API will answer 503 and the commands exit 3 until Redis is reachable.",
                id=W001,
            )
        ]
    return eviction_warnings(policies)


def eviction_warnings(policies: dict[str, str] | None) -> list[CheckMessage]:
    """W002 when a primary's ``maxmemory-policy`` is not the one the registry requires; also
    reported by ``/api/health``. ``None`` (CONFIG GET forbidden) cannot be judged."""
    wrong = {
        node: policy
        for node, policy in (policies or {}).items()
        if policy != REQUIRED_EVICTION_POLICY
    }
    if not wrong:
        return []
    where = ", ".join(f"{node}: {policy}" if node else policy for node, policy in wrong.items())
    return [
        Warning(
            f"Redis maxmemory-policy is {where}, not {REQUIRED_EVICTION_POLICY}.",
            hint="The registry's documentation requires allkeys-lru for its blob descriptor "
            "cache; with noeviction a full Redis refuses every cache write.",
            id=W002,
        )
    ]
