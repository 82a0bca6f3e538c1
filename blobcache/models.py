"""The cache's data never lives in the database; only its audit log and its last count do.

Permissions need a content type, and a content type needs a model. The unmanaged
``CachedDescriptor`` without a table gives an admin something to grant
(``blobcache.view_descriptor`` and friends) in the user and group pages.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from blobcache.actor import INTERFACES

INTERFACE_CHOICES = [(name, name) for name in INTERFACES]

#: Operations of the audit log.
SET = "set"
CLEAR = "clear"
CLEAR_REPOSITORY_SCOPE = "clear_repository_scope"
CLEAR_EVERYWHERE = "clear_everywhere"
CLEAR_ALL = "clear_all"
CLEAR_DIGESTS = "clear_digests"
RECONCILE = "reconcile"
NOTIFICATIONS = "notifications"
OPERATIONS = (
    SET,
    CLEAR,
    CLEAR_REPOSITORY_SCOPE,
    CLEAR_EVERYWHERE,
    CLEAR_ALL,
    CLEAR_DIGESTS,
    RECONCILE,
    NOTIFICATIONS,
)
OPERATION_CHOICES = [(name, name) for name in OPERATIONS]

GLOBAL_SCOPE = "global"
REPOSITORY_SCOPE = "repository"
SCOPE_CHOICES = [(GLOBAL_SCOPE, GLOBAL_SCOPE), (REPOSITORY_SCOPE, REPOSITORY_SCOPE)]

#: How an operation ended.
OK = "ok"
MISS = "miss"
CORRUPT = "corrupt"
INVALID = "invalid"
UNAVAILABLE = "unavailable"
INTERRUPTED = "interrupted"
REFUSED = "refused"
ERROR = "error"
OUTCOMES = (OK, MISS, CORRUPT, INVALID, UNAVAILABLE, INTERRUPTED, REFUSED, ERROR)
OUTCOME_CHOICES = [(name, name) for name in OUTCOMES]

#: States of a cache count.
RUNNING = "running"
DONE = "done"
FAILED = "failed"
STATE_CHOICES = [(RUNNING, RUNNING), (DONE, DONE), (FAILED, FAILED)]


class CachedDescriptor(models.Model):
    """Stands for the descriptors in the registry's Redis; never queried, never saved."""

    class Meta:
        managed = False
        # Django's add/change/delete/view set would offer an "add" nobody can act on.
        default_permissions = ()
        permissions = [
            ("view_descriptor", "Can read cached blob descriptors and listings"),
            ("change_descriptor", "Can set cached blob descriptors"),
            ("delete_descriptor", "Can clear cached descriptors and repository scopes"),
        ]
        verbose_name = "cached descriptor"
        verbose_name_plural = "cached descriptors"


class AuditEntry(models.Model):
    """One write or clear of the cache: who, through which interface, what, and how it ended.

    A bulk operation is one row with its counts, whatever the number of keys it touched, so the
    table grows with operator actions, not with the cache.
    """

    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    interface = models.CharField(max_length=16, choices=INTERFACE_CHOICES, db_index=True)
    #: A username, ``"<os user> (manage.py)"`` or the registry endpoint's name.
    user = models.CharField(max_length=255, blank=True)
    operation = models.CharField(max_length=32, choices=OPERATION_CHOICES, db_index=True)
    scope = models.CharField(max_length=16, choices=SCOPE_CHOICES, blank=True)
    repository = models.CharField(max_length=255, blank=True, db_index=True)
    digest = models.CharField(max_length=200, blank=True, db_index=True)
    cleared = models.BigIntegerField(null=True, blank=True)
    keys_deleted = models.BigIntegerField(null=True, blank=True)
    #: Reconcile's entries per reason, a digest list's requested/unknown, a receiver's events.
    counts = models.JSONField(default=dict, blank=True)
    dry_run = models.BooleanField(default=False)
    outcome = models.CharField(max_length=32, choices=OUTCOME_CHOICES, default=OK)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        # The log is written by blobcache only: nobody is offered to add, edit or delete rows.
        default_permissions = ("view",)
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        target = " ".join(part for part in (self.repository, self.digest) if part)
        return f"{self.operation} {target} by {self.user or self.interface}: {self.outcome}"


class CacheStatistics(models.Model):
    """A full count of the cache (one SCAN of the database), kept so pages can show the last one
    with its age instead of running a count on every view."""

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=RUNNING, db_index=True)
    descriptors = models.BigIntegerField(null=True, blank=True)
    repositories = models.BigIntegerField(null=True, blank=True)
    memberships = models.BigIntegerField(null=True, blank=True)
    repository_hashes = models.BigIntegerField(null=True, blank=True)
    memory_bytes = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    user = models.CharField(max_length=255, blank=True)
    interface = models.CharField(max_length=16, choices=INTERFACE_CHOICES)

    class Meta:
        ordering = ["-started_at", "-id"]
        # Rows are written by blobcache only; seeing them is the descriptors' view permission.
        default_permissions = ()
        verbose_name = "cache statistics"
        verbose_name_plural = "cache statistics"

    def __str__(self) -> str:
        return f"cache count of {self.started_at:%Y-%m-%d %H:%M:%S} ({self.state})"
