"""Reading the audit log back, to assert exact rows (every column but the id and the time)."""

from __future__ import annotations

from typing import Any

from blobcache.models import AuditEntry

COLUMNS = (
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


def audit_rows() -> list[dict[str, Any]]:
    """Every row, oldest first."""
    return list(AuditEntry.objects.order_by("id").values(*COLUMNS))


def audit_row(operation: str, **fields: Any) -> dict[str, Any]:
    """The row ``record(operation)`` writes for plain Python, with ``fields`` changed."""
    return {
        "interface": "python",
        "user": "",
        "operation": operation,
        "scope": "",
        "repository": "",
        "digest": "",
        "cleared": None,
        "keys_deleted": None,
        "counts": {},
        "dry_run": False,
        "outcome": "ok",
        "detail": "",
        **fields,
    }
