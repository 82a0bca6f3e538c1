"""``manage.py blobcache_stat DIGEST... [--repository NAME] [--format text|json]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from blobcache.descriptor import Descriptor
from blobcache.exceptions import BlobUnknown, DescriptorCorrupt
from blobcache.management.base import EXIT_PARTIAL, BlobcacheCommand, validated_digests


class Command(BlobcacheCommand):
    help = (
        "Print the cached descriptor of each digest, globally or in one repository. "
        "Exit status 1 when any digest is unknown or its entry is corrupt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("digests", nargs="+", metavar="DIGEST")
        parser.add_argument(
            "--repository", metavar="NAME", help="Read the repository-scoped entries."
        )
        self.add_format_argument(parser)

    def run(self, *args: Any, **options: Any) -> None:
        digests = validated_digests(options["digests"])
        cache = self.cache
        service = (
            cache
            if options["repository"] is None
            else cache.repository_scoped(options["repository"])
        )
        results: list[Descriptor | None] = []
        failed = 0
        for digest in digests:
            try:
                results.append(service.stat(digest))
            except BlobUnknown:
                self.stderr.write(f"{digest}: unknown blob")
                results.append(None)
                failed += 1
            except DescriptorCorrupt as error:
                self.stderr.write(f"{digest}: corrupt entry: {error}")
                results.append(None)
                failed += 1
        if options["format"] == "json":
            self.print_json([None if found is None else found.as_dict() for found in results])
        else:
            for digest, found in zip(digests, results, strict=True):
                if found is not None:
                    self.stdout.write(describe(digest, found))
        if failed:
            raise CommandError(
                f"{failed} of {len(digests)} digests unknown or unreadable", returncode=EXIT_PARTIAL
            )


def describe(digest: str, descriptor: Descriptor) -> str:
    line = f"{digest} size={descriptor.size} mediaType={descriptor.media_type or '-'}"
    if descriptor.digest != digest:
        # An alias entry: the registry cached the content under another algorithm's digest.
        line += f" digest={descriptor.digest}"
    return line
