"""``blobcache_reconcile --format json`` run in-process, and the reports the scenarios expect.

The filesystem and S3 end-to-end scenarios differ only in where storage is and how many requests
it answers; the cleared entries and the report's shape are the same.
"""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

from django.core.management import call_command

from tests.helpers.storage_tree import ALPINE, sorted_digests


def run_reconcile_json(*args: str) -> dict[str, Any]:
    """``blobcache_reconcile --no-input --format json <args>``, parsed, digests sorted."""
    stdout = StringIO()
    call_command("blobcache_reconcile", "--no-input", "--format", "json", *args, stdout=stdout)
    document = json.loads(stdout.getvalue())
    document["digests"] = sorted_digests(document["digests"])
    return document


def _report(
    *,
    membership_data_missing: int,
    global_data_missing: int,
    keys_deleted: int,
    storage_requests: int,
    digests: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "cleared": membership_data_missing + global_data_missing,
        "keys_deleted": keys_deleted,
        "dry_run": False,
        "repository": None,
        "reasons": {
            "membership_unlinked": 0,
            "membership_data_missing": membership_data_missing,
            "orphan_repository_hash": 0,
            "global_data_missing": global_data_missing,
        },
        "skipped": 0,
        "storage_requests": storage_requests,
        "digests": sorted_digests(digests),
    }


def report_after_garbage_collect(
    *, layer: str, config: str, manifest: str, storage_requests: int
) -> dict[str, Any]:
    """After ``garbage-collect --delete-untagged`` swept library/alpine's only image: its two
    memberships (two repository hashes and the emptied set) and the three global descriptors."""
    return _report(
        membership_data_missing=2,
        global_data_missing=3,
        keys_deleted=6,
        storage_requests=storage_requests,
        digests=[
            {"reason": "global_data_missing", "repository": None, "digest": config},
            {"reason": "global_data_missing", "repository": None, "digest": layer},
            {"reason": "global_data_missing", "repository": None, "digest": manifest},
            {"reason": "membership_data_missing", "repository": ALPINE, "digest": config},
            {"reason": "membership_data_missing", "repository": ALPINE, "digest": layer},
        ],
    )


def report_clearing_nothing(*, storage_requests: int) -> dict[str, Any]:
    """A healthy registry: the walk asks storage, and nothing is cleared."""
    return _report(
        membership_data_missing=0,
        global_data_missing=0,
        keys_deleted=0,
        storage_requests=storage_requests,
        digests=[],
    )
