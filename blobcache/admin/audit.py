"""The audit log in the admin: read-only, filterable by who, how and when, searchable by digest
or repository."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from blobcache.models import AuditEntry


class AuditEntryAdmin(admin.ModelAdmin):
    """Rows are written by blobcache alone; the admin only shows them.

    Seeing the log takes ``blobcache.view_auditentry`` (or superuser), like any model's view
    permission; nobody is offered add, change or delete, not even a superuser, so the log cannot
    be edited through the admin.
    """

    list_display = (
        "timestamp",
        "interface",
        "user",
        "operation",
        "scope",
        "repository",
        "digest",
        "cleared",
        "keys_deleted",
        "dry_run",
        "outcome",
    )
    list_filter = (
        "interface",
        "operation",
        "user",
        ("timestamp", admin.DateFieldListFilter),
        "outcome",
        "dry_run",
    )
    search_fields = ("digest", "repository")
    date_hierarchy = "timestamp"
    fields = (
        "timestamp",
        "interface",
        "user",
        "operation",
        "scope",
        "repository",
        "digest",
        "cleared",
        "keys_deleted",
        "counts",
        "dry_run",
        "outcome",
        "detail",
    )
    readonly_fields = fields
    actions = None
    list_per_page = 100
    # COUNT(*) over a long log on every page view is the slow part of a changelist.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def register_audit_log(site: admin.AdminSite) -> None:
    """Show the audit log in ``site``: ``admin.site`` gets it by itself, a host's own
    ``AdminSite`` calls this (or :func:`blobcache.admin.register`)."""
    if not site.is_registered(AuditEntry):
        site.register(AuditEntry, AuditEntryAdmin)
