"""Digest validation against opencontainers/go-digest v1.0.0: every example, then properties."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blobcache.digest import algorithm_of, validate_digest
from blobcache.exceptions import (
    BlobCacheError,
    DigestInvalid,
    DigestInvalidFormat,
    DigestInvalidLength,
    DigestUnsupported,
)

HEX64 = "0123456789abcdef" * 4

# Digests go-digest v1.0.0 accepts.
VALID = [
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
    "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "sha256:" + "a" * 64,
    "sha256:" + HEX64,
    "sha384:38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b",
    "sha384:54a59b9f22b0b80880d8427e548b7c23abd873486e1f035dce9cd697e85175033caa88e6d57bc35efae0b5afd3145f31",
    "sha384:fdbd8e75a67f29f701a4e040385e2e23986303ea10239211af907fcbb83578b3e417cb71ce646efd0819dd8c088de1bd",
    "sha384:abc1" + "1" * 92,
    "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
    "sha512:1f40fc92da241694750979ee6cf582f2d5d7d28e18335de05abc54d0560e0f5302860c652bf08d560252aa5e74210546f369fbbbce8c12cfc7957b2652fe9a75",
    "sha512:309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f989dd35bc5ff499670da34255b45b0cfd830e81f605dcf7dc5542e93ae9cd76f",
    "sha512:" + "c" * 128,
    "sha256:4eea145ea7cabad477c7f208590716d9669dcdf499fda979e3e7765a04d918a6",
]

# Digests go-digest v1.0.0 rejects, with its error.
INVALID = [
    ("", DigestInvalidFormat),
    ("sha256", DigestInvalidFormat),
    ("sha256:", DigestInvalidFormat),
    (":" + HEX64, DigestInvalidFormat),
    ("sha256:" + HEX64[:63], DigestInvalidLength),
    ("sha256:" + HEX64 + "0", DigestInvalidLength),
    ("sha256:" + "A" * 64, DigestInvalidFormat),
    ("sha256:" + "g" * 64, DigestInvalidFormat),
    ("SHA256:" + HEX64, DigestInvalidFormat),
    ("md5:d41d8cd98f00b204e9800998ecf8427e", DigestUnsupported),
    ("tarsum.v1+sha256:" + HEX64, DigestUnsupported),
    ("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", DigestUnsupported),
    ("sha384:abc", DigestInvalidLength),
    ("sha512:" + HEX64, DigestInvalidLength),
    ("sha256:" + HEX64 + " ", DigestInvalidLength),
    ("sha256 :" + HEX64, DigestInvalidFormat),
    ("sha-256:" + HEX64, DigestUnsupported),
    ("blake3:" + HEX64, DigestUnsupported),
    ("sha256:" + HEX64 + ":x", DigestInvalidLength),
    ("Foo:bar", DigestInvalidFormat),
]

HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
# go-digest v1.0.0's DigestRegexp, written out here from its source so the model below does not
# share a single line with the module under test.
_GO_DIGEST_GRAMMAR = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def go_digest_verdict(text: str) -> type[DigestInvalid] | None:
    """A model of go-digest v1.0.0 ``Digest.Validate`` on the UTF-8 bytes Go would see.

    Go measures the encoded part in bytes, so non-ASCII input decides between a length and a
    format error by its byte count, not its character count.
    """
    algorithm, colon, encoded = text.partition(":")
    if not colon or not algorithm or not encoded:
        return DigestInvalidFormat
    if algorithm not in HEX_LENGTHS:
        return DigestUnsupported if _GO_DIGEST_GRAMMAR.fullmatch(text) else DigestInvalidFormat
    if len(encoded.encode("utf-8", "surrogatepass")) != HEX_LENGTHS[algorithm]:
        return DigestInvalidLength
    if re.fullmatch(r"[0-9a-f]+", encoded) is None:
        return DigestInvalidFormat
    return None


def assert_rejected(text: object, error_class: type[DigestInvalid]) -> DigestInvalid:
    with pytest.raises(DigestInvalid) as caught:
        validate_digest(text)
    assert type(caught.value) is error_class, (text, type(caught.value))
    assert caught.value.code == "DIGEST_INVALID"
    return caught.value


def test_the_example_tables_are_complete() -> None:
    assert len(VALID) == 15
    assert len(INVALID) == 20


@pytest.mark.parametrize("digest", VALID)
def test_valid_digest_is_returned_unchanged(digest: str) -> None:
    assert validate_digest(digest) is digest
    assert go_digest_verdict(digest) is None


@pytest.mark.parametrize(("text", "error_class"), INVALID)
def test_invalid_digest_raises_the_go_digest_class(
    text: str, error_class: type[DigestInvalid]
) -> None:
    error = assert_rejected(text, error_class)
    assert isinstance(error, BlobCacheError)
    assert str(error)  # a message a person can act on, never empty
    # The model agrees with the table, so the property tests below compare against a sound oracle.
    assert go_digest_verdict(text) is error_class


@pytest.mark.parametrize(
    "value", [None, 0, 256, 1.5, b"sha256:" + HEX64.encode(), ["sha256:" + HEX64], object()]
)
def test_non_string_input_is_an_invalid_format(value: object) -> None:
    error = assert_rejected(value, DigestInvalidFormat)
    assert type(value).__name__ in str(error)


def test_codes_of_the_error_classes() -> None:
    for error_class in (DigestInvalid, DigestInvalidFormat, DigestInvalidLength, DigestUnsupported):
        assert error_class().code == "DIGEST_INVALID"


def test_algorithm_of() -> None:
    assert algorithm_of("sha384:abc1" + "1" * 92) == "sha384"


@pytest.mark.parametrize(
    ("text", "error_class"),
    [
        # go-digest counts bytes: 62 hex + one two-byte character is 64 bytes, the right length.
        ("sha256:" + "a" * 62 + "\u00e9", DigestInvalidFormat),
        ("sha256:" + "a" * 63 + "\u00e9", DigestInvalidLength),
        ("sha256:" + "a" * 61 + "\u20ac", DigestInvalidFormat),
        ("sha256:" + "a" * 32 + "\U0001f600" * 8, DigestInvalidFormat),
        ("sha256:" + "\x00" * 64, DigestInvalidFormat),
        ("sha256:" + HEX64[:63] + "\n", DigestInvalidFormat),
        ("sha256:" + HEX64 + "\n", DigestInvalidLength),
        ("sha256\x00:" + HEX64, DigestInvalidFormat),
    ],
)
def test_length_is_counted_in_bytes_like_go(text: str, error_class: type[DigestInvalid]) -> None:
    assert_rejected(text, error_class)


@pytest.mark.parametrize(
    ("text", "error_class"),
    [
        ("a" * 1_000_000, DigestInvalidFormat),
        ("sha256:" + "a" * 1_000_000, DigestInvalidLength),
        ("x" * 1_000_000 + ":" + "a" * 1_000_000, DigestUnsupported),
        ("x" * 1_000_000 + "!:" + "a", DigestInvalidFormat),
        ("a." * 500_000 + ":b", DigestInvalidFormat),
    ],
)
def test_huge_input_is_rejected_fast(text: str, error_class: type[DigestInvalid]) -> None:
    started = time.perf_counter()
    assert_rejected(text, error_class)
    assert time.perf_counter() - started < 0.5


# ----------------------------------------------------------------------------------------------
# Properties

hex_digits = st.sampled_from("0123456789abcdef")


@st.composite
def grammar_digests(draw: st.DrawFn) -> str:
    algorithm = draw(st.sampled_from(sorted(HEX_LENGTHS)))
    length = HEX_LENGTHS[algorithm]
    encoded = draw(st.text(alphabet="0123456789abcdef", min_size=length, max_size=length))
    return f"{algorithm}:{encoded}"


@given(grammar_digests())
def test_digests_from_the_grammar_are_accepted(digest: str) -> None:
    assert validate_digest(digest) == digest


# Text shaped like a digest, so that the algorithm, length and character branches are all hit
# far more often than by plain st.text(), which rarely even holds a colon.
digest_like = st.builds(
    lambda algorithm, separator, encoded: f"{algorithm}{separator}{encoded}",
    st.one_of(
        st.sampled_from(
            ["sha256", "sha384", "sha512", "SHA256", "md5", "sha-256", "tarsum.v1+sha256", ""]
        ),
        st.text(max_size=12),
    ),
    st.sampled_from([":", ":", ":", "", "::", " :"]),
    st.one_of(
        st.text(alphabet="0123456789abcdefABCDEFg=_-", max_size=140),
        st.text(max_size=140),
        st.integers(60, 130).map(lambda n: "a" * n),
    ),
)


@given(st.one_of(st.text(), digest_like))
def test_arbitrary_text_validates_or_raises_the_right_class(text: str) -> None:
    expected = go_digest_verdict(text)
    if expected is None:
        assert validate_digest(text) == text
    else:
        assert_rejected(text, expected)


# Hypothesis cannot draw megabytes per example; repeating a drawn piece still gives huge inputs
# of every shape (with or without colons, hex, non-ASCII).
@given(st.tuples(st.text(min_size=1, max_size=20), digest_like).map(lambda p: p[1] + p[0] * 20_000))
def test_huge_arbitrary_text_never_crashes(text: str) -> None:
    with pytest.raises(DigestInvalid) as caught:
        validate_digest(text)
    assert type(caught.value) is go_digest_verdict(text)


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.booleans(),
        st.binary(),
        st.lists(st.text(), max_size=2),
    )
)
def test_non_strings_are_invalid_format(value: object) -> None:
    assert_rejected(value, DigestInvalidFormat)
