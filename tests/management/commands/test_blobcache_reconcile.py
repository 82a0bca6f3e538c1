"""``blobcache_reconcile``: exact output, exit statuses, real signals and Redis state."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import redis

from blobcache.reconcile import (
    GLOBAL_DATA_MISSING,
    MEMBERSHIP_DATA_MISSING,
    MEMBERSHIP_UNLINKED,
    ORPHAN_REPOSITORY_HASH,
)
from tests.helpers.commands import Outcome, run
from tests.helpers.entries import D1, D4, D5
from tests.helpers.processes import (
    LOAD_MEMBERSHIP,
    assert_whole_entries,
    interrupted_in_repository,
    manage,
    populate,
    run_on_terminal,
)
from tests.helpers.storage_tree import (
    APP,
    EXPECTED_REASONS,
    EXPECTED_STORAGE_REQUESTS,
    StorageTree,
    expected_stale_report,
    in_order,
)
from tests.redis_state import dump


def reconcile_in(tree: StorageTree, *args: str) -> Outcome:
    """``blobcache_reconcile --storage-root <tree> <args>`` in this process."""
    return run("blobcache_reconcile", "--storage-root", str(tree.root), *args)


REASON_LINES = "".join(f"  {reason}: {count}\n" for reason, count in EXPECTED_REASONS.items())


class TestOutput:
    def test_text_counts_per_reason(self, stale: redis.Redis, tree: StorageTree) -> None:
        outcome = reconcile_in(tree, "--no-input")
        assert (outcome.status, outcome.stderr) == (0, "")
        assert outcome.stdout == (
            "Cleared 5 descriptor entries, deleted 5 keys, by reason:\n" + REASON_LINES
        )
        assert stale.smembers(f"repository::{APP}::blobs") != set()
        assert stale.exists(f"blobs::{D5}") == 0

    def test_json_lists_the_digests_cleared(self, stale: redis.Redis, tree: StorageTree) -> None:
        outcome = reconcile_in(tree, "--no-input", "--format", "json")
        assert (outcome.status, outcome.stderr) == (0, "")
        expected = expected_stale_report(EXPECTED_STORAGE_REQUESTS)
        assert in_order(json.loads(outcome.stdout)) == expected

    def test_nothing_stale_prints_zero_counts_and_an_empty_list(
        self, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        text = reconcile_in(tree, "--no-input")
        assert text.stdout == (
            "Cleared 0 descriptor entries, deleted 0 keys, by reason:\n"
            + "".join(
                f"  {reason}: 0\n"
                for reason in (
                    MEMBERSHIP_UNLINKED,
                    MEMBERSHIP_DATA_MISSING,
                    ORPHAN_REPOSITORY_HASH,
                    GLOBAL_DATA_MISSING,
                )
            )
        )
        document = reconcile_in(tree, "--format", "json", "--dry-run")
        assert json.loads(document.stdout)["digests"] == []

    def test_verbose_text_lists_each_entry(self, stale: redis.Redis, tree: StorageTree) -> None:
        outcome = reconcile_in(tree, "--no-input", "--repository", APP, "--verbosity", "2")
        lines = outcome.stdout.splitlines()
        assert sorted(lines[:2]) == [
            f"{MEMBERSHIP_UNLINKED} {APP} {D1}",
            f"{ORPHAN_REPOSITORY_HASH} {APP} {D4}",
        ]
        assert lines[2] == "Cleared 2 descriptor entries, deleted 2 keys, by reason:"

    def test_dry_run_reports_the_real_run_and_changes_nothing(
        self, stale: redis.Redis, tree: StorageTree
    ) -> None:
        before = dump(stale)
        args = ["blobcache_reconcile", "--storage-root", str(tree.root), "--format", "json"]
        # A dry run needs no confirmation, even without a terminal.
        dry = run(*args, "--dry-run")
        assert dump(stale) == before
        real = run(*args, "--no-input")
        assert (dry.status, real.status) == (0, 0)
        dry_document = in_order(json.loads(dry.stdout))
        assert dry_document == {**in_order(json.loads(real.stdout)), "dry_run": True}
        text = reconcile_in(tree, "--dry-run")
        assert text.stdout.startswith("Dry run: would clear 0 descriptor entries and delete 0 keys")

    def test_repository_scope(self, stale: redis.Redis, tree: StorageTree) -> None:
        before = dump(stale)
        outcome = reconcile_in(tree, "--repository", APP, "--no-input", "--format", "json")
        document = in_order(json.loads(outcome.stdout))
        assert document["repository"] == APP
        assert document["digests"] == [
            {"reason": MEMBERSHIP_UNLINKED, "repository": APP, "digest": D1},
            {"reason": ORPHAN_REPOSITORY_HASH, "repository": APP, "digest": D4},
        ]
        assert set(before) - set(dump(stale)) == {
            f"repository::{APP}::blobs::{D1}",
            f"repository::{APP}::blobs::{D4}",
        }

    def test_storage_root_from_settings(
        self, stale: redis.Redis, tree: StorageTree, settings: object
    ) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": str(tree.root)}  # type: ignore[attr-defined]
        outcome = run("blobcache_reconcile", "--no-input", "--dry-run", "--format", "json")
        assert json.loads(outcome.stdout)["cleared"] == 5


class TestBadInput:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (
                ["--storage-root", "{tmp}/missing"],
                "the storage root {tmp}/missing does not exist\n",
            ),
            (
                ["--storage-root", "{tmp}"],
                "{tmp} has no docker/registry/v2 folder: give the registry's "
                "storage.filesystem.rootdirectory (a registry creates that folder on its "
                "first push)\n",
            ),
            (
                [],
                "Error: give --storage-root PATH or --registry-config PATH (or set "
                'BLOBCACHE["STORAGE"] or BLOBCACHE["STORAGE_ROOT"])\n',
            ),
            (
                ["--storage-root", "{root}", "--repository", "Team/App"],
                "invalid reference format: 'Team/App' is not a repository name\n",
            ),
            (["--storage-root", "{root}", "--batch-size", "0"], None),
            (["--storage-root", "{root}", "--format", "xml"], None),
        ],
        ids=["missing-root", "not-a-registry", "no-root", "invalid-name", "batch", "format"],
    )
    def test_exit_2_and_nothing_changed(
        self,
        stale: redis.Redis,
        tree: StorageTree,
        tmp_path: Path,
        args: list[str],
        message: str | None,
    ) -> None:
        empty = tmp_path / "empty"
        empty.mkdir()
        values = {"tmp": str(empty), "root": str(tree.root)}
        before = dump(stale)
        outcome = run("blobcache_reconcile", "--no-input", *(a.format(**values) for a in args))
        assert outcome.status == 2
        if message is not None:
            assert outcome.stderr == message.format(**values)
        assert outcome.stdout == ""
        assert dump(stale) == before

    def test_refused_without_a_terminal_exits_1(
        self, stale: redis.Redis, tree: StorageTree
    ) -> None:
        before = dump(stale)
        outcome = reconcile_in(tree)
        assert outcome.status == 1
        assert outcome.stderr.startswith("refusing to clear the cache entries at ")
        assert f"that {tree.root} no longer backs without confirmation" in outcome.stderr
        assert dump(stale) == before

    def test_unreadable_storage_exits_1(self, stale: redis.Redis, tree: StorageTree) -> None:
        # Every repository walked holds a linked member, whose data check fails: nothing is
        # cleared before the error, whatever order SCAN returns the keys in.
        loop = tree.v2 / "blobs" / "sha256"
        shutil.rmtree(loop)
        os.symlink(loop, loop)
        before = dump(stale)
        outcome = reconcile_in(tree, "--no-input")
        assert outcome.status == 1
        assert re.fullmatch(
            r"cannot read .*/blobs/sha256/[^\n]*: Too many levels of symbolic links; stopped, "
            r"entries not yet checked were left alone\n",
            outcome.stderr,
        ), outcome.stderr
        assert dump(stale) == before


class TestProcesses:
    def test_redis_down_one_line_exit_3(self, closed_port: int, tree: StorageTree) -> None:
        started = time.monotonic()
        result = manage(
            f"redis://:hunter2@127.0.0.1:{closed_port}/0",
            "blobcache_reconcile",
            "--storage-root",
            str(tree.root),
            "--no-input",
        )
        assert time.monotonic() - started < 10
        assert (result.returncode, result.stdout) == (3, "")
        assert re.fullmatch(
            rf"cannot reach Redis at 127\.0\.0\.1:{closed_port}: [^\n]+\n", result.stderr
        ), result.stderr
        assert "hunter2" not in result.stderr

    def test_usage_error_in_a_shell_exits_2(self, redis_url: str, tree: StorageTree) -> None:
        result = manage(redis_url, "blobcache_reconcile", "--storage-root")
        assert result.returncode == 2
        assert "Traceback" not in result.stderr

    @pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
    def test_interrupt_leaves_whole_entries_and_a_rerun_finishes(
        self,
        redis_url: str,
        redis_client: redis.Redis,
        tree: StorageTree,
        signum: int,
        status: int,
    ) -> None:
        # 60,000 members nothing in storage backs: every one is stale.
        membership = LOAD_MEMBERSHIP
        returncode, stdout, stderr = interrupted_in_repository(
            redis_url,
            redis_client,
            ["blobcache_reconcile", "--storage-root", str(tree.root), "--repository", "load/repo0"],
            signum,
        )
        assert returncode == status, stderr
        left = redis_client.scard(membership)
        assert 0 < left < 60_000
        document = json.loads(stdout)
        assert document["interrupted"] is True
        assert document["cleared"] == document["keys_deleted"] == 60_000 - left
        assert document["reasons"][MEMBERSHIP_UNLINKED] == 60_000 - left
        assert len(document["digests"]) == 60_000 - left
        assert {entry["digest"] for entry in document["digests"]}.isdisjoint(
            redis_client.smembers(membership)
        )
        assert stderr == (
            f"interrupted by {signal.Signals(signum).name}: cleared {60_000 - left} descriptor "
            f"entries ({60_000 - left} keys) before stopping; run the same command again to "
            "finish\n"
        )
        assert_whole_entries(redis_client, 1)

        again = manage(
            redis_url,
            "blobcache_reconcile",
            "--storage-root",
            str(tree.root),
            "--repository",
            "load/repo0",
            "--no-input",
            "--format",
            "json",
        )
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["cleared"] == left
        assert redis_client.exists(membership) == 0
        # The global entries are not this repository's to clear.
        assert redis_client.dbsize() == 60_000


class TestTerminal:
    def test_yes_reconciles_with_a_progress_bar(
        self, redis_url: str, redis_client: redis.Redis, tree: StorageTree
    ) -> None:
        populate(redis_client, repositories=1, members=3000)
        status, stdout, terminal = run_on_terminal(
            redis_url,
            [
                "blobcache_reconcile",
                "--storage-root",
                str(tree.root),
                "--repository",
                "load/repo0",
                "--batch-size",
                "100",
            ],
            "yes",
        )
        assert status == 0, terminal
        assert stdout.startswith("Cleared 3000 descriptor entries, deleted 3001 keys, by reason:")
        assert (
            "This will clear the cache entries of repository 'load/repo0' at 127.0.0.1:" in terminal
        )
        assert re.search(r"\d+/3000 \[", terminal), terminal  # tqdm's "n/total [elapsed" part
        assert redis_client.exists("repository::load/repo0::blobs") == 0

    def test_anything_but_yes_refuses(
        self, redis_url: str, stale: redis.Redis, tree: StorageTree
    ) -> None:
        before = dump(stale)
        status, stdout, terminal = run_on_terminal(
            redis_url, ["blobcache_reconcile", "--storage-root", str(tree.root)], "no"
        )
        assert (status, stdout) == (1, "")
        assert "cancelled: nothing was cleared" in terminal
        assert dump(stale) == before
