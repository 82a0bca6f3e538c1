"""The descriptor value type and its admission check."""

from __future__ import annotations

import re
from dataclasses import dataclass

from blobcache.digest import validate_digest
from blobcache.exceptions import DescriptorInvalid, SizeInvalid

SIZE_MAX = 2**63 - 1
MEDIA_TYPE_MAX_LENGTH = 255
# RFC 6838 section 4.2 restricted-name, for both the type and the subtype.
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """What the registry caches about a blob: nothing more than digest, size and media type.

    Construction does not validate: descriptors read back from Redis are returned as the
    registry wrote them, and writes validate explicitly in the order the registry does.
    """

    digest: str
    size: int
    media_type: str

    def as_dict(self) -> dict[str, object]:
        """The registry's JSON shape (``mediaType``), used by the API and the commands."""
        return {"digest": self.digest, "size": self.size, "mediaType": self.media_type}


def validate_size(size: object) -> int:
    """Sizes are Go int64 values that cannot be negative; bools and floats are refused."""
    if type(size) is not int:
        raise SizeInvalid(f"size must be an integer, not {type(size).__name__}")
    if not 0 <= size <= SIZE_MAX:
        raise SizeInvalid(f"size must be between 0 and {SIZE_MAX}, got {size}")
    return size


def validate_media_type(media_type: object) -> str:
    if not isinstance(media_type, str) or not media_type:
        raise DescriptorInvalid("media type must be a non-empty string")
    if len(media_type) > MEDIA_TYPE_MAX_LENGTH:
        raise DescriptorInvalid(
            f"media type must not be more than {MEDIA_TYPE_MAX_LENGTH} characters"
        )
    if not _MEDIA_TYPE.fullmatch(media_type):
        raise DescriptorInvalid(
            f"media type {media_type[:80]!r} is not of the form type/subtype (no parameters)"
        )
    return media_type


def validate_descriptor(descriptor: Descriptor) -> Descriptor:
    """The registry's ``ValidateDescriptor`` order (digest, size, media type), stricter rules."""
    if not isinstance(descriptor, Descriptor):
        raise DescriptorInvalid(f"expected a Descriptor, not {type(descriptor).__name__}")
    validate_digest(descriptor.digest)
    validate_size(descriptor.size)
    validate_media_type(descriptor.media_type)
    return descriptor
