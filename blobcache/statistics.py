"""The last full count of the cache, kept in the database.

A full count is one SCAN of the whole Redis database (:func:`blobcache.bulk.cache_stats`):
seconds on a large cache, so pages and metrics show the last result with its age rather than
count on every request. A count is saved as a ``running`` row first, so that a page can tell
that one is under way, and becomes ``done`` or ``failed``. When the database cannot be written
the count still runs and is returned unsaved (``pk`` is ``None``); the row is logged at ERROR on
the ``blobcache.statistics`` logger.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from blobcache import bulk
from blobcache.actor import current_actor
from blobcache.bulk import CacheStats, Progress
from blobcache.cache import DescriptorCache, get_descriptor_cache
from blobcache.models import DONE, FAILED, RUNNING, CacheStatistics

logger = logging.getLogger("blobcache.statistics")


def _save(row: CacheStatistics) -> CacheStatistics:
    # The count is worth having even when the database cannot keep it (the command prints it),
    # so a database failure is logged with the row's values instead of ending the count.
    try:
        with transaction.atomic():
            row.save()
    except Exception as error:
        values = {field.name: getattr(row, field.name) for field in row._meta.concrete_fields}
        logger.error("could not save the cache count %r: %s", values, error, exc_info=True)
    return row


def start() -> CacheStatistics:
    """A ``running`` row for the count about to start, attributed to the current actor."""
    actor = current_actor()
    return _save(
        CacheStatistics(
            started_at=timezone.now(), state=RUNNING, user=actor.user, interface=actor.interface
        )
    )


def finish(row: CacheStatistics, stats: CacheStats) -> CacheStatistics:
    """Store the count's result in ``row`` and mark it ``done``."""
    row.descriptors = stats.descriptors
    row.repositories = stats.repositories
    row.memberships = stats.memberships
    row.repository_hashes = stats.repository_descriptors
    row.memory_bytes = stats.memory_bytes
    row.state = DONE
    row.finished_at = timezone.now()
    return _save(row)


def fail(row: CacheStatistics, error: BaseException | str) -> CacheStatistics:
    """Mark ``row`` ``failed`` with the reason, so that a page shows why no number came."""
    row.state = FAILED
    row.error = str(error) or type(error).__name__
    row.finished_at = timezone.now()
    return _save(row)


def latest() -> CacheStatistics | None:
    """The most recent count that finished, or ``None`` when none ever did."""
    return CacheStatistics.objects.filter(state=DONE).order_by("-finished_at", "-id").first()


def as_cache_stats(row: CacheStatistics) -> CacheStats:
    """A done row's counts in the shape :func:`blobcache.bulk.cache_stats` returns."""
    if row.state != DONE:
        raise ValueError(f"the count of {row.started_at} is {row.state}, not done")
    return CacheStats(
        descriptors=row.descriptors or 0,
        repositories=row.repositories or 0,
        memberships=row.memberships or 0,
        repository_descriptors=row.repository_hashes or 0,
        memory_bytes=row.memory_bytes or 0,
    )


def run(
    cache: DescriptorCache | None = None,
    *,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> CacheStatistics:
    """Count the cache now and save the result; a failure is saved too, then re-raised.

    The row is ``done`` with the counts, or ``failed`` with the error (``CacheUnavailable``
    when Redis cannot answer, ``KeyboardInterrupt`` when the count was stopped).
    ``progress`` receives the number of keys scanned.
    """
    cache = cache if cache is not None else get_descriptor_cache()
    row = start()
    try:
        stats = bulk.cache_stats(cache, batch_size=batch_size, progress=progress)
    except BaseException as error:
        fail(row, error)
        raise
    return finish(row, stats)
