"""Prometheus metrics: what the cache manager, the bulk clears, reconcile and the receiver did.

Counters and the duration histogram live in prometheus-client's own value classes, so under
gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` set every worker writes its own mmap file and a scrape
sums them (prometheus-client's multiprocess mode). Values that only mean something at scrape time
(is Redis answering, how big was the cache at the last statistics run, when did reconcile last
succeed) are computed by :class:`ScrapeCollector` when scraped, never stored per process, so no
worker can report a stale ``blobcache_redis_up``.

The hot path (one cache operation) costs two ``perf_counter`` calls, a dict lookup for the
pre-built labelled child and two increments; ``BLOBCACHE["METRICS"] = False`` makes it one
attribute check.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis import exceptions as redis_errors

from blobcache import actor, exceptions

PREFIX = "blobcache_"

P = ParamSpec("P")
R = TypeVar("R")

# Label values: dashboards and alerts rely on exactly these.
STAT, SET, CLEAR = "stat", "set", "clear"
GLOBAL, REPOSITORY = "global", "repository"
HIT, MISS, OK, CORRUPT, INVALID, UNAVAILABLE = (
    "hit", "miss", "ok", "corrupt", "invalid", "unavailable"
)
#: The outcomes each operation can have (a stat never answers "ok", a write never "miss").
OPERATION_OUTCOMES: dict[str, tuple[str, ...]] = {
    STAT: (HIT, MISS, CORRUPT, INVALID, UNAVAILABLE),
    SET: (OK, CORRUPT, INVALID, UNAVAILABLE),
    CLEAR: (OK, MISS, CORRUPT, INVALID, UNAVAILABLE),
}
SCOPES = (GLOBAL, REPOSITORY)
#: Interfaces of ``blobcache_cleared_entries_total``: the actor's, except that reconcile counts
#: as itself whoever started it; "python" is a portal's own code outside every interface.
RECONCILE = "reconcile"
CLEAR_INTERFACES = (*actor.INTERFACES, RECONCILE)
REDIS_ERROR_KINDS = ("connection", "timeout", "readonly", "oom", "other")
#: The registry's event actions; anything else a sender invents is "other", so a misbehaving
#: sender cannot grow the number of series without bound.
NOTIFICATION_ACTIONS = ("push", "pull", "mount", "delete", "other")
NOTIFICATION_OUTCOMES = ("cleared", "unknown", "ignored", "corrupt", "unavailable")

#: Redis answers one command in tens of microseconds on a local network; a script in hundreds.
#: Buckets resolve that range and still show a stalled server (up to the socket timeouts).
DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
)

#: blobcache's in-process metrics (not prometheus-client's global REGISTRY: a host decides what
#: it exposes, see :func:`register`).
registry = CollectorRegistry(auto_describe=True)

OPERATIONS = Counter(
    "blobcache_operations",
    "Cache manager operations by scope and outcome.",
    ["operation", "scope", "outcome"],
    registry=registry,
)
DURATION = Histogram(
    "blobcache_operation_duration_seconds",
    "Duration of cache manager operations that reached Redis.",
    ["operation", "scope"],
    buckets=DURATION_BUCKETS,
    registry=registry,
)
CLEARED = Counter(
    "blobcache_cleared_entries",
    "Descriptor entries cleared (a global entry is one, a repository's entry for a digest one).",
    ["interface"],
    registry=registry,
)
RECONCILE_CLEARED = Counter(
    "blobcache_reconcile_cleared",
    "Entries reconcile cleared, by the reason storage no longer backs them.",
    ["reason"],
    registry=registry,
)
NOTIFICATION_EVENTS = Counter(
    "blobcache_notifications_events",
    "Registry notification events received, by action and what the receiver did.",
    ["action", "outcome"],
    registry=registry,
)
REDIS_ERRORS = Counter(
    "blobcache_redis_errors",
    "Redis calls that failed, by kind of failure.",
    ["kind"],
    registry=registry,
)

#: The metrics counted in each process, as :func:`register` hands them to a host's registry.
IN_PROCESS: tuple[Collector, ...] = (
    OPERATIONS, DURATION, CLEARED, RECONCILE_CLEARED, NOTIFICATION_EVENTS, REDIS_ERRORS
)

# Children built once: ``labels()`` takes a lock and validates on every call, and a series that
# exists from the start at 0 makes ``rate()`` and ``increase()`` exact from the first scrape.
_OPERATION_CHILDREN = {
    (operation, scope, outcome): OPERATIONS.labels(operation, scope, outcome)
    for operation, outcomes in OPERATION_OUTCOMES.items()
    for scope in SCOPES
    for outcome in outcomes
}
_DURATION_CHILDREN = {
    (operation, scope): DURATION.labels(operation, scope)
    for operation in OPERATION_OUTCOMES
    for scope in SCOPES
}
_CLEARED_CHILDREN = {interface: CLEARED.labels(interface) for interface in CLEAR_INTERFACES}
_REASON_CHILDREN: dict[str, Any] = {}
_REDIS_ERROR_CHILDREN = {kind: REDIS_ERRORS.labels(kind) for kind in REDIS_ERROR_KINDS}
_NOTIFICATION_CHILDREN = {
    (action, outcome): NOTIFICATION_EVENTS.labels(action, outcome)
    for action in NOTIFICATION_ACTIONS
    for outcome in NOTIFICATION_OUTCOMES
}

#: Exceptions that end an operation, by the outcome they stand for (subclasses inherit it).
_ERROR_OUTCOMES: dict[type[BaseException], str] = {
    exceptions.BlobUnknown: MISS,
    exceptions.DescriptorCorrupt: CORRUPT,
    exceptions.DigestInvalid: INVALID,
    exceptions.NameInvalid: INVALID,
    exceptions.DescriptorInvalid: INVALID,
    exceptions.CacheUnavailable: UNAVAILABLE,
}


class _Switch:
    """``BLOBCACHE["METRICS"]``, read once and again after ``setting_changed``."""

    on: bool | None = None

    def enabled(self) -> bool:
        if self.on is None:
            from blobcache.conf import blobcache_settings

            self.on = bool(blobcache_settings.METRICS)
        return self.on

    def reset(self) -> None:
        self.on = None


switch = _Switch()


def outcome_of(error_type: type[BaseException]) -> str | None:
    """The outcome label of an exception that ended an operation; ``None`` for a bug."""
    for base in error_type.__mro__:
        outcome = _ERROR_OUTCOMES.get(base)
        if outcome is not None:
            return outcome
    return None


class Timed:
    """Counts one cache manager operation and, when it reached Redis, observes its duration.

    A class rather than ``@contextmanager``: a generator per call costs more than the counting.
    """

    __slots__ = ("operation", "scope", "success", "started")

    def __init__(self, operation: str, scope: str, success: str) -> None:
        self.operation = operation
        self.scope = scope
        self.success = success
        self.started = 0.0

    def __enter__(self) -> Timed:
        self.started = time.perf_counter()
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not switch.enabled():
            return
        outcome = self.success if error_type is None else outcome_of(error_type)
        if outcome is None:
            return
        _OPERATION_CHILDREN[self.operation, self.scope, outcome].inc()
        # Invalid input never reaches Redis; its near-zero time would only blur the histogram.
        if outcome != INVALID:
            _DURATION_CHILDREN[self.operation, self.scope].observe(
                time.perf_counter() - self.started
            )


def measured(
    operation: str, success: str
) -> Callable[[Callable[Concatenate[Any, P], R]], Callable[Concatenate[Any, P], R]]:
    """Decorates a method of the global or repository-scoped service (``self.repository`` is
    ``None`` or a name): ``success`` is the outcome when it returns, an exception's outcome
    follows from its type, and the scope from the service."""

    def decorate(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
        @functools.wraps(method)
        def call(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
            scope = GLOBAL if self.repository is None else REPOSITORY
            with Timed(operation, scope, success):
                return method(self, *args, **kwargs)

        return call

    return decorate


def count_operations(operation: str, scope: str, outcome: str, amount: int = 1) -> None:
    """Operations done in bulk (a clear of many digests counts as that many clears)."""
    if amount and switch.enabled():
        _OPERATION_CHILDREN[operation, scope, outcome].inc(amount)


def count_cleared(amount: int, interface: str | None = None) -> None:
    """Entries cleared, labelled with the current actor's interface unless told otherwise."""
    if amount <= 0 or not switch.enabled():
        return
    _CLEARED_CHILDREN[interface or actor.current_actor().interface].inc(amount)


