"""``manage.py blobcache_stats [--format text|json]``: the cache's size from one SCAN pass,
saved in the database as the last count (:mod:`blobcache.statistics`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from blobcache import bulk, statistics
from blobcache.bulk import CacheStats
from blobcache.management.base import BlobcacheCommand


class Command(BlobcacheCommand):
    help = (
        "Count global descriptors, repositories, memberships and repository descriptors, and "
        "the memory their keys use, in one SCAN pass (other keys in the database are ignored)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_format_argument(parser)

    def run(self, *args: Any, **options: Any) -> None:
        cache = self.cache
        with self.progress_bar(lambda: bulk.database_size(cache), "keys") as bar:
            # Saved as the console's and the metrics' last count; a failed count is saved too.
            stats = statistics.as_cache_stats(statistics.run(cache, progress=bar))
        if options["format"] == "json":
            self.print_json(stats.as_dict())
        else:
            self.stdout.write(render(stats))


def render(stats: CacheStats) -> str:
    sampling = (
        "every element counted"
        if stats.memory_samples == 0
        else f"sets and hashes estimated from {stats.memory_samples} sampled elements each"
    )
    return "\n".join(
        [
            f"global descriptors:      {stats.descriptors}",
            f"repositories:            {stats.repositories}",
            f"memberships:             {stats.memberships}",
            f"repository descriptors:  {stats.repository_descriptors}",
            f"memory:                  {stats.memory_bytes} bytes "
            f"(MEMORY USAGE of the layout's keys; {sampling})",
        ]
    )
