"""The Descriptor value type and its admission check (the registry's ValidateDescriptor, and a
media type of the form type/subtype as RFC 6838 allows)."""

from __future__ import annotations

import dataclasses
import decimal
import fractions
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blobcache import Descriptor
from blobcache.descriptor import (
    SIZE_MAX,
    validate_descriptor,
    validate_media_type,
    validate_size,
)
from blobcache.exceptions import (
    DescriptorInvalid,
    DigestInvalidFormat,
    DigestInvalidLength,
    SizeInvalid,
)

DIGEST = "sha256:" + "ab" * 32
OCTET = "application/octet-stream"
RESTRICTED_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
RESTRICTED_CHARS = RESTRICTED_FIRST + "!#$&^_.+-"


def assert_descriptor_invalid(value: object) -> DescriptorInvalid:
    """Media type errors are exactly DescriptorInvalid, never its SizeInvalid subclass."""
    with pytest.raises(DescriptorInvalid) as caught:
        validate_media_type(value)
    assert type(caught.value) is DescriptorInvalid
    assert caught.value.code == "DESCRIPTOR_INVALID"
    return caught.value


def assert_size_invalid(value: object) -> SizeInvalid:
    with pytest.raises(SizeInvalid) as caught:
        validate_size(value)
    assert type(caught.value) is SizeInvalid
    assert caught.value.code == "SIZE_INVALID"
    assert isinstance(caught.value, DescriptorInvalid)
    return caught.value


# ----------------------------------------------------------------------------------------------
# Size


@pytest.mark.parametrize("size", [0, 1, 10, 2**31, 2**32, 2**62, SIZE_MAX])
def test_valid_size_is_returned(size: int) -> None:
    assert validate_size(size) == size


def test_size_max_is_the_go_int64_maximum() -> None:
    assert SIZE_MAX == 9_223_372_036_854_775_807


@pytest.mark.parametrize(
    "size",
    [
        -1,
        -(2**63),
        2**63,
        2**64,
        True,
        False,
        1.0,
        0.0,
        10.5,
        float("nan"),
        float("inf"),
        None,
        "10",
        "",
        b"10",
        decimal.Decimal(10),
        fractions.Fraction(10, 1),
        [10],
    ],
)
def test_invalid_size_is_size_invalid(size: object) -> None:
    assert str(assert_size_invalid(size))


@given(st.integers())
def test_any_integer_is_accepted_exactly_in_range(size: int) -> None:
    if 0 <= size <= SIZE_MAX:
        assert validate_size(size) == size
    else:
        assert_size_invalid(size)


@given(st.one_of(st.floats(), st.booleans(), st.none(), st.text(), st.binary(), st.decimals()))
def test_non_integers_are_size_invalid(size: object) -> None:
    assert_size_invalid(size)


# ----------------------------------------------------------------------------------------------
# Media type

VALID_MEDIA_TYPES = [
    OCTET,
    "application/json",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "text/plain",
    "a/b",
    "A/B",
    "0/9",
    "x/a!#$&^_.+-z",
    "a" * 127 + "/" + "b" * 127,
]

INVALID_MEDIA_TYPES = [
    "",
    "application",
    "application/",
    "/json",
    "/",
    "a/b/c",
    "application/json; charset=utf-8",
    "application/json;charset=utf-8",
    "application/json ;q=1",
    " application/json",
    "application/json ",
    "application/json\n",
    "application/js on",
    "application/js\ton",
    "*/*",
    "application/*",
    ".app/json",
    "application/-json",
    "application/+json",
    "application/j\u00e9son",
    "appl\u0131cation/json",
    "application/json\x00",
    "a" * 128 + "/b",
    "a/" + "b" * 128,
    "a" * 128 + "/" + "b" * 127,
    "application/(json)",
    "application/json,text/plain",
    'application/"json"',
]


@pytest.mark.parametrize("media_type", VALID_MEDIA_TYPES)
def test_valid_media_type_is_returned(media_type: str) -> None:
    assert validate_media_type(media_type) is media_type


def test_longest_media_type_is_255_characters() -> None:
    assert len(VALID_MEDIA_TYPES[-1]) == 255


@pytest.mark.parametrize("media_type", INVALID_MEDIA_TYPES)
def test_invalid_media_type_is_descriptor_invalid(media_type: str) -> None:
    assert str(assert_descriptor_invalid(media_type))


def test_empty_media_type_says_so() -> None:
    assert "non-empty" in str(assert_descriptor_invalid(""))


def test_parameters_are_refused_with_a_hint() -> None:
    assert "no parameters" in str(assert_descriptor_invalid("application/json; charset=utf-8"))


@pytest.mark.parametrize("media_type", [None, 1, b"application/json", ["a/b"]])
def test_non_string_media_type_is_descriptor_invalid(media_type: object) -> None:
    assert_descriptor_invalid(media_type)


