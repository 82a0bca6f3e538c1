"""``blobcache_clear`` through call_command: exact output, exit statuses and Redis state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from blobcache.cache import DescriptorCache
from tests.helpers.commands import run
from tests.helpers.entries import D1, D2, D3, D4, D5, NOT_LAYOUT, put
from tests.redis_state import dump


def test_global_digests(cache: DescriptorCache, crowded: redis.Redis) -> None:
    outcome = run("blobcache_clear", D1, D5)
    assert (outcome.status, outcome.stderr) == (0, "")
    assert outcome.stdout == "Cleared 2 descriptor entries, deleted 2 keys.\n"
    assert crowded.exists(f"blobs::{D1}", f"blobs::{D5}") == 0
    assert crowded.sismember("repository::foo/bar::blobs", D1)


def test_the_largest_batch_size_is_accepted(cache: DescriptorCache, crowded: redis.Redis) -> None:
    outcome = run("blobcache_clear", "--batch-size", "100000", D1, D5)
    assert (outcome.status, outcome.stderr) == (0, "")
    assert outcome.stdout == "Cleared 2 descriptor entries, deleted 2 keys.\n"


def test_unknown_digests_exit_1_after_clearing_the_others(crowded: redis.Redis) -> None:
    outcome = run("blobcache_clear", D4, D1, "--format", "json")
    assert outcome.status == 1
    assert json.loads(outcome.stdout) == {"cleared": 1, "keys_deleted": 1, "dry_run": False}
    assert outcome.stderr == f"{D4}: unknown blob\n1 of 2 digests were unknown\n"
    assert crowded.exists(f"blobs::{D1}") == 0


def test_repository_digests_with_3_1_semantics(crowded: redis.Redis) -> None:
    outcome = run("blobcache_clear", "--repository", "foo/baz", D1)
    assert outcome.stdout == "Cleared 2 descriptor entries, deleted 3 keys.\n"
    assert crowded.keys("repository::foo/baz*") == []
    assert crowded.exists(f"blobs::{D1}") == 0


def test_repository_scope_with_sweep(crowded: redis.Redis) -> None:
    outcome = run("blobcache_clear", "--repository", "foo/bar", "--all", "--sweep", "--no-input")
    assert (outcome.status, outcome.stderr) == (0, "")
    assert outcome.stdout == "Cleared 5 descriptor entries, deleted 5 keys.\n"
    assert set(crowded.keys("repository::foo/bar::*")) == {
        "repository::foo/bar::blobs::garbage",
        *(key for key in NOT_LAYOUT if key.startswith("repository::foo/bar::")),
    }
    assert crowded.exists(f"blobs::{D1}", f"blobs::{D2}", f"blobs::{D3}") == 3


def test_repository_scope_walks_only_the_set_without_sweep(crowded: redis.Redis) -> None:
    """Without --sweep the cost grows with the repository: the D5 hash without membership,
    found only by a whole-database SCAN, stays."""
    outcome = run("blobcache_clear", "--repository", "foo/bar", "--all", "--no-input")
    assert (outcome.status, outcome.stderr) == (0, "")
    assert outcome.stdout == "Cleared 4 descriptor entries, deleted 4 keys.\n"
    assert set(crowded.keys("repository::foo/bar::*")) == {
        f"repository::foo/bar::blobs::{D5}",
        "repository::foo/bar::blobs::garbage",
        *(key for key in NOT_LAYOUT if key.startswith("repository::foo/bar::")),
    }


@pytest.mark.parametrize("args", [["--sweep", "--all"], ["--sweep", "--repository", "foo/bar", D1]])
def test_sweep_only_goes_with_a_repository_scope(crowded: redis.Redis, args: list[str]) -> None:
    before = dump(crowded)
    outcome = run("blobcache_clear", *args, "--no-input")
    assert outcome.status == 2
    assert outcome.stderr == "Error: --sweep goes with --repository NAME --all\n"
    assert dump(crowded) == before


def test_everywhere_counts_the_global_entry_and_each_repository(crowded: redis.Redis) -> None:
    outcome = run("blobcache_clear", "--everywhere", D1, "--noinput", "--format", "json")
    assert outcome.status == 0
    assert json.loads(outcome.stdout) == {"cleared": 4, "keys_deleted": 6, "dry_run": False}


def test_all_keeps_other_keys(crowded: redis.Redis) -> None:
    outcome = run("blobcache_clear", "--all", "--no-input")
    assert outcome.stdout == "Cleared 11 descriptor entries, deleted 13 keys.\n"
    assert set(crowded.keys("*")) == set(NOT_LAYOUT) | {"repository::foo/bar::blobs::garbage"}


@pytest.mark.parametrize(
    "args",
    [
        ["--all"],
        ["--repository", "foo/bar", "--all"],
        ["--everywhere", D1],
        ["--all", "--format", "json", "--batch-size", "3"],
    ],
)
def test_dry_run_reports_the_real_numbers_and_changes_nothing(
    crowded: redis.Redis, args: list[str]
) -> None:
    before = dump(crowded)
    dry = run("blobcache_clear", *args, "--dry-run")
    assert dump(crowded) == before
    real = run("blobcache_clear", *args, "--no-input")
    assert dry.status == real.status == 0
    if "json" in args:
        assert json.loads(dry.stdout) == {**json.loads(real.stdout), "dry_run": True}
    else:
        numbers = real.stdout.removeprefix("Cleared ").rstrip(".\n").split(", deleted ")
        assert dry.stdout == f"Dry run: would clear {numbers[0]} and delete {numbers[1]}.\n"


def test_dry_run_of_digests_reports_unknown_ones(crowded: redis.Redis) -> None:
    outcome = run("blobcache_clear", "--dry-run", D1, D4)
    assert outcome.status == 1
    assert outcome.stdout == "Dry run: would clear 1 descriptor entry and delete 1 key.\n"
    assert outcome.stderr == f"{D4}: unknown blob\n1 of 2 digests were unknown\n"


@pytest.mark.parametrize(
    "args",
    [["--all"], ["--repository", "foo/bar", "--all"], ["--everywhere", D1]],
)
def test_wide_clears_refuse_without_a_terminal(crowded: redis.Redis, args: list[str]) -> None:
    before = dump(crowded)
    outcome = run("blobcache_clear", *args)
    assert outcome.status == 1
    assert outcome.stdout == ""
    assert outcome.stderr.startswith("refusing to ")
    assert outcome.stderr.endswith(
        "without confirmation: standard input is not a terminal (pass --no-input to proceed)\n"
    )
    assert dump(crowded) == before


def test_from_file_adds_to_the_positional_digests(tmp_path: Path, crowded: redis.Redis) -> None:
    listing = tmp_path / "digests.txt"
    listing.write_bytes(
        f"# garbage-collected\r\n\n  {D2}  \r\n{D1}\n\t{D3}\n#{D5}\n{D2}\n".encode()
    )
    outcome = run("blobcache_clear", D1, "--from-file", str(listing), "--format", "json")
    assert outcome.status == 0
    # D1 is given twice and D2 twice: each counts once. D5 is commented out.
    assert json.loads(outcome.stdout) == {"cleared": 3, "keys_deleted": 3, "dry_run": False}
    assert crowded.exists(f"blobs::{D5}") == 1


def test_from_file_errors_name_the_line(tmp_path: Path, crowded: redis.Redis) -> None:
    listing = tmp_path / "digests.txt"
    listing.write_text(f"{D1}\n\nsha256:abc\n")
    before = dump(crowded)
    outcome = run("blobcache_clear", "--from-file", str(listing))
    assert outcome.status == 2
    assert outcome.stderr.startswith(f"{listing}:3: 'sha256:abc': invalid checksum digest length")
    missing = run("blobcache_clear", "--from-file", str(tmp_path / "nope"))
    assert missing.status == 2
    assert missing.stderr == f"cannot read {tmp_path / 'nope'}: No such file or directory\n"
    assert dump(crowded) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([D1, "sha256:abc"], "'sha256:abc': invalid checksum digest length"),
        (["--repository", "foo//bar", D1], "invalid reference format"),
        (["--repository", "foo//bar", "--all", "--no-input"], "invalid reference format"),
        (["--all", D1, "--no-input"], "Error: --all takes no digests"),
        (["--everywhere", "--repository", "a/b", D1], "Error: --everywhere and --repository"),
        (["--all", "--everywhere"], "Error: argument --everywhere: not allowed with"),
        ([], "Error: give digests, --from-file, or --all"),
        (["--batch-size", "0", D1], "Error: argument --batch-size: 0 is not a positive"),
        (
            ["--batch-size", "100001", "--all", "--no-input"],
            "Error: argument --batch-size: 100001 is more than 100,000",
        ),
        (
            ["--batch-size", "1000000000000", D1],
            "Error: argument --batch-size: 1000000000000 is more than 100,000",
        ),
        (["--format", "yaml", D1], "Error: argument --format: invalid choice"),
    ],
)
def test_invalid_input_exits_2_and_changes_nothing(
    crowded: redis.Redis, args: list[str], message: str
) -> None:
    before = dump(crowded)
    outcome = run("blobcache_clear", *args)
    assert outcome.status == 2
    assert outcome.stdout == ""
    assert outcome.stderr.startswith(message)
    assert dump(crowded) == before


def test_a_corrupt_membership_key_exits_1(redis_client: redis.Redis) -> None:
    redis_client.set("repository::bad::blobs", "x")
    outcome = run("blobcache_clear", "--repository", "bad", D1)
    assert outcome.status == 1
    assert outcome.stderr.startswith("a cache key holds a value of the wrong type")


def test_interrupted_clear_prints_the_summary_and_how_far_it_got(
    cache: DescriptorCache, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(10):
        put(cache, "part", f"sha256:{n:064x}")
    from blobcache import engine

    original = engine.Run.advance

    def advance_then_interrupt(self: engine.Run, done: int) -> None:
        original(self, done)
        raise KeyboardInterrupt

    # The first batch is done when the interrupt comes: exactly 4 entries are gone.
    monkeypatch.setattr(engine.Run, "advance", advance_then_interrupt)
    outcome = run(
        "blobcache_clear",
        "--repository",
        "part",
        "--all",
        "--no-input",
        "--batch-size",
        "4",
        "--format",
        "json",
    )
    assert outcome.status == 130
    assert json.loads(outcome.stdout) == {
        "cleared": 4,
        "keys_deleted": 4,
        "dry_run": False,
        "interrupted": True,
    }
    assert outcome.stderr == (
        "interrupted by SIGINT: cleared 4 descriptor entries (4 keys) before stopping; "
        "run the same command again to finish\n"
    )
    assert redis_client.scard("repository::part::blobs") == 6
