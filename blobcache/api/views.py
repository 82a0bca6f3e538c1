"""The API's viewsets: thin layers over the cache manager, the listings and the bulk clear.

Every view answers errors in the registry's envelope through its own exception handler, and
takes its authentication, permission and throttle classes from ``BLOBCACHE`` at request time,
so a host project changes them without touching its global ``REST_FRAMEWORK`` behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from django.utils.module_loading import import_string
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.authentication import BaseAuthentication
from rest_framework.pagination import BasePagination
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.viewsets import GenericViewSet

from blobcache import actor, audit, bulk, listing
from blobcache.api import exceptions as api_exceptions
from blobcache.api.content import DescriptorJSONParser, JSONOnlyNegotiation
from blobcache.api.pagination import ScanCursorPagination
from blobcache.api.permissions import DescriptorPermissions
from blobcache.api.serializers import (
    DIGEST_PATTERN,
    ClearedSerializer,
    DescriptorSerializer,
    DescriptorWriteSerializer,
    ErrorEnvelopeSerializer,
    MemberSerializer,
    RepositoryCountSerializer,
    first_error,
    unknown_field,
)
from blobcache.api.throttling import BlobCacheScopedRateThrottle
from blobcache.cache import DescriptorCache, RepositoryScopedCache, get_descriptor_cache
from blobcache.conf import blobcache_settings
from blobcache.descriptor import Descriptor
from blobcache.digest import validate_digest
from blobcache.exceptions import DescriptorInvalid
from blobcache.models import (
    CLEAR,
    CLEAR_REPOSITORY_SCOPE,
    GLOBAL_SCOPE,
    INVALID,
    REPOSITORY_SCOPE,
    SET,
    UNAVAILABLE,
)

DEFAULT_PERMISSION_CLASSES: list[Any] = [DescriptorPermissions]
#: Added to the host's default throttles; it does nothing until a "blobcache" rate is set.
SCOPED_THROTTLE_CLASSES: list[Any] = [BlobCacheScopedRateThrottle]

#: The examples of the schema (the registry's empty-layer digest, an official image's name).
EXAMPLE_DIGEST = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
EXAMPLE_NAME = "library/alpine"

DIGEST_PARAMETER = OpenApiParameter(
    "digest",
    str,
    OpenApiParameter.PATH,
    pattern=DIGEST_PATTERN,
    description="A digest such as sha256:<64 lower-case hex characters>.",
    examples=[OpenApiExample("digest", value=EXAMPLE_DIGEST)],
)
NAME_PARAMETER = OpenApiParameter(
    "name",
    str,
    OpenApiParameter.PATH,
    description="A repository name as the registry routes it; it may contain slashes.",
    examples=[OpenApiExample("name", value=EXAMPLE_NAME)],
)


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The error responses an operation documents (the checks every request goes through)."""
    common = (
        status.HTTP_400_BAD_REQUEST,
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_403_FORBIDDEN,
        status.HTTP_429_TOO_MANY_REQUESTS,
        status.HTTP_503_SERVICE_UNAVAILABLE,
    )
    return {
        code: OpenApiResponse(ErrorEnvelopeSerializer, description="The registry's envelope.")
        for code in sorted({*common, *codes})
    }


def _classes(configured: Any, default: list[Any]) -> list[Any]:
    if configured is None:
        return list(default)
    return [import_string(item) if isinstance(item, str) else item for item in configured]


class BlobCacheViewSet(api_exceptions.RegistryEnvelopeMixin, GenericViewSet):
    """What every blobcache view shares: JSON only, envelope errors, host-replaceable policies."""

    renderer_classes = [JSONRenderer]
    parser_classes = [DescriptorJSONParser]
    content_negotiation_class = JSONOnlyNegotiation
    pagination_class: type[BasePagination] | None = None
    throttle_scope = "blobcache"
    # No OPTIONS: a 405 with Allow tells a client the same thing without a metadata format.
    http_method_names = ["get", "put", "delete", "head"]

    def get_authenticators(self) -> list[BaseAuthentication]:
        classes = _classes(
            blobcache_settings.AUTHENTICATION_CLASSES, api_settings.DEFAULT_AUTHENTICATION_CLASSES
        )
        return [cls() for cls in classes]

    def get_permissions(self) -> list[BasePermission]:
        classes = _classes(blobcache_settings.PERMISSION_CLASSES, DEFAULT_PERMISSION_CLASSES)
        return [cls() for cls in classes]

    def get_throttles(self) -> list[BaseThrottle]:
        classes = _classes(
            blobcache_settings.THROTTLE_CLASSES,
            [*api_settings.DEFAULT_THROTTLE_CLASSES, *SCOPED_THROTTLE_CLASSES],
        )
        return [cls() for cls in classes]

    def get_authenticate_header(self, request: Request) -> str:
        # A 401 must carry a challenge. With only session authentication DRF would answer 403
        # instead, and an anonymous caller is not denied, it is unknown.
        for authenticator in self.get_authenticators():
            header = authenticator.authenticate_header(request)
            if header:
                return str(header)
        return 'Session realm="blobcache"'

    @property
    def cache(self) -> DescriptorCache:
        return get_descriptor_cache()

    def acting(self) -> AbstractContextManager[actor.Actor]:
        """The work inside is the authenticated user's, through the API."""
        return actor.acting_as(actor.API, self.request.user.get_username())

    @contextmanager
    def audited(self, operation: str, **fields: Any) -> Iterator[audit.PendingEntry]:
        """One audit row for a write or clear; a failure is recorded with its outcome too.

        DRF's own errors raised inside (a body that does not parse) are bad input; the domain
        errors get their outcome from :func:`blobcache.audit.outcome_for`.
        """
        with self.acting(), audit.recording(operation, **fields) as entry:
            try:
                yield entry
            except drf_exceptions.APIException as error:
                entry.outcome = INVALID if error.status_code < 500 else UNAVAILABLE
                raise


