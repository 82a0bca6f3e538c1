"""Plain serializers: the descriptor's JSON shape, and the checks of a PUT body.

Validation reuses the pure validators of blobcache (digest, size, media type) so the API
rejects exactly what the cache manager rejects, and each field error carries the registry code
the envelope reports (``DIGEST_INVALID``, ``SIZE_INVALID``, ``DESCRIPTOR_INVALID``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from blobcache import descriptor as descriptor_rules
from blobcache import digest as digest_rules
from blobcache.descriptor import SIZE_MAX, Descriptor
from blobcache.digest import algorithm_of, validate_digest
from blobcache.exceptions import (
    BlobCacheError,
    DescriptorInvalid,
    DigestInvalid,
    SizeInvalid,
)

#: The digests go-digest accepts, for the schema (the validator gives the precise error).
DIGEST_PATTERN = "^(?:{})$".format(
    "|".join(
        f"{algorithm}:[a-f0-9]{{{length}}}"
        for algorithm, length in digest_rules.ALGORITHM_HEX_LENGTHS.items()
    )
)
# The validator's own grammar, so the schema can never drift from what is accepted.
MEDIA_TYPE_PATTERN = f"^{descriptor_rules._MEDIA_TYPE.pattern}$"


def _field_error(error: BlobCacheError) -> serializers.ValidationError:
    return serializers.ValidationError(error.message, code=error.code)


class RegistryCodeMixin:
    """A field whose every error (DRF's ``required`` and ``null`` too) is one registry error."""

    registry_error: type[BlobCacheError] = DescriptorInvalid


@extend_schema_field({"type": "string", "pattern": DIGEST_PATTERN})
class DigestField(RegistryCodeMixin, serializers.CharField):
    registry_error = DigestInvalid

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        try:
            return validate_digest(data)
        except DigestInvalid as error:
            raise _field_error(error) from None

    def to_representation(self, value: Any) -> str:
        return str(value)


class SizeField(RegistryCodeMixin, serializers.IntegerField):
    """A JSON integer only: DRF's IntegerField would take ``"123"``, ``1.0`` and ``true``."""

    registry_error = SizeInvalid

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", SIZE_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        try:
            return descriptor_rules.validate_size(data)
        except SizeInvalid as error:
            raise _field_error(error) from None


@extend_schema_field(
    {
        "type": "string",
        "pattern": MEDIA_TYPE_PATTERN,
        "maxLength": descriptor_rules.MEDIA_TYPE_MAX_LENGTH,
        "example": "application/vnd.oci.image.layer.v1.tar+gzip",
    }
)
class MediaTypeField(RegistryCodeMixin, serializers.CharField):
    registry_error = DescriptorInvalid

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        try:
            return descriptor_rules.validate_media_type(data)
        except DescriptorInvalid as error:
            raise _field_error(error) from None


class DescriptorSerializer(serializers.Serializer):
    """A descriptor as the cache holds it (what GET answers and PUT echoes)."""

    digest = serializers.CharField()
    size = serializers.IntegerField(min_value=0, max_value=SIZE_MAX)
    mediaType = serializers.CharField(source="media_type", allow_blank=True)

    def to_representation(self, instance: Descriptor) -> dict[str, Any]:
        # The fields above describe the shape (and the schema); rendering through them costs a
        # deep copy of every field per request, about a sixth of a GET (benchmarks/bench_api.py).
        return instance.as_dict()


class DescriptorWriteSerializer(serializers.Serializer):
    """A PUT body. ``digest`` defaults to the path's and may differ from it only by algorithm.

    The registry's global service accepts any digest in the body; the API is stricter on both
    routes, so a typo cannot store one blob's descriptor under another blob's key.
    """

    digest = DigestField(
        required=False,
        help_text="The content's canonical digest; defaults to the path's digest.",
        error_messages={"null": "digest must be a string", "blank": "digest must not be empty"},
    )
    size = SizeField(
        help_text="Size in bytes, a JSON integer.",
        error_messages={"required": "size is required", "null": "size must be an integer"},
    )
    mediaType = MediaTypeField(
        source="media_type",
        error_messages={
            "required": "mediaType is required",
            "null": "mediaType must be a string",
            "blank": "mediaType must not be empty",
        },
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        path_digest: str = self.context["digest"]
        canonical = attrs.get("digest", path_digest)
        if canonical != path_digest and algorithm_of(canonical) == algorithm_of(path_digest):
            raise serializers.ValidationError(
                f"the body's digest {canonical} and the path's {path_digest} differ but use "
                f"the same algorithm",
                code=DescriptorInvalid.code,
            )
        attrs["digest"] = canonical
        return attrs

    def to_descriptor(self) -> Descriptor:
        data = self.validated_data
        return Descriptor(digest=data["digest"], size=data["size"], media_type=data["media_type"])


class MemberSerializer(serializers.Serializer):
    digest = serializers.CharField()
    descriptor = DescriptorSerializer(allow_null=True)


class RepositoryCountSerializer(serializers.Serializer):
    name = serializers.CharField()
    members = serializers.IntegerField(min_value=1)


class ClearedSerializer(serializers.Serializer):
    cleared = serializers.IntegerField(min_value=0)
    # A key of the wrong type at a layout name is deleted without being an entry: only this
    # count shows that the clear changed something.
    keys_deleted = serializers.IntegerField(min_value=0)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    detail = serializers.JSONField(allow_null=True)


class ErrorEnvelopeSerializer(serializers.Serializer):
    """The registry's error body: ``{"errors": [{"code", "message", "detail"}]}``."""

    errors = ErrorSerializer(many=True)


def unknown_field(data: dict[str, Any], expected: Sequence[str]) -> tuple[str, str] | None:
    """The first field of a JSON body that is not one of ``expected``, and a message naming it.

    DRF drops unknown fields silently; refusing them turns a typo (``mediatype``, ``dryrun``)
    into an error instead of a write or a run that ignores what the caller meant.
    """
    unknown = sorted(set(data) - set(expected))
    if not unknown:
        return None
    choices = " or ".join(expected) if len(expected) < 3 else (
        f"{', '.join(expected[:-1])} or {expected[-1]}"
    )
    return unknown[0], f"unknown field {unknown[0]!r}: expected {choices}"


def first_error(serializer: serializers.Serializer) -> BlobCacheError:
    """The first failing check in the registry's order (digest, size, media type, consistency),
    as the error to raise: one error, like the registry's own answers, naming its field."""
    errors = serializer.errors
    for name, field in serializer.fields.items():
        if name in errors:
            error_class = getattr(field, "registry_error", DescriptorInvalid)
            return error_class(str(errors[name][0]), detail={"field": name})
    detail = (errors.get(api_settings.NON_FIELD_ERRORS_KEY) or ["invalid descriptor"])[0]
    return DescriptorInvalid(str(detail))
