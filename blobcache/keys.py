"""The registry's Redis key layout: the only place key strings are built.

Identical in every registry release from v2.1.0 to 3.1+: two colons as separators, no prefix,
the repository name verbatim (never normalised, case preserved).
"""

from __future__ import annotations

import re
from typing import Any

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


def repository_of_membership_key(key: str) -> str:
    """The repository name inside a membership key (sliced, not split: an IPv6 domain such as
    ``[::1]:5000/app`` puts colons inside the name)."""
    return key[len(REPOSITORY_PREFIX) : -len(MEMBERSHIP_SUFFIX)]


def is_membership_key(key: str) -> bool:
    """Whether a layout key names a membership set; the other two shapes are hashes."""
    return key.startswith(REPOSITORY_PREFIX) and key.endswith(MEMBERSHIP_SUFFIX)


def key_text(value: Any) -> str:
    """A key or member as text; bytes that are not UTF-8 (written by someone else) still show,
    and such text never passes the ASCII-only digest and name grammars."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


# --- SCAN MATCH patterns -------------------------------------------------------------------------

_GLOB_SPECIAL = re.compile(r"([\\\[\]*?])")


def glob_escape(text: str) -> str:
    """Escape SCAN MATCH metacharacters: IPv6 domains put ``[`` and ``]`` in repository names."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


#: Every repository key (sets and hashes) / every membership set.
REPOSITORY_KEYS_PATTERN = glob_escape(REPOSITORY_PREFIX) + "*"
MEMBERSHIP_KEYS_PATTERN = membership_key("*")


def repository_hashes_pattern(repository: str) -> str:
    """Every repository hash of ``repository`` (the ``*`` also matches longer suffixes)."""
    return repository_key(glob_escape(repository), "*")