def count_reconcile_cleared(reason: str) -> None:
    if switch.enabled():
        child = _REASON_CHILDREN.get(reason)
        if child is None:
            child = _REASON_CHILDREN[reason] = RECONCILE_CLEARED.labels(reason)
        child.inc()
        _CLEARED_CHILDREN[RECONCILE].inc()


def count_notification_event(action: Any, outcome: str, amount: int = 1) -> None:
    """``amount`` events of a notification envelope; ``outcome`` is one of
    ``NOTIFICATION_OUTCOMES``. ``action`` is the event's own (any JSON value); unknown ones
    count as "other"."""
    if outcome not in NOTIFICATION_OUTCOMES:
        raise ValueError(f"unknown notification outcome {outcome!r}")
    if amount > 0 and switch.enabled():
        label = action if isinstance(action, str) and action in NOTIFICATION_ACTIONS else "other"
        _NOTIFICATION_CHILDREN[label, outcome].inc(amount)


def redis_error_kind(error: BaseException) -> str:
    """The ``kind`` label of a failed Redis call: the operator's fix differs for each."""
    # redis-py's TimeoutError is no OSError, the socket's is; both are a timeout.
    if isinstance(error, (redis_errors.TimeoutError, TimeoutError)):
        return "timeout"
    text = str(error)
    # A script relays the server's error inside its own text, without redis-py's subclass.
    if isinstance(error, redis_errors.ReadOnlyError) or "READONLY" in text[:60]:
        return "readonly"
    if isinstance(error, redis_errors.OutOfMemoryError) or "OOM " in text[:60]:
        return "oom"
    if isinstance(error, (redis_errors.ConnectionError, OSError)):
        return "connection"
    return "other"