class DescriptorViewSet(BlobCacheViewSet):
    """GET/HEAD, PUT and DELETE of one descriptor; subclasses choose the service."""

    serializer_class = DescriptorSerializer

    def get_service(self) -> DescriptorCache | RepositoryScopedCache:
        raise NotImplementedError

    def audit_scope(self) -> dict[str, Any]:
        """The audit row's scope fields for this view's entries."""
        raise NotImplementedError

    def retrieve(self, request: Request, digest: str, **kwargs: Any) -> Response:
        descriptor = self.get_service().stat(digest)
        return Response(DescriptorSerializer(descriptor).data)

    def update(self, request: Request, digest: str, **kwargs: Any) -> Response:
        with self.audited(SET, digest=digest, **self.audit_scope()) as entry:
            stored, created = self.write_descriptor(request, digest)
            entry.detail = audit.set_detail(stored, created)
        return Response(
            DescriptorSerializer(stored).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    def write_descriptor(self, request: Request, digest: str) -> tuple[Descriptor, bool]:
        service = self.get_service()
        validate_digest(digest)
        data = request.data
        if request.stream is None:
            raise DescriptorInvalid("the request body is empty: send a descriptor as JSON")
        if not isinstance(data, dict):
            raise DescriptorInvalid("the request body must be a JSON object")
        body = DescriptorWriteSerializer(data=data, context={"digest": digest})
        unknown = unknown_field(data, list(body.fields))
        if unknown is not None:
            raise DescriptorInvalid(unknown[1], detail={"field": unknown[0]})
        if not body.is_valid():
            raise first_error(body)
        return service.put(digest, body.to_descriptor())

    def destroy(self, request: Request, digest: str, **kwargs: Any) -> Response:
        with self.audited(CLEAR, digest=digest, **self.audit_scope()) as entry:
            self.get_service().clear(digest)
            entry.cleared = 1
        return Response(status=status.HTTP_204_NO_CONTENT)


_RETRIEVE_RESPONSES: dict[int, Any] = {200: DescriptorSerializer, **_errors(404, 409)}
_UPDATE_RESPONSES: dict[int, Any] = {
    200: OpenApiResponse(DescriptorSerializer, description="An entry existed."),
    201: OpenApiResponse(DescriptorSerializer, description="No entry existed."),
    **_errors(409, 413, 415),
}
_DESTROY_RESPONSES: dict[int, Any] = {
    204: OpenApiResponse(description="Cleared."),
    **_errors(404, 409),
}


@extend_schema_view(
    retrieve=extend_schema(
        summary="Read a global descriptor",
        parameters=[DIGEST_PARAMETER],
        operation_id="blobs_retrieve",
        responses=_RETRIEVE_RESPONSES,
    ),
    update=extend_schema(
        summary="Set a global descriptor",
        description="Size and digest are overwritten; the media type is set only if absent.",
        parameters=[DIGEST_PARAMETER],
        operation_id="blobs_update",
        request=DescriptorWriteSerializer,
        responses=_UPDATE_RESPONSES,
    ),
    destroy=extend_schema(
        summary="Clear a global descriptor",
        parameters=[DIGEST_PARAMETER],
        operation_id="blobs_destroy",
        responses=_DESTROY_RESPONSES,
    ),
)
class GlobalDescriptorViewSet(DescriptorViewSet):
    """The registry-wide descriptor of a digest (``blobs::<digest>``)."""

    def get_service(self) -> DescriptorCache:
        return self.cache

    def audit_scope(self) -> dict[str, Any]:
        return {"scope": GLOBAL_SCOPE}


@extend_schema_view(
    retrieve=extend_schema(
        summary="Read a repository-scoped descriptor",
        parameters=[NAME_PARAMETER, DIGEST_PARAMETER],
        operation_id="repository_blobs_retrieve",
        responses=_RETRIEVE_RESPONSES,
    ),
    update=extend_schema(
        summary="Set a repository-scoped descriptor",
        description=(
            "Links the digest into the repository; a body digest of another algorithm also "
            "writes the canonical digest's entries."
        ),
        parameters=[NAME_PARAMETER, DIGEST_PARAMETER],
        operation_id="repository_blobs_update",
        request=DescriptorWriteSerializer,
        responses=_UPDATE_RESPONSES,
    ),
    destroy=extend_schema(
        summary="Clear a repository-scoped descriptor",
        description="Removes the membership, the repository hash and the global fields (3.1+).",
        parameters=[NAME_PARAMETER, DIGEST_PARAMETER],
        operation_id="repository_blobs_destroy",
        responses=_DESTROY_RESPONSES,
    ),
)
class RepositoryDescriptorViewSet(DescriptorViewSet):
    """A descriptor as one repository sees it (membership, global hash, repository hash)."""

    def get_service(self) -> RepositoryScopedCache:
        return self.cache.repository_scoped(self.kwargs["name"])

    def audit_scope(self) -> dict[str, Any]:
        return {"scope": REPOSITORY_SCOPE, "repository": self.kwargs["name"]}


class RepositoryMemberViewSet(BlobCacheViewSet):
    """A repository's members with their descriptors, and the clear of its whole scope."""

    serializer_class = MemberSerializer
    pagination_class = ScanCursorPagination

    @extend_schema(
        summary="List a repository's members",
        description="Walks the membership set with SSCAN; a miss or corrupt entry shows null.",
        parameters=[NAME_PARAMETER],
        operation_id="repository_blobs_list",
        responses={200: MemberSerializer(many=True), **_errors(409)},
    )
    def list(self, request: Request, name: str, **kwargs: Any) -> Response:
        scoped = self.cache.repository_scoped(name)
        members = self.paginate_queryset(
            lambda position, size: listing.list_members(scoped, position, size)
        )
        return self.get_paginated_response(MemberSerializer(members, many=True).data)

    @extend_schema(
        summary="Clear a repository scope",
        description=(
            "Removes the membership set and every repository hash of the repository; global "
            "entries stay. cleared counts the digests whose membership or hash was removed, "
            "keys_deleted the Redis keys deleted (a key of the wrong type at the membership "
            "set's name included)."
        ),
        parameters=[NAME_PARAMETER],
        operation_id="repository_blobs_clear",
        responses={200: ClearedSerializer, **_errors(409)},
    )
    def clear(self, request: Request, name: str, **kwargs: Any) -> Response:
        with self.audited(
            CLEAR_REPOSITORY_SCOPE, scope=REPOSITORY_SCOPE, repository=name
        ) as entry:
            scoped = self.cache.repository_scoped(name)
            result = bulk.clear_repository_scope(self.cache, scoped.repository)
            entry.set_result(result)
        counts = {"cleared": result.cleared, "keys_deleted": result.keys_deleted}
        return Response(ClearedSerializer(counts).data)


class EnvelopeErrorsMixin(api_exceptions.RegistryEnvelopeMixin):
    """For the public schema and docs views: their errors (405...) use the envelope too."""

    request: Request

    def handle_exception(self, exc: Exception) -> Response:
        response: Response = super().handle_exception(exc)  # type: ignore[misc]
        # These views render YAML or HTML; an error is rendered as JSON like everywhere else.
        renderer = JSONRenderer()
        self.request.accepted_renderer = renderer
        self.request.accepted_media_type = renderer.media_type
        return response


class SchemaView(EnvelopeErrorsMixin, SpectacularAPIView):
    """The OpenAPI schema, public: it describes the API and holds no data.

    ``?format=json`` answers ``application/json``, which a browser shows inline (it downloads
    the OpenAPI media types). Content negotiation by ``Accept`` is drf-spectacular's, unchanged:
    YAML by default, ``application/vnd.oai.openapi+json`` when asked for.
    """

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    # DRF takes the first renderer of the format that the Accept header allows.
    renderer_classes = [
        OpenApiYamlRenderer, OpenApiYamlRenderer2, OpenApiJsonRenderer2, OpenApiJsonRenderer
    ]


class DocsView(EnvelopeErrorsMixin, SpectacularSwaggerView):
    """Swagger UI from drf-spectacular-sidecar's static files: no internet access needed."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    url_name = "blobcache_api:schema"


class RepositoryViewSet(BlobCacheViewSet):
    """Repository names (from their membership sets) with member counts."""

    serializer_class = RepositoryCountSerializer
    pagination_class = ScanCursorPagination

    @extend_schema(
        summary="List repositories",
        description=(
            "Walks the keyspace with SCAN for membership sets, a bounded part per page, so a "
            "page may be short or empty while next is not null. Names the registry could not "
            "route (not UTF-8, invalid) are left out."
        ),
        operation_id="repositories_list",
        responses={200: RepositoryCountSerializer(many=True), **_errors()},
    )
    def list(self, request: Request, **kwargs: Any) -> Response:
        cache = self.cache
        repositories = self.paginate_queryset(
            lambda position, size: listing.list_repositories(cache, position, size)
        )
        return self.get_paginated_response(RepositoryCountSerializer(repositories, many=True).data)
