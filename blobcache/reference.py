"""Repository name validation: the router grammar of distribution/reference v0.6.0.

The registry routes ``/v2/<name>/...`` with ``WithName`` and validates the cache scope with
``ParseNormalizedNamed``. blobcache accepts exactly the names both accept, without the tag or
digest suffix that ``ParseNormalizedNamed`` lets through (the router never produces one).
Normalisation (``docker.io``, ``library/``) only decides the length rule; the name itself is
never rewritten, because the registry's keys use it verbatim.
"""

from __future__ import annotations

import re

from blobcache.exceptions import NameInvalid

NAME_MAX_LENGTH = 255

# The reference grammar written with possessive quantifiers and atomic groups (Python 3.11+):
# the same language, but a failed match never backtracks through a long input, so a hostile
# megabyte name is refused in milliseconds. Giving back is never needed here: a component ends
# at a `/`, a `.`, a `:` or the end, none of which it can contain, and a first component that is
# a domain leaves the same rest as the path-only reading would.
_PATH_COMPONENT = r"[a-z0-9]++(?:(?:[._]|__|-++)[a-z0-9]++)*+"
# [a-zA-Z0-9] or [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]: no leading or trailing dash.
_DOMAIN_COMPONENT = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*+(?<=[a-zA-Z0-9]))?+"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*+"
_IPV6 = r"\[[a-fA-F0-9:]++\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]++)?+"
_NAME = re.compile(rf"(?>{_DOMAIN_AND_PORT}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*+", re.ASCII)
_DOMAIN_ONLY = re.compile(_DOMAIN_AND_PORT, re.ASCII)
_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*+", re.ASCII)
_SIXTY_FOUR_HEX = re.compile(r"[a-f0-9]{64}")

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPOSITORY_PREFIX = "library/"


def split_domain(name: str) -> tuple[str, str]:
    """Split ``name`` into (domain, path) the way ``ParseNormalizedNamed`` does (v0.6.0).

    A first component is a domain when it holds a dot or a colon, is ``localhost``, or holds an
    upper-case letter; otherwise the name lives on Docker Hub, where a one-component path gets
    ``library/`` in front (which is why ``ubuntu`` may be at most 247 characters long).
    """
    first, slash, rest = name.partition("/")
    if not slash or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPOSITORY_PREFIX + path
    return domain, path


def validate_repository_name(name: object) -> str:
    """Return ``name`` unchanged if the registry would route it, else raise ``NameInvalid``."""
    if not isinstance(name, str):
        raise NameInvalid(f"repository name must be a string, not {type(name).__name__}")
    if not name:
        raise NameInvalid("invalid reference format: repository name must not be empty")
    # Checked before the grammar so that a huge input costs no regex time. Everything after the
    # first slash always belongs to the path (the domain, which has no length limit, can only be
    # the first component), so this bound never rejects a valid name.
    _, slash, rest = name.partition("/")
    if len(rest if slash else OFFICIAL_REPOSITORY_PREFIX + name) > NAME_MAX_LENGTH:
        raise NameInvalid(
            f"repository name must not be more than {NAME_MAX_LENGTH} characters"
        )
    if not _NAME.fullmatch(name):
        raise NameInvalid(f"invalid reference format: {_shorten(name)!r} is not a repository name")
    if _SIXTY_FOUR_HEX.fullmatch(name):
        raise NameInvalid(
            f"invalid repository name ({name}), cannot specify 64-byte hexadecimal strings"
        )
    domain, path = split_domain(name)
    if not _DOMAIN_ONLY.fullmatch(domain):
        # reference.Parse splits `<domain>/<path>` again with the grammar: a first component
        # taken for a domain for its dot but that is no host name (`a_b.c`) stays in the path.
        path = name
    if not _PATH.fullmatch(path):
        # The router's grammar reads `[0]/foo` as an IPv6 domain, but ParseNormalizedNamed sees
        # no `:` in it, keeps it in the path on docker.io and rejects the brackets.
        raise NameInvalid(f"invalid reference format: {_shorten(name)!r} is not a repository name")
    if len(path) > NAME_MAX_LENGTH:
        raise NameInvalid(
            f"repository name must not be more than {NAME_MAX_LENGTH} characters"
            f" (the path {_shorten(path)!r} has {len(path)})"
        )
    return name


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
