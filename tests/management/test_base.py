"""The commands as an operator runs them: real processes, real signals, a real terminal."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest
import redis

from tests.helpers.entries import D1, D2, D3, D4, D5, LAYER, NOT_LAYOUT
from tests.helpers.processes import (
    LOAD_MEMBERSHIP,
    assert_whole_entries,
    interrupted,
    interrupted_in_repository,
    manage,
    populate,
    run_on_terminal,
)
from tests.redis_state import dump


class TestExitStatuses:
    def test_stat(self, redis_url: str, crowded: redis.Redis) -> None:
        found = manage(redis_url, "blobcache_stat", D1, "--format", "json")
        assert (found.returncode, found.stderr) == (0, "")
        assert json.loads(found.stdout) == [{"digest": D1, "size": 10, "mediaType": LAYER}]
        unknown = manage(redis_url, "blobcache_stat", D4, D1)
        assert unknown.returncode == 1
        assert unknown.stdout == f"{D1} size=10 mediaType={LAYER}\n"
        assert unknown.stderr == f"{D4}: unknown blob\n1 of 2 digests unknown or unreadable\n"
        invalid = manage(redis_url, "blobcache_stat", "sha256:xyz")
        assert invalid.returncode == 2
        assert invalid.stderr.startswith("'sha256:xyz': invalid checksum digest length")
        assert invalid.stderr.count("\n") == 1

    def test_usage_errors_exit_2(self, redis_url: str, crowded: redis.Redis) -> None:
        before = dump(crowded)
        for args in (
            ["blobcache_clear", "--bogus", D1],
            ["blobcache_clear", "--batch-size", "x", D1],
            ["blobcache_clear", "--all", "--everywhere"],
            ["blobcache_clear"],
            ["blobcache_stats", "extra"],
        ):
            result = manage(redis_url, *args)
            assert result.returncode == 2, args
            assert "Traceback" not in result.stderr
        assert dump(crowded) == before

    def test_refused_without_a_terminal_exits_1(self, redis_url: str, crowded: redis.Redis) -> None:
        before = dump(crowded)
        result = manage(redis_url, "blobcache_clear", "--all", stdin="yes\n")
        assert result.returncode == 1
        assert result.stderr.startswith("refusing to delete every key")
        assert dump(crowded) == before

    def test_digests_from_standard_input(self, redis_url: str, crowded: redis.Redis) -> None:
        listing = f"# from the garbage collector\r\n{D2}\r\n\r\n  {D3}\n{D2}\n"
        result = manage(
            redis_url, "blobcache_clear", D1, "--from-file", "-", "--format", "json", stdin=listing
        )
        assert (result.returncode, result.stderr) == (0, "")
        assert json.loads(result.stdout) == {"cleared": 3, "keys_deleted": 3, "dry_run": False}
        assert crowded.exists(f"blobs::{D1}", f"blobs::{D2}", f"blobs::{D3}", f"blobs::{D5}") == 1

    def test_everywhere_from_standard_input_needs_no_input(
        self, redis_url: str, crowded: redis.Redis
    ) -> None:
        result = manage(
            redis_url,
            "blobcache_clear",
            "--everywhere",
            "--from-file",
            "-",
            "--no-input",
            stdin=f"{D1}\n{D4}\n",
        )
        assert result.returncode == 0, result.stderr
        # D1: global, foo/bar, foo/bar2, foo/baz; D4: its membership in foo/bar.
        assert result.stdout == "Cleared 5 descriptor entries, deleted 6 keys.\n"

    def test_invalid_line_on_standard_input_changes_nothing(
        self, redis_url: str, crowded: redis.Redis
    ) -> None:
        before = dump(crowded)
        result = manage(redis_url, "blobcache_clear", "--from-file", "-", stdin=f"{D1}\nmd5:00\n")
        assert result.returncode == 2
        assert result.stderr == "<stdin>:2: 'md5:00': unsupported digest algorithm: 'md5'\n"
        assert dump(crowded) == before


class TestRedisDown:
    @pytest.mark.parametrize(
        "args",
        [
            ["blobcache_stat", D1],
            ["blobcache_stats"],
            ["blobcache_clear", D1],
            ["blobcache_clear", "--all", "--no-input"],
            ["blobcache_clear", "--repository", "foo/bar", "--all", "--dry-run"],
            ["blobcache_clear", "--everywhere", D1, "--no-input"],
        ],
    )
    def test_one_line_exit_3_no_password(self, closed_port: int, args: list[str]) -> None:
        started = time.monotonic()
        result = manage(f"redis://:hunter2@127.0.0.1:{closed_port}/0", *args)
        assert time.monotonic() - started < 10
        assert result.returncode == 3
        assert result.stdout == ""
        assert re.fullmatch(
            rf"cannot reach Redis at 127\.0\.0\.1:{closed_port}: [^\n]+\n", result.stderr
        ), result.stderr
        assert "hunter2" not in result.stderr


class TestSharedDatabase:
    def test_all_deletes_only_the_registry_layout(
        self, redis_url: str, crowded: redis.Redis
    ) -> None:
        from django.contrib.sessions.backends.cache import SessionStore
        from django.core.cache import cache as django_cache

        django_cache.set("portal-setting", {"answer": 42}, timeout=None)
        session = SessionStore()
        session["user"] = "operator"
        session.create()
        crowded.set("blobs::garbage", "someone else's")
        crowded.hset("otherapp::blobs::" + D1, "x", "1")
        # Django's values are pickled: compare raw serialized values, not decoded text.
        raw = redis.Redis(connection_pool=redis.ConnectionPool.from_url(redis_url))
        others = {key: raw.dump(key) for key in raw.scan_iter() if not _is_layout(key)}
        assert len(others) == len(NOT_LAYOUT) + 4

        result = manage(redis_url, "blobcache_clear", "--all", "--no-input")
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == "Cleared 11 descriptor entries, deleted 13 keys.\n"
        assert {key: raw.dump(key) for key in raw.scan_iter()} == others
        raw.close()
        assert django_cache.get("portal-setting") == {"answer": 42}
        assert SessionStore(session.session_key).load() == {"user": "operator"}


def _is_layout(key: bytes) -> bool:
    from blobcache.bulk import LayoutKeys

    return LayoutKeys().classify(key) is not None


class TestDryRun:
    @pytest.mark.parametrize(
        "args",
        [
            ["--all"],
            ["--repository", "foo/bar", "--all"],
            ["--everywhere", D1, D4, D5],
            ["--repository", "foo/bar", D1, D4, D5],
            [D1, D2, D4],
        ],
    )
    def test_redis_unchanged_and_numbers_of_the_real_run(
        self, redis_url: str, crowded: redis.Redis, args: list[str]
    ) -> None:
        before = dump(crowded)
        dry = manage(redis_url, "blobcache_clear", *args, "--dry-run", "--format", "json")
        assert dump(crowded) == before
        real = manage(redis_url, "blobcache_clear", *args, "--no-input", "--format", "json")
        assert dry.returncode == real.returncode
        assert json.loads(dry.stdout) == {**json.loads(real.stdout), "dry_run": True}
        assert dry.stderr == real.stderr
        assert dump(crowded) != before


class TestInterrupt:
    """A real signal to a real process in the middle of a large clear."""

    @pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
    def test_repository_clear(
        self, redis_url: str, redis_client: redis.Redis, signum: int, status: int
    ) -> None:
        membership = LOAD_MEMBERSHIP
        returncode, stdout, stderr = interrupted_in_repository(
            redis_url,
            redis_client,
            ["blobcache_clear", "--repository", "load/repo0", "--all"],
            signum,
        )
        assert returncode == status, stderr
        summary = json.loads(stdout)
        left = redis_client.scard(membership)
        assert 0 < left < 60_000
        assert summary == {
            "cleared": 60_000 - left,
            "keys_deleted": 60_000 - left,
            "dry_run": False,
            "interrupted": True,
        }
        name = signal.Signals(signum).name
        assert stderr == (
            f"interrupted by {name}: cleared {60_000 - left} descriptor entries "
            f"({60_000 - left} keys) before stopping; run the same command again to finish\n"
        )
        assert_whole_entries(redis_client, 1)
        again = manage(
            redis_url,
            "blobcache_clear",
            "--repository",
            "load/repo0",
            "--all",
            "--no-input",
            "--format",
            "json",
        )
        assert again.returncode == 0
        assert json.loads(again.stdout) == {
            "cleared": left,
            "keys_deleted": left + 1,
            "dry_run": False,
        }
        assert redis_client.dbsize() == 60_000  # the global entries stay

    def test_all_after_sigterm_then_rerun(self, redis_url: str, redis_client: redis.Redis) -> None:
        populate(redis_client, repositories=5, members=30_000)
        total_keys = redis_client.dbsize()
        dry = json.loads(
            manage(redis_url, "blobcache_clear", "--all", "--dry-run", "--format", "json").stdout
        )
        assert dry == {"cleared": 60_000, "keys_deleted": total_keys, "dry_run": True}
        returncode, stdout, stderr = interrupted(
            redis_url,
            ["blobcache_clear", "--all"],
            lambda: redis_client.dbsize() < total_keys,
            signal.SIGTERM,
        )
        assert returncode == 143, stderr
        first = json.loads(stdout)
        assert first["interrupted"] is True
        assert 0 < first["keys_deleted"] == total_keys - redis_client.dbsize()
        assert stderr.startswith(f"interrupted by SIGTERM: cleared {first['cleared']} descriptor")
        assert_whole_entries(redis_client, 5)
        again = json.loads(
            manage(redis_url, "blobcache_clear", "--all", "--no-input", "--format", "json").stdout
        )
        assert first["cleared"] + again["cleared"] == 60_000
        assert first["keys_deleted"] + again["keys_deleted"] == total_keys
        assert redis_client.dbsize() == 0

class TestTerminal:
    """On a terminal: the confirmation prompt (``yes`` only) and the tqdm progress bar."""

    def test_yes_clears_with_a_progress_bar(self, redis_url: str, crowded: redis.Redis) -> None:
        status, stdout, terminal = run_on_terminal(
            redis_url, ["blobcache_clear", "--all"], "yes"
        )
        assert status == 0, terminal
        assert stdout == "Cleared 11 descriptor entries, deleted 13 keys.\n"
        assert "This will delete every key of the registry's cache layout at 127.0.0.1:" in terminal
        assert re.search(r"\d+/\d+ \[", terminal), terminal  # tqdm's "n/total [elapsed" part

    @pytest.mark.parametrize("answer", ["y", "YES", "no", ""])
    def test_anything_but_yes_refuses(
        self, redis_url: str, crowded: redis.Redis, answer: str
    ) -> None:
        before = dump(crowded)
        status, stdout, terminal = run_on_terminal(
            redis_url, ["blobcache_clear", "--everywhere", D1], answer
        )
        assert status == 1
        assert stdout == ""
        assert "cancelled: nothing was cleared" in terminal
        assert dump(crowded) == before
