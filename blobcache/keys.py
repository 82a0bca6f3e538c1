"""The registry's Redis key layout: the only place key strings are built.

Identical in every registry release from v2.1.0 to 3.1+: two colons as separators, no prefix,
the repository name verbatim (never normalised, case preserved).
"""

from __future__ import annotations

GLOBAL_PREFIX = "blobs::"
REPOSITORY_PREFIX = "repository::"
MEMBERSHIP_SUFFIX = "::blobs"

FIELD_DIGEST = "digest"
FIELD_SIZE = "size"
FIELD_MEDIA_TYPE = "mediatype"
#: The fields a clear removes; other fields (a legacy ``length``) are left as the registry does.
DESCRIPTOR_FIELDS = (FIELD_DIGEST, FIELD_SIZE, FIELD_MEDIA_TYPE)


def global_key(digest: str) -> str:
    return f"{GLOBAL_PREFIX}{digest}"


def membership_key(repository: str) -> str:
    return f"{REPOSITORY_PREFIX}{repository}{MEMBERSHIP_SUFFIX}"


def repository_key(repository: str, digest: str) -> str:
    return f"{REPOSITORY_PREFIX}{repository}{MEMBERSHIP_SUFFIX}::{digest}"
