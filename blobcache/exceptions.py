"""Every error blobcache raises on purpose, its registry code, HTTP status and exit status.

Each class carries the registry's error code (``code``), the status the API answers with
(``status_code``, as DRF's exceptions carry theirs) and the status a management command exits
with (``exit_status``). The API's exception handler and the commands' base class map an error in
one line from these attributes, so a new error is defined once, here, and every interface
reports it the same way.

Exit statuses are a contract shared by every command: 0 success; 1 (``EXIT_PARTIAL``) unknown
digests, a corrupt entry, unreadable storage or a refused confirmation; 2 (``EXIT_USAGE``)
invalid input or usage; 3 (``EXIT_UNAVAILABLE``) Redis unavailable; 128 + the signal number
after SIGINT (130) or SIGTERM (143).
"""

from __future__ import annotations

from typing import Any, Self

EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

# Registry error codes the API answers with for DRF's own errors (authentication, permissions,
# content negotiation, throttling) and for anything it cannot name better.
UNAUTHORIZED = "UNAUTHORIZED"
DENIED = "DENIED"
UNSUPPORTED = "UNSUPPORTED"
TOOMANYREQUESTS = "TOOMANYREQUESTS"
UNKNOWN = "UNKNOWN"
UNAVAILABLE = "UNAVAILABLE"


class BlobCacheError(Exception):
    """Base class: anything blobcache raises on purpose derives from it.

    An error no subclass names is a server fault for the API (500) and a partial failure for a
    command (1), never mistaken for bad input.
    """

    code: str = UNKNOWN
    status_code: int = 500
    exit_status: int = EXIT_PARTIAL
    default_message: str = "blob cache error"

    def __init__(self, message: str | None = None, *, detail: object = None) -> None:
        self.message = message or self.default_message
        self.detail = detail
        super().__init__(self.message)

    def extended(self, context: str = "", **detail: Any) -> Self:
        """The same error (class, code, statuses) with ``context`` appended to its message and
        ``detail`` set: an interface adds what its caller needs without remapping the error."""
        error = type(self).__new__(type(self))
        BlobCacheError.__init__(error, self.message + context, detail=detail or self.detail)
        return error


class BlobUnknown(BlobCacheError):
    """A miss: the cache holds no readable descriptor for the digest (or the repository)."""

    code = "BLOB_UNKNOWN"
    status_code = 404
    default_message = "unknown blob"


class DigestInvalid(BlobCacheError):
    """The digest does not pass go-digest v1.0.0 validation."""

    code = "DIGEST_INVALID"
    status_code = 400
    exit_status = EXIT_USAGE
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
    status_code = 400
    exit_status = EXIT_USAGE
    default_message = "invalid repository name"


class DescriptorInvalid(BlobCacheError):
    """The descriptor cannot be stored: bad media type, or a same-algorithm digest mismatch."""

    code = "DESCRIPTOR_INVALID"
    status_code = 400
    exit_status = EXIT_USAGE
    default_message = "invalid descriptor"


class SizeInvalid(DescriptorInvalid):
    code = "SIZE_INVALID"
    default_message = "invalid size in descriptor"


class DescriptorCorrupt(BlobCacheError):
    """An entry exists in Redis but cannot be read (non-numeric size, a key of the wrong type).

    Kept apart from a miss because the registry 3.x never repairs such an entry by itself: an
    operator has to clear it. 409: the request was fine, the stored state is in the way.
    """

    code = "DESCRIPTOR_CORRUPT"
    status_code = 409
    default_message = "cache entry exists but cannot be read"


class CacheUnavailable(BlobCacheError):
    """Redis cannot answer: unreachable, timing out, read-only, loading or out of memory."""

    code = UNAVAILABLE
    status_code = 503
    exit_status = EXIT_UNAVAILABLE
    default_message = "the blob descriptor cache is unavailable"


# --- the registry's storage -----------------------------------------------------------------
# Over the API the storage root is the server's configuration, never the caller's input, and a
# mount may come back: 503. On the command line the operator typed the root: a wrong one is a
# usage error (2), an unreadable one a partial failure (1).


class StorageInvalid(BlobCacheError):
    """The storage root is not a registry's filesystem storage: reconciling against it would
    take every cached blob for deleted."""

    code = "STORAGE_INVALID"
    status_code = 503
    exit_status = EXIT_USAGE
    default_message = "the storage root is not a registry's filesystem storage"


class StorageUnavailable(BlobCacheError):
    """Storage could not be read (permissions, I/O error): nothing can be decided safely."""

    code = "STORAGE_UNAVAILABLE"
    status_code = 503
    default_message = "the registry's storage cannot be read"


class StorageUnconfigured(StorageInvalid):
    """No usable storage configuration (none given or set): this deployment cannot reconcile
    until its settings change, so retrying is no use (400, not 503)."""

    code = "STORAGE_UNCONFIGURED"
    status_code = 400
    default_message = "no usable storage configuration"


# --- request errors of the API --------------------------------------------------------------


class RequestInvalid(BlobCacheError):
    """A body or parameter that is not the documented shape (malformed JSON, wrong types,
    unknown fields)."""

    code = "REQUEST_INVALID"
    status_code = 400
    exit_status = EXIT_USAGE
    default_message = "the request is not valid"


class CursorInvalid(BlobCacheError):
    """A ``cursor`` that no previous page's next link gave."""

    code = "CURSOR_INVALID"
    status_code = 400
    exit_status = EXIT_USAGE
    default_message = "invalid cursor"


class PaginationNumberInvalid(BlobCacheError):
    """A page size that is not a positive integer within the limit."""

    code = "PAGINATION_NUMBER_INVALID"
    status_code = 400
    exit_status = EXIT_USAGE
    default_message = "invalid page size"


class RequestTooLarge(BlobCacheError):
    """A body over a size limit (the registry has no code of its own for 413)."""

    code = "REQUEST_TOO_LARGE"
    status_code = 413
    exit_status = EXIT_USAGE
    default_message = "the request body is larger than the server accepts"


class RouteNotFound(BlobCacheError):
    """No API route matches the URL (or the route is switched off)."""

    code = "NOT_FOUND"
    status_code = 404
    default_message = "no API route matches the URL"


# --- the notifications receiver -------------------------------------------------------------


class NotificationsUnconfigured(BlobCacheError):
    """The receiver is off (no secret, or a limit that is not valid); 503 because the
    registry retries an envelope until it succeeds, and a fixed setting will accept it."""

    code = "NOTIFICATIONS_UNCONFIGURED"
    status_code = 503
    default_message = "the notifications receiver is off"


class ReceiverBusy(BlobCacheError):
    """Every receiver slot of this process is taken: the envelope was not looked at."""

    code = UNAVAILABLE
    status_code = 503
    exit_status = EXIT_UNAVAILABLE

    def __init__(self, max_jobs: int) -> None:
        super().__init__(
            f"the notifications receiver is busy: {max_jobs} envelopes are being cleared in "
            "this process (NOTIFICATIONS_MAX_JOBS); retry later"
        )
