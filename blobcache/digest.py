"""Digest validation with the rules of go-digest v1.0.0, the version the registry 2.8.3+ uses.

Pure functions: no Django, no Redis, so the API, the commands and the cache manager all reject
the same strings with the same error class before anything reaches Redis.
"""

from __future__ import annotations

import re

from blobcache.exceptions import DigestInvalidFormat, DigestInvalidLength, DigestUnsupported

#: Registered algorithms and the length of their hex encoding.
ALGORITHM_HEX_LENGTHS: dict[str, int] = {"sha256": 64, "sha384": 96, "sha512": 128}

# go-digest's general grammar: used only to tell "unsupported" apart from "malformed".
_GENERAL_GRAMMAR = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_LOWER_HEX = re.compile(r"[a-f0-9]+")
# The fast path for the common case; anything else takes the slow path for the exact error.
_VALID = re.compile(r"sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}")


def validate_digest(digest: object) -> str:
    """Return ``digest`` unchanged if valid, else raise the go-digest error class.

    The checks run in go-digest's order (format, algorithm, length, characters): a string of the
    wrong length with bad characters reports a length error, exactly as the registry does.
    """
    if isinstance(digest, str) and _VALID.fullmatch(digest):
        return digest
    if not isinstance(digest, str):
        raise DigestInvalidFormat(f"digest must be a string, not {type(digest).__name__}")
    algorithm, colon, encoded = digest.partition(":")
    if not colon or not algorithm or not encoded:
        raise DigestInvalidFormat(f"invalid checksum digest format: {digest!r}")
    expected_length = ALGORITHM_HEX_LENGTHS.get(algorithm)
    if expected_length is None:
        if _GENERAL_GRAMMAR.fullmatch(digest):
            raise DigestUnsupported(f"unsupported digest algorithm: {algorithm!r}")
        raise DigestInvalidFormat(f"invalid checksum digest format: {digest!r}")
    # Go's len() counts UTF-8 bytes, so non-ASCII input is measured the same way here.
    encoded_length = len(encoded.encode("utf-8", "surrogatepass"))
    if encoded_length != expected_length:
        raise DigestInvalidLength(
            f"invalid checksum digest length: {algorithm} needs {expected_length} hex "
            f"characters, got {encoded_length} bytes"
        )
    if not _LOWER_HEX.fullmatch(encoded):
        raise DigestInvalidFormat(
            f"invalid checksum digest format: {digest!r} is not lower-case hex"
        )
    return digest  # pragma: no cover - the fast path accepts every valid digest


def algorithm_of(digest: str) -> str:
    """The algorithm part of an already validated digest."""
    return digest.partition(":")[0]
