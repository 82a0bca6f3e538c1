"""``POST /api/reconcile``: the reconciliation a portal starts after its garbage-collect job.

The storage comes from ``BLOBCACHE["STORAGE"]`` (or the ``STORAGE_ROOT`` shorthand), never from
the request: a client must not be able to point the server at another folder or bucket, and an
empty one would make every cached blob look deleted. Status codes follow one rule: 503 when
retrying later may help (Redis down, the configured storage unreadable, not mounted yet or
answering errors, ``STORAGE_INVALID`` or ``STORAGE_UNAVAILABLE``), 400 when it never will. A
server without usable storage settings (none, or a driver blobcache cannot read) answers 400
``STORAGE_UNCONFIGURED``: this deployment does not offer reconciliation until its settings change.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from blobcache.api.permissions import DELETE
from blobcache.api.serializers import unknown_field
from blobcache.api.views import EXAMPLE_NAME, BlobCacheViewSet, _classes, _errors
from blobcache.conf import blobcache_settings
from blobcache.exceptions import NameInvalid, RequestInvalid, StorageUnconfigured
from blobcache.reconcile import REASONS, reconcile
from blobcache.reference import validate_repository_name
from blobcache.storage.config import is_configured

_FIELDS = ("repository", "dry_run")


class ReconcilePermission(BasePermission):
    """Reconciling deletes entries, so it takes the delete permission (POST maps to none)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(DELETE))


class ReconcileRequestSerializer(serializers.Serializer):
    """For the schema; the body is checked by :func:`options_from` with exact JSON types."""

    repository = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="Reconcile only this repository (global entries are then left alone).",
    )
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Report what would be cleared; change nothing."
    )


class ClearedEntrySerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=REASONS)
    repository = serializers.CharField(allow_null=True, help_text="null for a global entry.")
    digest = serializers.CharField()


class ReasonCountsSerializer(serializers.Serializer):
    membership_unlinked = serializers.IntegerField(min_value=0)
    membership_data_missing = serializers.IntegerField(min_value=0)
    orphan_repository_hash = serializers.IntegerField(min_value=0)
    global_data_missing = serializers.IntegerField(min_value=0)


class ReconcileResultSerializer(serializers.Serializer):
    cleared = serializers.IntegerField(min_value=0)
    keys_deleted = serializers.IntegerField(min_value=0)
    dry_run = serializers.BooleanField()
    repository = serializers.CharField(allow_null=True)
    reasons = ReasonCountsSerializer()
    skipped = serializers.IntegerField(
        min_value=0, help_text="Entries that cannot be checked against storage, left alone."
    )
    storage_requests = serializers.IntegerField(
        min_value=0,
        help_text="Requests made to storage (system calls, or an object store's HTTP requests).",
    )
    digests = ClearedEntrySerializer(many=True)


def _invalid(message: str, field: str | None = None) -> RequestInvalid:
    return RequestInvalid(message, detail={"field": field} if field else None)


def options_from(data: Any) -> tuple[str | None, bool]:
    """``(repository, dry_run)`` from the body, exact JSON types only.

    DRF's fields would take ``1`` as the name ``"1"`` and ``"false"`` as false; a typo such as
    ``dryrun`` would silently start a real run, so unknown fields are refused too.
    """
    # An empty body parses as an empty dict (or QueryDict): the defaults.
    if not isinstance(data, dict):
        raise _invalid("the request body must be a JSON object")
    unknown = unknown_field(data, _FIELDS)
    if unknown is not None:
        raise _invalid(unknown[1], unknown[0])
    repository = data.get("repository")
    if repository is not None:
        if not isinstance(repository, str):
            raise _invalid("repository must be a string or null", "repository")
        try:
            validate_repository_name(repository)
        except NameInvalid as error:
            raise error.extended(field="repository") from None
    dry_run = data.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise _invalid("dry_run must be true or false", "dry_run")
    return repository, dry_run


class ReconcileViewSet(BlobCacheViewSet):
    """Clears the cache entries the registry's storage no longer backs."""

    serializer_class = ReconcileRequestSerializer
    http_method_names = ["post"]

    def get_permissions(self) -> list[BasePermission]:
        classes = _classes(blobcache_settings.PERMISSION_CLASSES, [ReconcilePermission])
        return [cls() for cls in classes]

    @extend_schema(
        summary="Reconcile the cache with the registry's storage",
        description=(
            "Removes each repository's membership and repository hash for digests the "
            "repository no longer links (or whose data is gone), and global entries whose blob "
            "data is gone; never an entry that storage still backs. Needs the permission "
            "blobcache.delete_descriptor and BLOBCACHE['STORAGE'] or BLOBCACHE['STORAGE_ROOT'] "
            "(else 400 STORAGE_UNCONFIGURED). The call runs to completion; for very large "
            "registries prefer the blobcache_reconcile command."
        ),
        operation_id="reconcile_create",
        request=ReconcileRequestSerializer,
        examples=[
            OpenApiExample(
                "one repository, dry run", value={"repository": EXAMPLE_NAME, "dry_run": True}
            ),
        ],
        responses={
            200: OpenApiResponse(ReconcileResultSerializer, description="What was cleared."),
            **_errors(413, 415),
        },
    )
    def create(self, request: Request, **kwargs: Any) -> Response:
        try:
            data = request.data
        except ParseError as error:
            raise _invalid(str(error.detail)) from None
        repository, dry_run = options_from(data)
        if not is_configured():
            raise StorageUnconfigured(
                "reconciliation needs BLOBCACHE['STORAGE'] (the registry's storage section) or "
                "BLOBCACHE['STORAGE_ROOT'] (its storage.filesystem.rootdirectory)"
            )
        # reconcile() records its own audit row, attributed to this user. Its storage errors
        # answer by their class: 400 for settings that name no usable storage, 503 for storage
        # that may come back (the configured storage is the server's business).
        with self.acting():
            result = reconcile(repository=repository, dry_run=dry_run, cache=self.cache)
        return Response(result.as_dict())
