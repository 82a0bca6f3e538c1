"""Is Redis answering? For ``/api/health`` (a load balancer's probe) and ``blobcache_redis_up``.

The answer must come within ``HEALTH_TIMEOUT`` whatever the client's own socket timeouts and
retries add up to (a frozen Redis holds a socket read until the timeout, then redis-py may
retry), so the PING runs in a worker thread and the caller waits for it only so long.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

from blobcache.cache import get_descriptor_cache
from blobcache.conf import blobcache_settings
from blobcache.connection import topology_of
from blobcache.exceptions import CacheUnavailable

T = TypeVar("T")

OK = "ok"
#: ``redis`` in a failed report: how the PING failed, as ``blobcache_redis_errors_total``'s kind.
TIMEOUT = "timeout"

_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _worker() -> ThreadPoolExecutor:
    """Created on first use, so a server that forks its workers gets one pool per process."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="blobcache-health")
        return _executor


def within(work: Callable[[], T], timeout: float) -> T:
    """``work()``'s result, or ``TimeoutError`` after ``timeout`` seconds (the work goes on in
    its thread until the client's socket timeout ends it)."""
    future = _worker().submit(work)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        raise TimeoutError(f"Redis did not answer within {timeout:g} s") from None


@dataclass
class HealthReport:
    """``redis`` is "ok" or the kind of failure; ``warnings`` are deployment warnings (W002)."""

    redis: str
    topology: str
    warnings: list[dict[str, str]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.redis == OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.healthy else "unavailable",
            "redis": self.redis,
            "topology": self.topology,
            "warnings": self.warnings,
        }


def _failure_kind(error: BaseException) -> str:
    from blobcache.metrics import redis_error_kind

    return redis_error_kind(error.__cause__ or error)


def check() -> HealthReport:
    """PING, then the eviction policy (the ``check --deploy`` warning), within the bound."""
    from blobcache.checks import eviction_warnings

    cache = get_descriptor_cache()
    topology = topology_of(cache.client)

    def probe() -> list[dict[str, str]]:
        cache.ping()
        try:
            policies = cache.eviction_policies()
        except CacheUnavailable:
            # It answered PING: a slow or refused CONFIG GET must not fail the probe.
            return []
        return [
            {"id": str(warning.id), "message": warning.msg}
            for warning in eviction_warnings(policies)
        ]

    try:
        warnings = within(probe, float(blobcache_settings.HEALTH_TIMEOUT))
    except TimeoutError:
        return HealthReport(TIMEOUT, topology)
    except CacheUnavailable as error:
        return HealthReport(_failure_kind(error), topology)
    return HealthReport(OK, topology, warnings)


def redis_reachable() -> bool:
    """A PING within the bound, for the ``blobcache_redis_up`` gauge (no CONFIG GET)."""
    cache = get_descriptor_cache()
    try:
        within(cache.ping, float(blobcache_settings.HEALTH_TIMEOUT))
    except (TimeoutError, CacheUnavailable):
        return False
    return True
