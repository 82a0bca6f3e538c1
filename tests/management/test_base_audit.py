"""Audit rows of commands run as an operator runs them: a real signal, a real terminal."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest
import redis

from blobcache.actor import command_user
from tests.helpers.entries import D1
from tests.helpers.processes import LOAD_MEMBERSHIP, interrupted_in_repository, run_on_terminal

Rows = Callable[[], list[dict[str, Any]]]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_clear_is_recorded_with_its_partial_counts(
    redis_url: str,
    redis_client: redis.Redis,
    process_audit_rows: Rows,
    signum: int,
    status: int,
) -> None:
    returncode, stdout, stderr = interrupted_in_repository(
        redis_url,
        redis_client,
        ["blobcache_clear", "--repository", "load/repo0", "--all"],
        signum,
    )
    assert returncode == status, stderr
    summary = json.loads(stdout)
    (entry,) = process_audit_rows()
    done = 60_000 - redis_client.scard(LOAD_MEMBERSHIP)
    assert summary["cleared"] == done
    assert {name: entry[name] for name in ("cleared", "keys_deleted", "outcome", "dry_run")} == {
        "cleared": done,
        "keys_deleted": done,
        "outcome": "interrupted",
        "dry_run": 0,
    }
    assert (entry["operation"], entry["repository"], entry["interface"], entry["user"]) == (
        "clear_repository_scope",
        "load/repo0",
        "command",
        command_user(),
    )


def test_a_no_on_the_terminal_is_refused(
    redis_url: str, crowded: redis.Redis, process_audit_rows: Rows
) -> None:
    status, _, _ = run_on_terminal(
        redis_url, ["blobcache_clear", "--everywhere", D1], "no"
    )
    assert status == 1
    (entry,) = process_audit_rows()
    assert (entry["operation"], entry["digest"], entry["outcome"], entry["detail"]) == (
        "clear_everywhere",
        D1,
        "refused",
        "cancelled: nothing was cleared",
    )
    assert (entry["cleared"], json.loads(entry["counts"])) == (None, {})
