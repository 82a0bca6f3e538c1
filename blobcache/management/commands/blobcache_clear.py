"""``manage.py blobcache_clear``: clear digests, a repository scope, or the whole layout.

blobcache_clear DIGEST... [--repository NAME] [--from-file PATH|-]
blobcache_clear --everywhere DIGEST... [--from-file PATH|-]
blobcache_clear --repository NAME --all
blobcache_clear --all
options: --dry-run --no-input/--noinput --format text|json --batch-size N
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from blobcache import audit, bulk
from blobcache.bulk import ClearResult
from blobcache.connection import describe_client
from blobcache.management.base import (
    EXIT_PARTIAL,
    EXIT_USAGE,
    BlobcacheCommand,
    read_digest_file,
    summary,
    validated_digests,
)
from blobcache.models import (
    CLEAR,
    CLEAR_ALL,
    CLEAR_DIGESTS,
    CLEAR_EVERYWHERE,
    CLEAR_REPOSITORY_SCOPE,
    GLOBAL_SCOPE,
    MISS,
    REPOSITORY_SCOPE,
)
from blobcache.reference import validate_repository_name


class Command(BlobcacheCommand):
    help = (
        "Clear cache entries: digests globally or in one repository (registry 3.1+ semantics), "
        "digests everywhere, a whole repository scope, or every key of the registry's layout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("digests", nargs="*", metavar="DIGEST")
        parser.add_argument(
            "--repository",
            metavar="NAME",
            help="Clear in this repository: the digests given, or with --all its whole scope.",
        )
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument(
            "--all",
            action="store_true",
            help="Without --repository: every key of the registry's layout, and nothing else. "
            "With --repository: the membership set and every repository hash.",
        )
        scope.add_argument(
            "--everywhere",
            action="store_true",
            help="Clear the digests' global entries and their entries in every repository.",
        )
        parser.add_argument(
            "--sweep",
            action="store_true",
            help="With --repository --all: also find repository hashes that have no membership "
            "(left by older registries or by eviction) with one SCAN of the whole database. "
            "Without it the clear walks only the repository's own set, so its cost grows with "
            "the repository, not with the database.",
        )
        parser.add_argument(
            "--from-file",
            metavar="PATH",
            help="Read more digests from PATH (- for standard input), one a line; blank lines "
            "and lines starting with # are ignored.",
        )
        self.add_clear_arguments(parser)

    def run(self, *args: Any, **options: Any) -> None:
        digests = validated_digests(options["digests"])
        if options["from_file"] is not None:
            digests += read_digest_file(options["from_file"])
        repository = options["repository"]
        if repository is not None:
            validate_repository_name(repository)
        self._check_usage(options, digests)
        cache = self.cache
        common = {"dry_run": options["dry_run"], "batch_size": options["batch_size"]}
        where = describe_client(cache.client)
        unique = list(dict.fromkeys(digests))
        operation, audited = audit_fields(options, unique)
        if options["all"] and repository is not None:
            question = f"clear the whole scope of repository {repository!r} ({where})"
        elif options["all"]:
            question = f"delete every key of the registry's cache layout at {where}"
        elif options["everywhere"]:
            question = f"clear {len(unique)} digest(s) globally and in every repository ({where})"
        else:
            question = ""
        if question:
            self.confirm_recorded(options, question, operation, **audited)
        with audit.recording(operation, **audited) as entry:
            if options["all"] and repository is not None:
                with self.progress_bar(
                    lambda: bulk.repository_size(cache, repository), "members"
                ) as bar:
                    result = bulk.clear_repository_scope(
                        cache, repository, progress=bar, sweep=options["sweep"], **common
                    )
            elif options["all"]:
                with self.progress_bar(lambda: bulk.database_size(cache), "keys") as bar:
                    result = bulk.clear_all(cache, progress=bar, **common)
            else:
                with self.progress_bar(lambda: len(unique), "digests") as bar:
                    result = bulk.clear_digests(
                        cache,
                        unique,
                        repository=repository,
                        everywhere=options["everywhere"],
                        progress=bar,
                        on_unknown=self._unknown,
                        **common,
                    )
                entry.counts = {"requested": len(unique), "unknown": result.unknown}
                if result.unknown and not result.interrupted:
                    entry.outcome = MISS
            entry.set_result(result)
        self.report(options, result, requested=len(unique))

    def _check_usage(self, options: dict[str, Any], digests: list[str]) -> None:
        given = bool(options["digests"]) or options["from_file"] is not None
        if options["all"] and given:
            problem = "--all takes no digests"
        elif options["everywhere"] and options["repository"] is not None:
            problem = "--everywhere and --repository cannot be combined"
        elif not options["all"] and not given:
            problem = "give digests, --from-file, or --all"
        elif options["sweep"] and not (options["all"] and options["repository"] is not None):
            problem = "--sweep goes with --repository NAME --all"
        else:
            return
        raise CommandError(f"Error: {problem}", returncode=EXIT_USAGE)

    def _unknown(self, digest: str) -> None:
        self.stderr.write(f"{digest}: unknown blob")

    def report(self, options: dict[str, Any], result: ClearResult, requested: int = 0) -> None:
        if options["format"] == "json":
            self.print_json(result.as_dict())
        else:
            self.stdout.write(f"{summary(result)}.")
        self.stop_if_interrupted(result)
        if result.unknown:
            raise CommandError(
                f"{result.unknown} of {requested} digests were unknown", returncode=EXIT_PARTIAL
            )


def audit_fields(options: dict[str, Any], digests: list[str]) -> tuple[str, dict[str, Any]]:
    """The audit log's operation for the command's mode, and the row's fields known upfront."""
    repository = options["repository"]
    fields: dict[str, Any] = {"dry_run": options["dry_run"], "repository": repository}
    if options["all"]:
        if repository is None:
            return CLEAR_ALL, fields
        return CLEAR_REPOSITORY_SCOPE, {**fields, "scope": REPOSITORY_SCOPE}
    if len(digests) == 1:
        fields["digest"] = digests[0]
    if options["everywhere"]:
        return CLEAR_EVERYWHERE, fields
    fields["scope"] = GLOBAL_SCOPE if repository is None else REPOSITORY_SCOPE
    return (CLEAR if len(digests) == 1 else CLEAR_DIGESTS), fields
