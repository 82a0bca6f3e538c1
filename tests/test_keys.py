"""The registry's key layout: exact key strings, names inside keys, and SCAN MATCH patterns.

The strings are spelled out here, not rebuilt from the module, so that a change to the layout
fails a test instead of changing both sides; the patterns are checked against a real Redis,
whose glob rules are the ones that matter.
"""

from __future__ import annotations

import pytest
import redis

from blobcache import keys

D1 = "sha256:" + "1" * 64
IPV6 = "[::1]:5000/team/app"


@pytest.mark.parametrize(
    ("repository", "membership", "hash_key"),
    [
        (
            "library/alpine",
            "repository::library/alpine::blobs",
            f"repository::library/alpine::blobs::{D1}",
        ),
        # The name is used verbatim: a domain keeps its case, its port and its IPv6 colons.
        (
            "Registry.Example.com:443/x",
            "repository::Registry.Example.com:443/x::blobs",
            f"repository::Registry.Example.com:443/x::blobs::{D1}",
        ),
        (IPV6, f"repository::{IPV6}::blobs", f"repository::{IPV6}::blobs::{D1}"),
    ],
)
def test_key_strings_are_the_registry_layout(
    repository: str, membership: str, hash_key: str
) -> None:
    assert keys.global_key(D1) == f"blobs::{D1}"
    assert keys.membership_key(repository) == membership
    assert keys.repository_key(repository, D1) == hash_key


def test_the_descriptor_fields_are_the_registry_field_names() -> None:
    assert keys.DESCRIPTOR_FIELDS == ("digest", "size", "mediatype")


@pytest.mark.parametrize("repository", ["library/alpine", IPV6, "a::b", "x"])
def test_the_repository_is_read_back_from_its_membership_key(repository: str) -> None:
    # Sliced, not split: "::" inside an IPv6 domain must not cut the name short.
    assert keys.repository_of_membership_key(keys.membership_key(repository)) == repository


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("blobs::x", "blobs::x"),
        (b"blobs::x", "blobs::x"),
        (b"repository::caf\xc3\xa9::blobs", "repository::caf\u00e9::blobs"),
        # Bytes that are not UTF-8 (another application's key) still show, and stay non-ASCII.
        (b"blobs::\xff\xfe", "blobs::\\xff\\xfe"),
    ],
)
def test_key_text(value: str | bytes, text: str) -> None:
    assert keys.key_text(value) == text


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("library/alpine", "library/alpine"),
        (IPV6, r"\[::1\]:5000/team/app"),
        ("a*b?c", r"a\*b\?c"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_glob_escape(text: str, escaped: str) -> None:
    assert keys.glob_escape(text) == escaped


def test_the_patterns() -> None:
    assert keys.REPOSITORY_KEYS_PATTERN == "repository::*"
    assert keys.MEMBERSHIP_KEYS_PATTERN == "repository::*::blobs"
    assert keys.repository_hashes_pattern(IPV6) == r"repository::\[::1\]:5000/team/app::blobs::*"


@pytest.mark.standalone  # Redis's glob matching, the same on every topology
def test_the_patterns_match_exactly_the_keys_they_name(redis_client: redis.Redis) -> None:
    other = "[::1]:5000/team/apps"
    for repository in (IPV6, other, "1:5000/team/app"):
        redis_client.sadd(keys.membership_key(repository), D1)
        redis_client.hset(keys.repository_key(repository, D1), "mediatype", "a/b")
    redis_client.hset(keys.global_key(D1), "digest", D1)

    def matching(pattern: str) -> set[str]:
        return set(redis_client.scan_iter(match=pattern, count=1000))

    # Unescaped, "[::1]" would be a character class and match "1:5000/team/app" instead.
    assert matching(keys.repository_hashes_pattern(IPV6)) == {keys.repository_key(IPV6, D1)}
    assert matching(keys.MEMBERSHIP_KEYS_PATTERN) == {
        keys.membership_key(name) for name in (IPV6, other, "1:5000/team/app")
    }
    assert matching(keys.REPOSITORY_KEYS_PATTERN) == {
        *(keys.membership_key(name) for name in (IPV6, other, "1:5000/team/app")),
        *(keys.repository_key(name, D1) for name in (IPV6, other, "1:5000/team/app")),
    }
