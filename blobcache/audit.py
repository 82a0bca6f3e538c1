"""The audit log: one database row per write or clear of the cache, whoever started it.

Who and through which interface come from :mod:`blobcache.actor`, set once by the interface
layer (API view, command, admin page, notifications receiver); the cache operation itself only
says what it did. A bulk operation is recorded once with its counts.

The row is written after the cache operation, which Redis has already applied: failing to write
it must not turn a done clear into an error (the API would answer 500 for a clear that happened,
a command would exit non-zero and be retried). So a database error is logged at ERROR on the
``blobcache.audit`` logger with the whole row, which lets a log pipeline keep the record, and
the operation's own result stands. The insert runs in its own savepoint so that a failure does
not abort the host's surrounding transaction (``ATOMIC_REQUESTS``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from blobcache.actor import current_actor
from blobcache.conf import blobcache_settings
from blobcache.descriptor import Descriptor
from blobcache.exceptions import (
    BlobUnknown,
    CacheUnavailable,
    DescriptorCorrupt,
    DescriptorInvalid,
    DigestInvalid,
    NameInvalid,
)
from blobcache.models import (
    CORRUPT,
    ERROR,
    INTERRUPTED,
    INVALID,
    MISS,
    OK,
    UNAVAILABLE,
    AuditEntry,
)
from blobcache.storage import StorageInvalid, StorageUnavailable

logger = logging.getLogger("blobcache.audit")

#: The outcome recorded for an operation that raised, first match wins (subclasses included).
#: Bad input is "invalid" wherever it is caught: a malformed digest or name, a descriptor that
#: cannot be stored, a storage root that is not a registry's, a batch size out of range.
EXCEPTION_OUTCOMES: list[tuple[type[BaseException], str]] = [
    (CacheUnavailable, UNAVAILABLE),
    (StorageUnavailable, UNAVAILABLE),
    (DescriptorCorrupt, CORRUPT),
    (BlobUnknown, MISS),
    (DigestInvalid, INVALID),
    (NameInvalid, INVALID),
    (DescriptorInvalid, INVALID),
    (StorageInvalid, INVALID),
    (ValueError, INVALID),
    (KeyboardInterrupt, INTERRUPTED),
]

_TEXT_LIMITS = {"user": 255, "repository": 255, "digest": 200}


def outcome_for(error: BaseException) -> str:
    """The audit outcome of an operation that ended with ``error``.

    An exception may also name its outcome itself in an ``audit_outcome`` attribute (the API's
    request-body errors do): the interface layers know their own bad-input errors.
    """
    named = getattr(error, "audit_outcome", None)
    if isinstance(named, str):
        return named
    for kind, outcome in EXCEPTION_OUTCOMES:
        if isinstance(error, kind):
            return outcome
    return ERROR


def record(
    operation: str,
    *,
    scope: str = "",
    repository: str | None = None,
    digest: str | None = None,
    cleared: int | None = None,
    keys_deleted: int | None = None,
    counts: dict[str, Any] | None = None,
    dry_run: bool = False,
    outcome: str = OK,
    detail: str = "",
) -> AuditEntry | None:
    """Write one audit row for the current actor; ``None`` when the database refused it.

    Never raises for a database failure (see the module's docstring): the row's content is
    logged at ERROR on ``blobcache.audit`` instead.
    """
    actor = current_actor()
    row: dict[str, Any] = {
        "interface": actor.interface,
        "user": actor.user,
        "operation": operation,
        "scope": scope,
        "repository": repository or "",
        "digest": digest or "",
        "cleared": cleared,
        "keys_deleted": keys_deleted,
        "counts": dict(counts or {}),
        "dry_run": dry_run,
        "outcome": outcome,
        "detail": detail,
    }
    # Bad input is recorded too, and a megabyte of name must not make the insert fail.
    for name, limit in _TEXT_LIMITS.items():
        row[name] = row[name][:limit]
    try:
        with transaction.atomic():
            return AuditEntry.objects.create(timestamp=timezone.now(), **row)
    # Whatever the database or its driver raises (OperationalError, a poisoned connection's
    # TransactionManagementError, a table not migrated yet): the cache operation is done.
    except Exception as error:
        logger.error("could not write the audit row %r: %s", row, error, exc_info=True)
        return None


@dataclass
class PendingEntry:
    """The fields of the row :func:`recording` writes when its block ends; set them inside."""

    operation: str
    scope: str = ""
    repository: str | None = None
    digest: str | None = None
    cleared: int | None = None
    keys_deleted: int | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    outcome: str = OK
    detail: str = ""
    #: The row once written (``None`` before, or when the database refused it).
    entry: AuditEntry | None = None

    def set_result(self, result: Any) -> None:
        """Take the counts of a bulk clear's or a reconciliation's result (``cleared``,
        ``keys_deleted``, ``dry_run``, ``interrupted``); an interrupted run is recorded as such,
        with the counts of what it did before it stopped."""
        self.cleared = int(result.cleared)
        self.keys_deleted = int(result.keys_deleted)
        self.dry_run = bool(result.dry_run)
        if result.interrupted:
            self.outcome = INTERRUPTED

    def fields(self) -> dict[str, Any]:
        values = asdict(self)
        del values["operation"], values["entry"]
        return values


@contextmanager
def recording(operation: str, **fields: Any) -> Iterator[PendingEntry]:
    """Record one row for the block, also when it raises; the exception propagates unchanged.

    The outcome is ``ok`` unless the block sets another. When the block raises without having
    set one, the exception's outcome (:func:`outcome_for`) is recorded; when it has (a command
    that caught a refusal and re-raised), that one stands. The exception's message becomes the
    detail unless the block set one.
    """
    pending = PendingEntry(operation, **fields)
    try:
        yield pending
    except BaseException as error:
        if pending.outcome == OK:
            pending.outcome = outcome_for(error)
        if not pending.detail:
            pending.detail = str(error) or type(error).__name__
        pending.entry = record(operation, **pending.fields())
        raise
    pending.entry = record(operation, **pending.fields())


def set_detail(stored: Descriptor, created: bool) -> str:
    """A set's detail: whether it created the entry, and what a stat reads back after it."""
    return (
        f"{'created' if created else 'updated'}: size={stored.size} "
        f"mediaType={stored.media_type or '-'}"
    )


def retention_days() -> int | None:
    """``BLOBCACHE["AUDIT_RETENTION_DAYS"]``, checked: a non-negative integer, or None."""
    days = blobcache_settings.AUDIT_RETENTION_DAYS
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
        raise ValueError(
            f"BLOBCACHE['AUDIT_RETENTION_DAYS'] must be a number of days (0 or more) or None, "
            f"not {days!r}"
        )
    return days


def retention_cutoff(days: int | None = None) -> datetime | None:
    """Rows older than this go; ``None`` when they are kept forever."""
    if days is None:
        days = retention_days()
        if days is None:
            return None
    return timezone.now() - timedelta(days=days)


def expired(older_than: datetime | None = None) -> Any:
    """The rows :func:`prune` would delete (a queryset), or ``None`` when nothing expires."""
    cutoff = older_than if older_than is not None else retention_cutoff()
    if cutoff is None:
        return None
    return AuditEntry.objects.filter(timestamp__lt=cutoff)


def prune(older_than: datetime | None = None) -> int:
    """Delete the rows older than ``older_than`` (default: the retention setting's cutoff) and
    return how many went; 0 when the retention keeps rows forever."""
    rows = expired(older_than)
    if rows is None:
        return 0
    deleted, _ = rows.delete()
    return int(deleted)
