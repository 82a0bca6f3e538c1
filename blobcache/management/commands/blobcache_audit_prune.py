"""``manage.py blobcache_audit_prune [--days N] [--dry-run] [--no-input]``.

Deletes the audit log's rows older than ``BLOBCACHE["AUDIT_RETENTION_DAYS"]`` (or ``--days``).
Exit statuses are the other commands': 0 done (also when the retention keeps rows forever);
1 the confirmation was refused or the database failed; 2 invalid usage or setting.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError

from blobcache import audit
from blobcache.management.base import (
    EXIT_PARTIAL,
    EXIT_USAGE,
    BlobcacheCommand,
    confirm,
    non_negative_int,
    plural,
)


class Command(BlobcacheCommand):
    help = (
        "Delete the audit log's rows older than the retention "
        '(BLOBCACHE["AUDIT_RETENTION_DAYS"], default 90 days) or --days N.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=non_negative_int,
            metavar="N",
            help="Delete rows older than N days instead of the configured retention.",
        )
        self.add_confirmation_arguments(
            parser, dry_run_help="Count the rows that would go; delete nothing."
        )

    def run(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days is None:
            try:
                days = audit.retention_days()
            except ValueError as error:
                raise CommandError(str(error), returncode=EXIT_USAGE) from None
        if days is None:
            self.stdout.write(
                'BLOBCACHE["AUDIT_RETENTION_DAYS"] is None: audit rows are kept forever, '
                "nothing to prune (pass --days N to prune anyway)."
            )
            return
        cutoff = audit.retention_cutoff(days)
        assert cutoff is not None
        when = f"older than {plural(days, 'day', 'days')} (before {cutoff:%Y-%m-%d %H:%M:%S %Z})"
        try:
            if options["dry_run"]:
                expired = audit.expired(cutoff)
                count = 0 if expired is None else expired.count()
                self.stdout.write(f"Dry run: would delete {self.rows(count)} {when}.")
                return
            if options["interactive"]:
                confirm(self, f"delete the audit rows {when}")
            deleted = audit.prune(cutoff)
        except DatabaseError as error:
            raise CommandError(
                f"cannot prune the audit log: {error}", returncode=EXIT_PARTIAL
            ) from None
        self.stdout.write(f"Deleted {self.rows(deleted)} {when}.")

    def rows(self, count: int) -> str:
        return plural(count, "audit row", "audit rows")
