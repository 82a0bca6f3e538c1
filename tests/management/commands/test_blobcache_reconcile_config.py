"""``blobcache_reconcile --registry-config``: the registry's own config.yml, filesystem or s3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from blobcache.cache import DescriptorCache
from blobcache.storage.s3 import S3Storage
from blobcache.testing import S3Server
from tests.audit_state import audit_rows
from tests.helpers.commands import Outcome, run
from tests.helpers.processes import manage
from tests.helpers.s3_tree import S3Tree
from tests.helpers.storage_tree import (
    EXPECTED_S3_REQUESTS,
    EXPECTED_STORAGE_REQUESTS,
    StorageTree,
    expected_stale_report,
    in_order,
    populate_stale,
)
from tests.redis_state import dump

SECRET = "SeCrEt/key+that-must-never-show"
ACCESS = "AKIAEXAMPLEKEYID0001"


def write_config(path: Path, storage: dict[str, Any]) -> Path:
    """A registry configuration as an operator has it: storage among the other sections."""
    document = {
        "version": "0.1",
        "log": {"level": "info"},
        "storage": storage,
        "http": {"addr": ":5000", "secret": SECRET},
        "redis": {"addr": "localhost:6379", "password": SECRET},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def reconcile_json(config: Path, *extra: str) -> Outcome:
    return run(
        "blobcache_reconcile", "--registry-config", str(config), "--no-input",
        "--format", "json", *extra,
    )  # fmt: skip


class TestFilesystem:
    def test_the_storage_section_names_the_root(
        self, stale: redis.Redis, tree: StorageTree, tmp_path: Path
    ) -> None:
        config = write_config(
            tmp_path / "config.yml",
            {"filesystem": {"rootdirectory": str(tree.root)}, "delete": {"enabled": True}},
        )
        outcome = reconcile_json(config)
        assert (outcome.status, outcome.stderr) == (0, "")
        assert in_order(json.loads(outcome.stdout)) == expected_stale_report(
            EXPECTED_STORAGE_REQUESTS
        )

    def test_both_options_are_a_usage_error(
        self, stale: redis.Redis, tree: StorageTree, tmp_path: Path
    ) -> None:
        config = write_config(tmp_path / "config.yml", {"filesystem": {}})
        before = dump(stale)
        outcome = run(
            "blobcache_reconcile", "--storage-root", str(tree.root),
            "--registry-config", str(config), "--no-input",
        )  # fmt: skip
        assert outcome.status == 2
        assert "not allowed with argument" in outcome.stderr
        assert dump(stale) == before


@pytest.mark.django_db
class TestS3:
    def test_json_report_with_storage_requests(
        self, cache: DescriptorCache, redis_client: redis.Redis, bucket: S3Tree, tmp_path: Path
    ) -> None:
        populate_stale(cache, redis_client, bucket)
        config = write_config(tmp_path / "config.yml", bucket.section)
        dry = reconcile_json(config, "--dry-run")
        assert (dry.status, dry.stderr) == (0, "")
        real = reconcile_json(config)
        assert (real.status, real.stderr) == (0, "")
        assert in_order(json.loads(real.stdout)) == expected_stale_report(EXPECTED_S3_REQUESTS)
        assert in_order(json.loads(dry.stdout)) == {
            **expected_stale_report(EXPECTED_S3_REQUESTS),
            "dry_run": True,
        }

    def test_configured_storage_without_options(self, stale_bucket: S3Tree) -> None:
        outcome = run("blobcache_reconcile", "--no-input", "--dry-run")
        assert (outcome.status, outcome.stderr) == (0, "")
        assert outcome.stdout.startswith("Dry run: would clear 5 descriptor entries")

    def test_a_secret_is_never_printed(
        self,
        s3_server: S3Server,
        cache: DescriptorCache,
        redis_client: redis.Redis,
        redis_url: str,
        bucket: S3Tree,
        tmp_path: Path,
    ) -> None:
        """Every outcome, in a real process (so logging and tracebacks would show too), and
        the audit rows: the keys of the config file appear nowhere."""
        populate_stale(cache, redis_client, bucket)
        parameters = {**bucket.parameters(), "accesskey": ACCESS, "secretkey": SECRET}
        good = write_config(tmp_path / "good.yml", {"s3": parameters})
        missing = write_config(tmp_path / "missing.yml", {"s3": {**parameters, "bucket": "nope"}})
        broken = tmp_path / "broken.yml"
        broken.write_text(f"storage:\n  s3:\n    secretkey: {SECRET}\n    bucket: [unclosed\n")
        outputs: list[str] = []
        statuses: list[int] = []

        def both(*args: str) -> None:
            for fmt in ("text", "json"):
                done = manage(
                    redis_url, "blobcache_reconcile", "--no-input", "--format", fmt, "-v", "2",
                    *args,
                )  # fmt: skip
                outputs.extend((done.stdout, done.stderr))
                statuses.append(done.returncode)
            # In this process too: its audit rows are in the test database.
            in_process = run("blobcache_reconcile", "--no-input", *args)
            outputs.extend((in_process.stdout, in_process.stderr))

        both("--registry-config", str(good), "--dry-run")
        both("--registry-config", str(missing))
        both("--registry-config", str(broken))
        s3_server.require_authentication(True)
        try:
            both("--registry-config", str(good))
        finally:
            s3_server.require_authentication(False)
        assert statuses == [0, 0, 2, 2, 2, 2, 1, 1]
        assert "would clear 5 descriptor entries" in outputs[0]
        assert "the bucket 'nope' does not exist" in outputs[7]
        assert "is not valid YAML (line 5)" in outputs[13]
        assert "access denied (InvalidAccessKeyId)" in outputs[19]
        # Storage that cannot be opened stops the command before reconcile() (as a filesystem
        # root that is not a registry's does): the dry run is the one row.
        assert [row["outcome"] for row in audit_rows()] == ["ok"]
        for output in outputs:
            assert SECRET not in output
            assert ACCESS not in output
        for row in audit_rows():
            assert SECRET not in json.dumps(row, default=str)
            assert ACCESS not in json.dumps(row, default=str)


    def test_a_bucket_gone_during_the_run_stops_it_with_exit_1(
        self,
        s3_server: S3Server,
        cache: DescriptorCache,
        redis_client: redis.Redis,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        populate_stale(cache, redis_client, StorageTree(tmp_path / "unused"))
        # Opened while it existed: the check passes, the walk's first request finds no bucket.
        monkeypatch.setattr(S3Storage, "check", lambda storage: None)
        config = write_config(
            tmp_path / "config.yml", {"s3": s3_server.parameters("bucket-deleted-meanwhile")}
        )
        before = dump(redis_client)
        outcome = reconcile_json(config)
        assert (outcome.status, outcome.stdout) == (1, "")
        assert outcome.stderr == (
            "the bucket 'bucket-deleted-meanwhile' does not exist at "
            f"{s3_server.endpoint}; stopped, entries not yet checked were left alone\n"
        )
        assert dump(redis_client) == before


class TestRefused:
    @pytest.mark.parametrize("driver", ["gcs", "azure", "swift", "oss", "inmemory", "floppy"])
    def test_unsupported_driver_exits_2_naming_it(
        self, stale: redis.Redis, tmp_path: Path, driver: str
    ) -> None:
        config = write_config(
            tmp_path / "config.yml",
            {driver: {"bucket": "b", "accountkey": SECRET}, "cache": {"blobdescriptor": "redis"}},
        )
        before = dump(stale)
        outcome = reconcile_json(config)
        assert (outcome.status, outcome.stdout) == (2, "")
        assert outcome.stderr == (
            f"the storage driver {driver!r} is not supported: blobcache reads filesystem and s3\n"
        )
        assert dump(stale) == before

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (None, "cannot read the registry configuration {path}: No such file or directory"),
            ("version: 0.1\n", "the registry configuration {path} has no storage section"),
            ("storage: [1]\n", "the storage section of {path} must be a mapping"),
            ("storage:\n  delete: {enabled: true}\n", "the storage configuration names no driver"),
            (
                "storage:\n  s3: {bucket: b}\n  filesystem: {}\n",
                "the storage configuration names several drivers (filesystem, s3); the "
                "registry uses exactly one",
            ),
            ("storage:\n  s3: {region: x}\n", "storage.s3.bucket is required"),
        ],
        ids=["missing", "no-storage", "not-a-mapping", "no-driver", "two-drivers", "no-bucket"],
    )
    def test_unusable_config_exits_2(
        self, stale: redis.Redis, tmp_path: Path, content: str | None, message: str
    ) -> None:
        path = tmp_path / "config.yml"
        if content is not None:
            path.write_text(content)
        before = dump(stale)
        outcome = reconcile_json(path)
        assert (outcome.status, outcome.stdout) == (2, "")
        assert outcome.stderr == message.format(path=path) + "\n"
        assert dump(stale) == before
