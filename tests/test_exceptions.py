"""Each error carries its registry code, HTTP status and exit status; every interface uses them."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.response import Response

from blobcache import exceptions, storage
from blobcache.api.exceptions import exception_handler
from blobcache.exceptions import (
    BlobCacheError,
    BlobUnknown,
    CacheUnavailable,
    CursorInvalid,
    DescriptorCorrupt,
    DescriptorInvalid,
    DigestInvalid,
    DigestInvalidFormat,
    DigestInvalidLength,
    DigestUnsupported,
    NameInvalid,
    NotificationsUnconfigured,
    PaginationNumberInvalid,
    ReceiverBusy,
    RequestInvalid,
    RequestTooLarge,
    RouteNotFound,
    SizeInvalid,
    StorageInvalid,
    StorageUnavailable,
    StorageUnconfigured,
)
from blobcache.management.base import BlobcacheCommand

# The contract as the API and the commands answered before the statuses moved onto the classes.
CONTRACT: list[tuple[type[BlobCacheError], str, int, int]] = [
    (BlobCacheError, "UNKNOWN", 500, 1),
    (BlobUnknown, "BLOB_UNKNOWN", 404, 1),
    (DigestInvalid, "DIGEST_INVALID", 400, 2),
    (DigestInvalidFormat, "DIGEST_INVALID", 400, 2),
    (DigestInvalidLength, "DIGEST_INVALID", 400, 2),
    (DigestUnsupported, "DIGEST_INVALID", 400, 2),
    (NameInvalid, "NAME_INVALID", 400, 2),
    (DescriptorInvalid, "DESCRIPTOR_INVALID", 400, 2),
    (SizeInvalid, "SIZE_INVALID", 400, 2),
    (DescriptorCorrupt, "DESCRIPTOR_CORRUPT", 409, 1),
    (CacheUnavailable, "UNAVAILABLE", 503, 3),
    (StorageInvalid, "STORAGE_INVALID", 503, 2),
    (StorageUnavailable, "STORAGE_UNAVAILABLE", 503, 1),
    (StorageUnconfigured, "STORAGE_UNCONFIGURED", 400, 2),
    (RequestInvalid, "REQUEST_INVALID", 400, 2),
    (CursorInvalid, "CURSOR_INVALID", 400, 2),
    (PaginationNumberInvalid, "PAGINATION_NUMBER_INVALID", 400, 2),
    (RequestTooLarge, "REQUEST_TOO_LARGE", 413, 2),
    (RouteNotFound, "NOT_FOUND", 404, 1),
    (NotificationsUnconfigured, "NOTIFICATIONS_UNCONFIGURED", 503, 1),
]


def every_error_class() -> set[type[BlobCacheError]]:
    found: set[type[BlobCacheError]] = set()
    pending: list[type[BlobCacheError]] = [BlobCacheError]
    while pending:
        kind = pending.pop()
        found.add(kind)
        pending += kind.__subclasses__()
    return {kind for kind in found if kind.__module__ == exceptions.__name__}


class TestClasses:
    @pytest.mark.parametrize(("kind", "code", "status", "exit_status"), CONTRACT)
    def test_code_http_status_and_exit_status(
        self, kind: type[BlobCacheError], code: str, status: int, exit_status: int
    ) -> None:
        assert (kind.code, kind.status_code, kind.exit_status) == (code, status, exit_status)

    def test_receiver_busy_is_unavailable_with_its_limit(self) -> None:
        busy = ReceiverBusy(4)
        assert (busy.code, busy.status_code, busy.exit_status) == ("UNAVAILABLE", 503, 3)
        assert busy.message == (
            "the notifications receiver is busy: 4 envelopes are being cleared in this process "
            "(NOTIFICATIONS_MAX_JOBS); retry later"
        )

    def test_every_class_is_in_the_contract(self) -> None:
        assert every_error_class() == {kind for kind, *_ in CONTRACT} | {ReceiverBusy}

    def test_storage_errors_are_the_same_classes_from_storage(self) -> None:
        assert (
            storage.StorageInvalid,
            storage.StorageUnavailable,
            storage.StorageUnconfigured,
        ) == (StorageInvalid, StorageUnavailable, StorageUnconfigured)

    def test_unconfigured_storage_is_invalid_storage_that_retrying_cannot_fix(self) -> None:
        # Callers that refuse invalid storage refuse a missing configuration too; only the API
        # status differs (400: nothing passes until the settings change).
        assert issubclass(StorageUnconfigured, StorageInvalid)

    @pytest.mark.parametrize("kind", [StorageUnavailable, ReceiverBusy])
    def test_extended_keeps_the_class_and_adds_context(self, kind: type[BlobCacheError]) -> None:
        original = kind(3) if kind is ReceiverBusy else kind("cannot read /srv/a")
        extended = original.extended("; stopped")
        assert type(extended) is kind
        assert (str(extended), extended.message, extended.detail) == (
            f"{original.message}; stopped",
            f"{original.message}; stopped",
            None,
        )
        assert original.message == str(original)  # the original is left as it was

    def test_extended_sets_the_detail(self) -> None:
        error = NameInvalid("bad name", detail={"field": "name"})
        assert error.extended(field="repository").detail == {"field": "repository"}
        assert error.extended().detail == {"field": "name"}


class Teapot(BlobCacheError):
    """An error no interface knows by name: only its attributes decide the answers."""

    code = "TEAPOT"
    status_code = 418
    exit_status = 7


class TestApiHandler:
    @pytest.mark.parametrize(
        ("error", "status", "retry_after"),
        [
            (Teapot("short and stout", detail={"spout": 1}), 418, None),
            (StorageInvalid("no registry here"), 503, "1"),
            (BlobCacheError("no class of its own"), 500, None),
        ],
    )
    def test_status_and_body_come_from_the_error(
        self, settings: Any, error: BlobCacheError, status: int, retry_after: str | None
    ) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": None}
        response = exception_handler(error, {})
        assert isinstance(response, Response)
        assert response.status_code == status
        assert response.data == {
            "errors": [{"code": error.code, "message": error.message, "detail": error.detail}]
        }
        assert response.headers.get("Retry-After") == retry_after


class Raising(BlobcacheCommand):
    def __init__(self, error: BaseException) -> None:
        super().__init__(stdout=StringIO(), stderr=StringIO())
        self.error = error

    def run(self, *args: Any, **options: Any) -> None:
        raise self.error


class TestCommandMapping:
    @pytest.mark.parametrize(
        ("error", "exit_status"),
        [
            (Teapot("short and stout"), 7),
            *[(kind(), exit_status) for kind, _, _, exit_status in CONTRACT],
            (ReceiverBusy(1), 3),
        ],
        ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
    )
    def test_exit_status_and_message_come_from_the_error(
        self, db: Any, error: BlobCacheError, exit_status: int
    ) -> None:
        with pytest.raises(CommandError) as caught:
            call_command(Raising(error))
        assert (caught.value.returncode, str(caught.value)) == (exit_status, error.message)

    def test_an_outage_message_is_one_line(self, db: Any) -> None:
        with pytest.raises(CommandError) as caught:
            call_command(Raising(CacheUnavailable("cannot reach Redis:\nconnection refused")))
        assert (caught.value.returncode, str(caught.value)) == (
            3,
            "cannot reach Redis: connection refused",
        )
