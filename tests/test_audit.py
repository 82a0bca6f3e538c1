"""blobcache.audit: rows written for the current actor, outcomes, database failures, prune."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.core.checks import Error
from django.db import connection, transaction
from django.utils import timezone

from blobcache import actor, audit
from blobcache.checks import E005, check_audit_retention
from blobcache.exceptions import (
    BlobUnknown,
    CacheUnavailable,
    DescriptorCorrupt,
    DigestInvalidFormat,
    NameInvalid,
    SizeInvalid,
)
from blobcache.models import AuditEntry
from blobcache.storage import StorageInvalid, StorageUnavailable

D1 = "sha256:" + "1" * 64

pytestmark = pytest.mark.django_db


def columns(entry: AuditEntry) -> dict[str, Any]:
    """Every column but the id and the timestamp."""
    return {
        field.name: getattr(entry, field.name)
        for field in AuditEntry._meta.concrete_fields
        if field.name not in ("id", "timestamp")
    }


def only_row() -> AuditEntry:
    (entry,) = AuditEntry.objects.all()
    return entry


class TestRecord:
    def test_plain_python_is_the_default_actor(self) -> None:
        before = timezone.now()
        entry = audit.record("clear", scope="global", digest=D1, cleared=1)
        assert entry == only_row()
        assert columns(entry) == {
            "interface": "python",
            "user": "",
            "operation": "clear",
            "scope": "global",
            "repository": "",
            "digest": D1,
            "cleared": 1,
            "keys_deleted": None,
            "counts": {},
            "dry_run": False,
            "outcome": "ok",
            "detail": "",
        }
        assert before <= entry.timestamp <= timezone.now()

    def test_the_current_actor_is_recorded(self) -> None:
        with actor.acting_as(actor.COMMAND, "ops (manage.py)"):
            audit.record(
                "clear_repository_scope",
                scope="repository",
                repository="team/app",
                cleared=3,
                keys_deleted=4,
                dry_run=True,
            )
        entry = only_row()
        assert (entry.interface, entry.user, entry.repository) == (
            "command",
            "ops (manage.py)",
            "team/app",
        )
        assert (entry.cleared, entry.keys_deleted, entry.dry_run) == (3, 4, True)

    def test_oversized_text_is_cut_to_the_columns(self) -> None:
        entry = audit.record("clear", repository="a" * 300, digest="b" * 300)
        assert entry is not None
        entry.refresh_from_db()
        assert (entry.repository, entry.digest) == ("a" * 255, "b" * 200)

    def test_newest_first(self) -> None:
        first = audit.record("set")
        second = audit.record("clear")
        assert list(AuditEntry.objects.all()) == [second, first]


class TestDatabaseFailure:
    """The cache operation is done when the row is written: a failure is logged, not raised."""

    @pytest.fixture()
    def table_gone(self) -> None:
        # A real failure from the database (a table that is not there), rolled back with the
        # test's transaction.
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE blobcache_auditentry RENAME TO blobcache_auditentry_away")

    def test_returns_none_and_logs_the_row_at_error(
        self, table_gone: None, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.ERROR, logger="blobcache.audit"):
            with actor.acting_as(actor.API, "alice"):
                result = audit.record(
                    "clear", scope="global", digest=D1, cleared=1, counts={"events": 2}
                )
        assert result is None
        (message,) = caplog.records
        assert (message.name, message.levelno) == ("blobcache.audit", logging.ERROR)
        expected_row = {
            "interface": "api",
            "user": "alice",
            "operation": "clear",
            "scope": "global",
            "repository": "",
            "digest": D1,
            "cleared": 1,
            "keys_deleted": None,
            "counts": {"events": 2},
            "dry_run": False,
            "outcome": "ok",
            "detail": "",
        }
        assert message.getMessage() == (
            f"could not write the audit row {expected_row!r}: no such table: blobcache_auditentry"
        )
        assert message.exc_info is not None

    def test_the_surrounding_transaction_goes_on(self, table_gone: None) -> None:
        # As under ATOMIC_REQUESTS: without a savepoint of its own the failed insert would mark
        # the request's transaction for rollback and the next query would raise.
        with transaction.atomic():
            assert audit.record("clear") is None
            with connection.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM blobcache_auditentry_away")
                assert cursor.fetchone() == (0,)

    def test_recording_keeps_the_blocks_own_exception(self, table_gone: None) -> None:
        with pytest.raises(BlobUnknown):
            with audit.recording("clear"):
                raise BlobUnknown()


class TestRecording:
    def test_fields_set_inside_the_block_are_recorded(self) -> None:
        with audit.recording("clear_all", dry_run=True) as pending:
            pending.cleared = 7
            pending.keys_deleted = 9
            pending.counts = {"requested": 2}
        assert pending.entry == only_row()
        assert columns(only_row()) == {
            "interface": "python",
            "user": "",
            "operation": "clear_all",
            "scope": "",
            "repository": "",
            "digest": "",
            "cleared": 7,
            "keys_deleted": 9,
            "counts": {"requested": 2},
            "dry_run": True,
            "outcome": "ok",
            "detail": "",
        }

    @pytest.mark.parametrize(
        ("error", "outcome"),
        [
            (CacheUnavailable("cannot reach Redis at 127.0.0.1:1: refused"), "unavailable"),
            (DescriptorCorrupt("blobs::x has a non-numeric size"), "corrupt"),
            (BlobUnknown(), "miss"),
            (DigestInvalidFormat(), "invalid"),
            (NameInvalid(), "invalid"),
            (SizeInvalid(), "invalid"),
            (StorageInvalid("no docker/registry/v2 under /srv"), "invalid"),
            (StorageUnavailable("cannot read /srv: permission denied"), "unavailable"),
            (ValueError("batch size must be 1 or more"), "invalid"),
            (KeyboardInterrupt(), "interrupted"),
            (RuntimeError("boom"), "error"),
        ],
    )
    def test_an_exception_is_recorded_with_its_outcome_and_raised(
        self, error: BaseException, outcome: str
    ) -> None:
        with pytest.raises(type(error)) as raised:
            with audit.recording("clear", digest=D1):
                raise error
        assert raised.value is error
        entry = only_row()
        assert (entry.outcome, entry.detail) == (outcome, str(error) or type(error).__name__)

    def test_an_outcome_the_block_set_stands_over_the_exceptions(self) -> None:
        with pytest.raises(RuntimeError):
            with audit.recording("clear_all") as pending:
                pending.outcome = "refused"
                pending.detail = "cancelled: nothing was cleared"
                raise RuntimeError("cancelled")
        assert (only_row().outcome, only_row().detail) == (
            "refused",
            "cancelled: nothing was cleared",
        )

    def test_partial_counts_of_an_interrupted_result(self) -> None:
        class Result:
            cleared = 5
            keys_deleted = 6
            dry_run = False
            interrupted = True

        with audit.recording("clear_all") as pending:
            pending.set_result(Result())
        entry = only_row()
        assert (entry.cleared, entry.keys_deleted, entry.outcome) == (5, 6, "interrupted")


def aged(days: float, operation: str = "clear") -> AuditEntry:
    entry = audit.record(operation)
    assert entry is not None
    AuditEntry.objects.filter(pk=entry.pk).update(timestamp=timezone.now() - timedelta(days=days))
    return entry


class TestPrune:
    def test_default_retention_is_90_days(self) -> None:
        old, older = aged(91), aged(400)
        kept = [aged(89), aged(0)]
        assert audit.prune() == 2
        assert set(AuditEntry.objects.all()) == set(kept)
        assert not AuditEntry.objects.filter(pk__in=[old.pk, older.pk]).exists()

    def test_retention_setting(self, settings: Any) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "AUDIT_RETENTION_DAYS": 7}
        aged(8)
        kept = aged(6)
        assert audit.prune() == 1
        assert list(AuditEntry.objects.all()) == [kept]

    def test_none_keeps_rows_forever(self, settings: Any) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "AUDIT_RETENTION_DAYS": None}
        aged(10_000)
        assert audit.prune() == 0
        assert AuditEntry.objects.count() == 1

    def test_an_explicit_cutoff_wins(self, settings: Any) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "AUDIT_RETENTION_DAYS": None}
        aged(3)
        kept = aged(1)
        assert audit.prune(timezone.now() - timedelta(days=2)) == 1
        assert list(AuditEntry.objects.all()) == [kept]


class TestRetentionSetting:
    @pytest.mark.parametrize("value", [-1, 1.5, "90", True])
    def test_anything_but_whole_days_or_none_is_e005(self, settings: Any, value: Any) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "AUDIT_RETENTION_DAYS": value}
        (message,) = check_audit_retention()
        assert isinstance(message, Error)
        assert message.id == E005
        assert message.msg == (
            "BLOBCACHE['AUDIT_RETENTION_DAYS'] must be a number of days (0 or more) or None, "
            f"not {value!r}"
        )
        with pytest.raises(ValueError):
            audit.prune()

    @pytest.mark.parametrize("value", [0, 1, 90, None])
    def test_valid_values_pass(self, settings: Any, value: Any) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "AUDIT_RETENTION_DAYS": value}
        assert check_audit_retention() == []