def count_redis_error(error: BaseException) -> None:
    if switch.enabled():
        _REDIS_ERROR_CHILDREN[redis_error_kind(error)].inc()


# --- scrape time ---------------------------------------------------------------------------------


def multiprocess_mode() -> bool:
    """Whether counters live in mmap files (decided by prometheus-client when it was imported)."""
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    if value is not None:
        family.add_metric([], value)
    return family


class ScrapeCollector(Collector):
    """Gauges computed when scraped: Redis reachability, the last statistics, reconcile.

    Reads the database rows the statistics run and the audit log leave behind, and PINGs Redis
    within the health check's bound; never starts a SCAN.
    """

    def describe(self) -> Iterable[Metric]:
        # Without describe() a registry with auto_describe would collect() on register(),
        # pinging Redis and querying the database while the host starts up.
        return list(self._families(redis_up=None, stats=None, reconcile_at=None))

    def collect(self) -> Iterable[Metric]:
        from blobcache import health

        stats = _latest_statistics()
        return list(
            self._families(
                redis_up=1.0 if health.redis_reachable() else 0.0,
                stats=stats,
                reconcile_at=_last_reconcile_success(),
            )
        )

    def _families(
        self, *, redis_up: float | None, stats: Any, reconcile_at: float | None
    ) -> Iterator[Metric]:
        yield _gauge(
            "blobcache_redis_up", "1 when Redis answered a PING at scrape time, else 0.", redis_up
        )
        yield _gauge(
            "blobcache_reconcile_last_success_timestamp_seconds",
            "When the last complete reconcile of the whole cache finished (0: never).",
            reconcile_at,
        )
        sizes = (
            ("blobcache_descriptors", "Global descriptors at the last statistics run.",
             "descriptors"),
            ("blobcache_repositories", "Repositories at the last statistics run.",
             "repositories"),
            ("blobcache_memberships", "Repository memberships at the last statistics run.",
             "memberships"),
            ("blobcache_memory_bytes", "Memory of the layout's keys at the last statistics run.",
             "memory_bytes"),
        )
        for name, documentation, field in sizes:
            value = None if stats is None else getattr(stats, field, None)
            yield _gauge(name, documentation, None if value is None else float(value))
        finished = None if stats is None else getattr(stats, "finished_at", None)
        yield _gauge(
            "blobcache_stats_timestamp_seconds",
            "When the last statistics run finished.",
            None if finished is None else finished.timestamp(),
        )


def _latest_statistics() -> Any:
    """The last finished statistics row, or ``None`` before the first run finished."""
    from blobcache import statistics

    return statistics.latest()


def _last_reconcile_success() -> float:
    """From the audit log, so that a run by a command in another process counts too; only a
    real run over the whole cache that went to its end."""
    from blobcache.models import OK, RECONCILE, AuditEntry

    timestamp = (
        AuditEntry.objects.filter(operation=RECONCILE, outcome=OK, dry_run=False, repository="")
        .order_by("-timestamp")
        .values_list("timestamp", flat=True)
        .first()
    )
    return 0.0 if timestamp is None else timestamp.timestamp()


class _BlobcacheOnly(Collector):
    """A multiprocess collector's families, without the host's own metrics in the same folder."""

    def __init__(self, source: Collector) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return [family for family in self.source.collect() if family.name.startswith(PREFIX)]


def _process_collector() -> Collector:
    if multiprocess_mode():
        # Reads every worker's files (and those of exited processes: counters must not drop).
        return _BlobcacheOnly(MultiProcessCollector(CollectorRegistry(auto_describe=False)))
    return registry


class ExpositionCollector(Collector):
    """Everything ``GET /api/metrics`` exposes: the counters (of every worker in multiprocess
    mode) and the scrape-time gauges."""

    def __init__(self) -> None:
        self.counters = _process_collector()
        self.gauges = ScrapeCollector()

    def collect(self) -> Iterable[Metric]:
        return [*self.counters.collect(), *self.gauges.collect()]


def register(target: CollectorRegistry) -> None:
    """Add blobcache's metrics to a host's registry (django-prometheus exposes ``REGISTRY``).

    In multiprocess mode the host's own ``MultiProcessCollector`` already reads blobcache's
    counters from the shared folder, so only the scrape-time gauges are added.
    """
    if not multiprocess_mode():
        for collector in IN_PROCESS:
            target.register(collector)
    target.register(ScrapeCollector())