@pytest.mark.parametrize("media_type", ["a" * 1_000_000 + "/b", "a/" + ";" * 1_000_000])
def test_huge_media_type_is_refused_fast(media_type: str) -> None:
    started = time.perf_counter()
    assert "255" in str(assert_descriptor_invalid(media_type))
    assert time.perf_counter() - started < 0.1


restricted_name = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(RESTRICTED_FIRST),
    st.text(alphabet=RESTRICTED_CHARS, max_size=126),
)


@given(restricted_name, restricted_name)
def test_media_types_from_the_rfc_6838_grammar_are_accepted(kind: str, subtype: str) -> None:
    media_type = f"{kind}/{subtype}"
    assert validate_media_type(media_type) == media_type


@given(st.one_of(st.text(), st.builds("{}/{}".format, st.text(), st.text())))
def test_arbitrary_text_is_accepted_or_descriptor_invalid(text: str) -> None:
    try:
        accepted = validate_media_type(text)
    except DescriptorInvalid as error:
        assert type(error) is DescriptorInvalid
        return
    assert accepted == text
    kind, slash, subtype = text.partition("/")
    assert slash and 1 <= len(kind) <= 127 and 1 <= len(subtype) <= 127
    assert set(kind + subtype) <= set(RESTRICTED_CHARS)


@given(restricted_name, st.sampled_from(["; charset=utf-8", ";q=1", " ", "/x", "\n"]))
def test_anything_after_the_subtype_is_refused(kind: str, suffix: str) -> None:
    assert_descriptor_invalid(f"application/{kind}{suffix}")


# ----------------------------------------------------------------------------------------------
# The descriptor and the order of its checks


def test_valid_descriptor_is_returned() -> None:
    descriptor = Descriptor(DIGEST, 10, OCTET)
    assert validate_descriptor(descriptor) is descriptor


def test_construction_does_not_validate() -> None:
    # Entries read back from Redis are returned as written, whatever an older registry wrote.
    odd = Descriptor("not a digest", -5, "")
    assert (odd.digest, odd.size, odd.media_type) == ("not a digest", -5, "")
    anything = Descriptor(None, "ten", 3.5)  # type: ignore[arg-type]
    assert anything.size == "ten"


def test_descriptor_is_frozen() -> None:
    descriptor = Descriptor(DIGEST, 10, OCTET)
    for field, value in (("digest", "sha256:" + "0" * 64), ("size", 11), ("media_type", "a/b")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(descriptor, field, value)
    with pytest.raises((AttributeError, TypeError)):
        descriptor.urls = []  # type: ignore[attr-defined]
    assert descriptor == Descriptor(DIGEST, 10, OCTET)


def test_descriptor_equality_and_hash_are_by_value() -> None:
    assert Descriptor(DIGEST, 10, OCTET) == Descriptor(DIGEST, 10, OCTET)
    assert Descriptor(DIGEST, 10, OCTET) != Descriptor(DIGEST, 11, OCTET)
    assert len({Descriptor(DIGEST, 10, OCTET), Descriptor(DIGEST, 10, OCTET)}) == 1


def test_as_dict_uses_the_registry_field_names() -> None:
    assert Descriptor(DIGEST, 10, OCTET).as_dict() == {
        "digest": DIGEST,
        "size": 10,
        "mediaType": OCTET,
    }


@pytest.mark.parametrize(
    ("descriptor", "error_class"),
    [
        # Digest before size before media type, as the registry's ValidateDescriptor.
        (Descriptor("", -1, ""), DigestInvalidFormat),
        (Descriptor("sha384:abc", True, "text/plain; x=y"), DigestInvalidLength),
        (Descriptor(DIGEST, -1, ""), SizeInvalid),
        (Descriptor(DIGEST, 1.0, "a"), SizeInvalid),  # type: ignore[arg-type]
        (Descriptor(DIGEST, None, None), SizeInvalid),  # type: ignore[arg-type]
        (Descriptor(DIGEST, 0, ""), DescriptorInvalid),
        (Descriptor(DIGEST, SIZE_MAX, "text/plain; charset=utf-8"), DescriptorInvalid),
    ],
)
def test_validation_order(descriptor: Descriptor, error_class: type[Exception]) -> None:
    with pytest.raises(error_class) as caught:
        validate_descriptor(descriptor)
    assert type(caught.value) is error_class


@pytest.mark.parametrize("value", [None, (DIGEST, 10, OCTET), {"digest": DIGEST}])
def test_a_non_descriptor_is_descriptor_invalid(value: object) -> None:
    with pytest.raises(DescriptorInvalid) as caught:
        validate_descriptor(value)  # type: ignore[arg-type]
    assert type(caught.value) is DescriptorInvalid
