"""``blobcache_audit_prune``: deletes rows past the retention, exact output and exit statuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from blobcache import audit
from blobcache.models import AuditEntry
from tests.helpers.commands import run

pytestmark = pytest.mark.django_db


def aged(days: float) -> AuditEntry:
    entry = audit.record("clear")
    assert entry is not None
    AuditEntry.objects.filter(pk=entry.pk).update(timestamp=timezone.now() - timedelta(days=days))
    return entry


def printed_cutoff(stdout: str) -> datetime:
    match = re.search(r"\(before (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\)", stdout)
    assert match, stdout
    return datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def test_deletes_rows_past_the_default_90_days() -> None:
    aged(91), aged(365)
    kept = {aged(89), aged(0)}
    started = timezone.now()
    outcome = run("blobcache_audit_prune", "--no-input")
    assert (outcome.status, outcome.stderr) == (0, "")
    assert re.fullmatch(
        r"Deleted 2 audit rows older than 90 days \(before [^)]+\)\.\n", outcome.stdout
    )
    cutoff = printed_cutoff(outcome.stdout) + timedelta(days=90)
    assert started - timedelta(seconds=1) <= cutoff <= timezone.now()
    assert set(AuditEntry.objects.all()) == kept


def test_days_option_and_one_row() -> None:
    aged(3)
    kept = aged(0.5)
    outcome = run("blobcache_audit_prune", "--days", "1", "--no-input")
    assert outcome.status == 0
    assert outcome.stdout.startswith("Deleted 1 audit row older than 1 day (before ")
    assert list(AuditEntry.objects.all()) == [kept]


def test_dry_run_counts_and_deletes_nothing() -> None:
    aged(100), aged(200), aged(1)
    outcome = run("blobcache_audit_prune", "--dry-run")
    assert outcome.status == 0
    assert outcome.stdout.startswith("Dry run: would delete 2 audit rows older than 90 days ")
    assert AuditEntry.objects.count() == 3


def test_without_a_terminal_and_without_no_input_it_refuses() -> None:
    aged(100)
    outcome = run("blobcache_audit_prune")
    assert outcome.status == 1
    assert outcome.stdout == ""
    assert outcome.stderr.startswith("refusing to delete the audit rows older than 90 days ")
    assert AuditEntry.objects.count() == 1


def test_retention_none_keeps_everything(settings: Any) -> None:
    settings.BLOBCACHE = {**settings.BLOBCACHE, "AUDIT_RETENTION_DAYS": None}
    aged(10_000)
    outcome = run("blobcache_audit_prune", "--no-input")
    assert outcome.status == 0
    assert outcome.stdout == (
        'BLOBCACHE["AUDIT_RETENTION_DAYS"] is None: audit rows are kept forever, nothing to '
        "prune (pass --days N to prune anyway).\n"
    )
    assert AuditEntry.objects.count() == 1
    assert run("blobcache_audit_prune", "--days", "30", "--no-input").stdout.startswith(
        "Deleted 1 audit row older than 30 days"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "-1"], "Error: argument --days: -1 is negative\n"),
        (["--days", "ten"], "Error: argument --days: 'ten' is not an integer\n"),
        (["--weeks", "2"], "Error: unrecognized arguments: --weeks 2\n"),
    ],
)
def test_bad_usage_exits_2_and_deletes_nothing(args: list[str], message: str) -> None:
    aged(100)
    outcome = run("blobcache_audit_prune", *args, "--no-input")
    assert (outcome.status, outcome.stdout, outcome.stderr) == (2, "", message)
    assert AuditEntry.objects.count() == 1


def test_a_bad_retention_setting_exits_2(settings: Any) -> None:
    settings.BLOBCACHE = {**settings.BLOBCACHE, "AUDIT_RETENTION_DAYS": "90"}
    aged(100)
    outcome = run("blobcache_audit_prune", "--no-input")
    assert outcome.status == 2
    assert outcome.stderr == (
        "BLOBCACHE['AUDIT_RETENTION_DAYS'] must be a number of days (0 or more) or None, not '90'\n"
    )
    assert AuditEntry.objects.count() == 1


def test_a_database_error_exits_1() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE blobcache_auditentry RENAME TO blobcache_auditentry_away")
    outcome = run("blobcache_audit_prune", "--no-input")
    assert outcome.status == 1
    assert outcome.stderr == ("cannot prune the audit log: no such table: blobcache_auditentry\n")
