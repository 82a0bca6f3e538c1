"""One exception hierarchy for every layer of blobcache.

Each error carries the registry's own error code in ``code`` so that the REST API, the management
commands and a portal's own code can report it without a mapping table of their own.
"""

from __future__ import annotations


class BlobCacheError(Exception):
    """Base class: anything blobcache raises on purpose derives from it."""

    code: str = "UNKNOWN"
    default_message: str = "blob cache error"

    def __init__(self, message: str | None = None, *, detail: object = None) -> None:
        self.message = message or self.default_message
        self.detail = detail
        super().__init__(self.message)


class BlobUnknown(BlobCacheError):
    """A miss: the cache holds no readable descriptor for the digest (or the repository)."""

    code = "BLOB_UNKNOWN"
    default_message = "unknown blob"


class DigestInvalid(BlobCacheError):
    """The digest does not pass go-digest v1.0.0 validation."""

    code = "DIGEST_INVALID"
    default_message = "invalid digest"


class DigestInvalidFormat(DigestInvalid):
    default_message = "invalid checksum digest format"


class DigestInvalidLength(DigestInvalid):
    default_message = "invalid checksum digest length"


class DigestUnsupported(DigestInvalid):
    default_message = "unsupported digest algorithm"


class NameInvalid(BlobCacheError):
    """The repository name is not one the registry's router would route."""

    code = "NAME_INVALID"
    default_message = "invalid repository name"


class DescriptorInvalid(BlobCacheError):
    """The descriptor cannot be stored: bad media type, or a same-algorithm digest mismatch."""

    code = "DESCRIPTOR_INVALID"
    default_message = "invalid descriptor"


class SizeInvalid(DescriptorInvalid):
    code = "SIZE_INVALID"
    default_message = "invalid size in descriptor"


class DescriptorCorrupt(BlobCacheError):
    """An entry exists in Redis but cannot be read (non-numeric size, a key of the wrong type).

    Kept apart from a miss because the registry 3.x never repairs such an entry by itself: an
    operator has to clear it.
    """

    code = "DESCRIPTOR_CORRUPT"
    default_message = "cache entry exists but cannot be read"


class CacheUnavailable(BlobCacheError):
    """Redis cannot answer: unreachable, timing out, read-only, loading or out of memory."""

    code = "UNAVAILABLE"
    default_message = "the blob descriptor cache is unavailable"
