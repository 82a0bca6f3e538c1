"""``manage.py blobcache_reconcile``: clear the entries the registry's storage no longer backs.

blobcache_reconcile [--storage-root PATH | --registry-config PATH] [--repository NAME]
                    [--dry-run] [--no-input] [--format text|json] [--batch-size N]

Run it after ``registry garbage-collect``, with the configuration file the registry runs with
(its ``storage`` section: filesystem or s3) or a filesystem root; without either, the storage
``BLOBCACHE`` configures. Exit statuses are the clear command's: 0 done; 1 the confirmation was
refused or storage could not be read (permissions, an object store's 403, 5xx or timeout); 2
invalid input (storage that is not a registry's, an unsupported driver, an unreadable
configuration file, an invalid name); 3 Redis unavailable; 130/143 after SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import tempfile
from typing import IO, Any

from django.core.management.base import CommandParser

from blobcache import bulk
from blobcache.conf import blobcache_settings
from blobcache.connection import describe_client
from blobcache.exceptions import StorageInvalid, StorageUnavailable, StorageUnconfigured
from blobcache.management.base import BlobcacheCommand, summary
from blobcache.models import RECONCILE, REPOSITORY_SCOPE
from blobcache.reconcile import REASONS, ClearedEntry, ReconcileResult, reconcile
from blobcache.reference import validate_repository_name
from blobcache.storage import Storage, configured_storage
from blobcache.storage.config import storage_from_registry_config
from blobcache.storage.filesystem import FilesystemStorage


class Command(BlobcacheCommand):
    help = (
        "Clear the cache entries that the registry's storage no longer backs: "
        "memberships of digests a repository no longer links, and entries whose blob data is "
        "gone (after garbage-collect). Entries storage still backs are never cleared."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--storage-root",
            metavar="PATH",
            help="The registry's storage.filesystem.rootdirectory (the folder holding "
            "docker/registry/v2).",
        )
        where.add_argument(
            "--registry-config",
            metavar="PATH",
            help="The registry's configuration file (config.yml): its storage section is used "
            "(filesystem or s3). Default for both: BLOBCACHE[\"STORAGE\"], else "
            'BLOBCACHE["STORAGE_ROOT"].',
        )
        parser.add_argument(
            "--repository",
            metavar="NAME",
            help="Reconcile only this repository's entries; global entries are left alone.",
        )
        self.add_clear_arguments(parser)

    def run(self, *args: Any, **options: Any) -> None:
        repository = options["repository"]
        if repository is not None:
            validate_repository_name(repository)
        storage = _storage_from(options)
        try:
            self.reconcile(storage, repository, options)
        finally:
            storage.close()

    def reconcile(self, storage: Storage, repository: str | None, options: dict[str, Any]) -> None:
        cache = self.cache
        where = f" of repository {repository!r}" if repository else ""
        self.confirm_recorded(
            options,
            f"clear the cache entries{where} at {describe_client(cache.client)} that "
            f"{storage.describe()} no longer backs",
            RECONCILE,
            scope=REPOSITORY_SCOPE if repository else "",
            repository=repository,
        )
        # Cleared entries are spooled to disk for the JSON listing: memory stays bounded
        # however many entries a sweep leaves stale.
        with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
            listing = _Listing(self, options, spool)
            total = (
                (lambda: bulk.repository_size(cache, repository)) if repository else (lambda: 0)
            )
            try:
                with self.progress_bar(total, "entries") as bar:
                    result = reconcile(
                        storage,
                        repository=repository,
                        dry_run=options["dry_run"],
                        batch_size=options["batch_size"],
                        progress=bar,
                        on_cleared=listing.add,
                        cache=cache,
                    )
            except StorageUnavailable as error:
                # Which entries were dealt with is in the audit row; the operator needs to know
                # that the rest were not, and that running again is safe.
                raise error.extended("; stopped, entries not yet checked were left alone") from None
            except StorageInvalid as error:
                # Valid when opened, so gone since (a bucket deleted mid-run): unreadable now.
                raise StorageUnavailable(
                    f"{error.message}; stopped, entries not yet checked were left alone"
                ) from None
            listing.finish(result)
        self.stop_if_interrupted(result)


def _storage_from(options: dict[str, Any]) -> Storage:
    """The storage the options name, else the configured one; checked before any question.
    Its errors exit by their class: 2 for storage that is not a registry's or an unusable
    configuration, 1 for storage that cannot be read."""
    if options["storage_root"]:
        return FilesystemStorage.open(options["storage_root"])
    if options["registry_config"]:
        return storage_from_registry_config(options["registry_config"])
    if not (blobcache_settings.STORAGE or blobcache_settings.STORAGE_ROOT):
        raise StorageUnconfigured(
            "Error: give --storage-root PATH or --registry-config PATH (or set "
            'BLOBCACHE["STORAGE"] or BLOBCACHE["STORAGE_ROOT"])'
        )
    return configured_storage()


class _Listing:
    """Prints the result: JSON with every cleared entry, or text with counts per reason."""

    def __init__(self, command: Command, options: dict[str, Any], spool: IO[str]) -> None:
        self.command = command
        self.json = options["format"] == "json"
        self.verbose = options["verbosity"] >= 2
        self.spool = spool
        self.count = 0

    def add(self, entry: ClearedEntry) -> None:
        if self.json:
            if self.count:
                self.spool.write(", ")
            self.spool.write(json.dumps(entry.as_dict()))
        elif self.verbose:
            self.command.stdout.write(f"{entry.reason} {entry.repository or '-'} {entry.digest}")
        self.count += 1

    def finish(self, result: ReconcileResult) -> None:
        stdout = self.command.stdout
        if self.json:
            # The document json.dumps(result.as_dict()) would give, written from the spool.
            head = json.dumps(result.summary())
            stdout.write(head[:-1] + ', "digests": [', ending="")
            self.spool.seek(0)
            while chunk := self.spool.read(1 << 16):
                stdout.write(chunk, ending="")
            stdout.write("]}")
            return
        stdout.write(f"{summary(result)}, by reason:")
        for reason in REASONS:
            stdout.write(f"  {reason}: {result.counts.get(reason, 0)}")
        if result.skipped:
            stdout.write(f"  skipped (cannot be checked against storage): {result.skipped}")
