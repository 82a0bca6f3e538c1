"""Repository names: distribution/reference v0.6.0's router grammar (``WithName``), examples,
properties."""

from __future__ import annotations

import itertools
import re
import time

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from blobcache import reference
from blobcache.exceptions import BlobCacheError, NameInvalid
from blobcache.reference import split_domain, validate_repository_name

HEX64 = "0123456789abcdef" * 4

# Names distribution/reference v0.6.0 accepts. The last three are valid since v0.6.0 only, which
# counts the 255-character limit after the domain.
VALID = [
    "foo/bar",
    "library/ubuntu",
    "ubuntu",
    "a",
    "a/b/c/d/e",
    "foo-bar/baz_qux",
    "foo__bar/b",
    "foo---bar/b",
    "a.b/c",
    "localhost/foo",
    "localhost:5000/foo/bar",
    "registry.example.com:443/team/app",
    "[::1]:5000/foo",
    "127.0.0.1/x",
    "Foo/bar",
    "Docker.io/foo",
    "x/" + "a" * 253,
    "z" * 247,
    "example.com/" + "a" * 255,
]

# Names blobcache rejects, as reference v0.6.0 does. 64 hex characters pass the router's WithName
# but not ParseNormalizedNamed; the tagged and digested references at the end are accepted by the
# registry's RepositoryScoped (ParseNormalizedNamed) but never produced by its router, so
# blobcache rejects them.
INVALID = [
    "",
    "foo/Bar",
    "foo/",
    "/foo",
    "foo//bar",
    "-foo/bar",
    "foo-/bar",
    "foo/bar-",
    "foo.-bar/x",
    "foo___bar/x",
    "foo..bar/x",
    "foo bar",
    "foo/b\u00e4r",
    "foo:bar/baz",
    "a" * 64,
    "z" * 248,
    "x/" + "a" * 254,
    "foo/bar:latest",
    "foo/bar@sha256:" + HEX64,
]


def assert_invalid(name: object) -> NameInvalid:
    with pytest.raises(NameInvalid) as caught:
        validate_repository_name(name)
    assert type(caught.value) is NameInvalid
    assert caught.value.code == "NAME_INVALID"
    assert isinstance(caught.value, BlobCacheError)
    return caught.value


def test_the_example_tables_are_complete() -> None:
    assert len(VALID) == 19
    assert len(INVALID) == 19


@pytest.mark.parametrize("name", VALID)
def test_valid_name_is_returned_verbatim(name: str) -> None:
    # Verbatim matters: the registry's keys use the raw name, never a normalised one.
    assert validate_repository_name(name) is name


@pytest.mark.parametrize("name", INVALID)
def test_invalid_name_is_rejected(name: str) -> None:
    error = assert_invalid(name)
    assert str(error)


@pytest.mark.parametrize(
    "name",
    [
        "foo:5000",  # read as name `foo` tag `5000` by ParseNormalizedNamed; not a route name
        "ubuntu:latest",
        "localhost:5000/foo:1.0",
        "foo/bar@sha256:" + "a" * 64,
        "foo/bar:latest@sha256:" + "a" * 64,
        "foo@sha256:" + "a" * 64,
    ],
)
def test_tag_and_digest_suffixes_are_rejected(name: str) -> None:
    assert_invalid(name)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        # A one-component name lives on Docker Hub as `library/<name>`: 8 characters count.
        ("z" * 247, True),
        ("z" * 248, False),
        ("library/" + "z" * 247, True),
        ("library/" + "z" * 248, False),
        ("docker.io/" + "z" * 247, True),
        ("docker.io/" + "z" * 248, False),
        ("index.docker.io/" + "z" * 247, True),
        ("index.docker.io/" + "z" * 248, False),
        # Two or more components on Docker Hub: the whole name counts.
        ("x/" + "a" * 253, True),
        ("x/" + "a" * 254, False),
        ("a" * 100 + "/" + "b" * 154, True),
        ("a" * 100 + "/" + "b" * 155, False),
        # An explicit domain is not counted, however long.
        ("example.com/" + "a" * 255, True),
        ("example.com/" + "a" * 256, False),
        ("localhost/" + "a" * 255, True),
        ("localhost/" + "a" * 256, False),
        ("localhost:5000/" + "a" * 127 + "/" + "b" * 127, True),
        ("localhost:5000/" + "a" * 127 + "/" + "b" * 128, False),
        ("[::1]:5000/" + "a" * 255, True),
        ("Foo/" + "a" * 255, True),
        ("Foo/" + "a" * 256, False),
        ("registry.example.com:443/" + "a" * 255, True),
    ],
)
def test_length_rule_of_v0_6_0(name: str, valid: bool) -> None:
    if valid:
        assert validate_repository_name(name) == name
    else:
        error = assert_invalid(name)
        assert "255" in str(error)


@pytest.mark.parametrize(
    "name",
    [
        # No length limit applies to the domain in v0.6.0: only the path after it counts.
        "a" * 300 + ".example.com/foo",
        "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61 + ":65535/" + "e" * 255,
        "[" + "0:" * 300 + "1]:5000/foo",
    ],
)
def test_long_domains_are_not_counted(name: str) -> None:
    assert validate_repository_name(name) == name


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        # `a_b.c` holds a dot, so it is split off as a domain, but it is no valid domain (no `_`
        # in host names); reference.Parse then reads the whole string as the path and counts it.
        ("a_b.c/" + "a" * 249, True),
        ("a_b.c/" + "a" * 250, False),
        ("a__b.c/d/" + "e" * 246, True),
        ("a__b.c/d/" + "e" * 247, False),
    ],
)
def test_path_length_of_a_first_component_that_is_no_valid_domain(name: str, valid: bool) -> None:
    assert len(name) == (255 if valid else 256)
    if valid:
        assert validate_repository_name(name) == name
    else:
        assert_invalid(name)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        # The router's grammar takes `[0]` for an IPv6 domain; ParseNormalizedNamed sees no `:`,
        # keeps it in a docker.io path and fails on the brackets, so the registry rejects it.
        ("[0]/foo", False),
        ("[abc]/foo", False),
        ("[0]:5000/foo", True),
        ("[::1]/foo", True),
        ("[ABC]/foo", True),
    ],
)
def test_bracketed_first_component_needs_a_colon_or_upper_case(name: str, valid: bool) -> None:
    if valid:
        assert validate_repository_name(name) == name
    else:
        assert_invalid(name)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a" * 64, False),
        (HEX64, False),
        ("a" * 63, True),
        ("a" * 65, True),
        ("a" * 64 + "/b", True),
        ("b/" + "a" * 64, True),
        ("localhost/" + "a" * 64, True),
        ("A" * 64, False),  # upper case is no hex identifier, but no valid path either
        ("g" * 64, True),
    ],
)
def test_sixty_four_hex_rule(name: str, valid: bool) -> None:
    if valid:
        assert validate_repository_name(name) == name
    else:
        assert_invalid(name)


def test_sixty_four_hex_message_names_the_rule() -> None:
    assert "64-byte hexadecimal" in str(assert_invalid(HEX64))


@pytest.mark.parametrize("value", [None, 1, b"foo/bar", ["foo"], 1.0])
def test_non_string_is_rejected(value: object) -> None:
    assert type(value).__name__ in str(assert_invalid(value))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ubuntu", ("docker.io", "library/ubuntu")),
        ("foo/bar", ("docker.io", "foo/bar")),
        ("docker.io/foo", ("docker.io", "library/foo")),
        ("index.docker.io/foo/bar", ("docker.io", "foo/bar")),
        ("localhost/foo", ("localhost", "foo")),
        ("localhost:5000/foo/bar", ("localhost:5000", "foo/bar")),
        ("Foo/bar", ("Foo", "bar")),
        ("a.b/c", ("a.b", "c")),
        ("[::1]:5000/foo", ("[::1]:5000", "foo")),
    ],
)
def test_split_domain(name: str, expected: tuple[str, str]) -> None:
    assert split_domain(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "a" * 1_000_000,
        "a/" * 500_000,
        "a" * 1_000_000 + "/b",
        "a" * 1_000_000 + "!/b",
        "a." * 500_000 + "/b",
        "a-" * 500_000 + "a/b",
        "a/" + "b" * 1_000_000,
        "\u00e4" * 1_000_000,
        "a" * 500_000 + ".com/" + "b" * 500_000,
        "a-b." * 250_000 + "-/b",
        "a.-" * 333_333 + "/b",
        "a_" * 500_000 + "/b",
    ],
)
def test_huge_input_answers_fast(name: str) -> None:
    # A backtracking grammar took up to 0.26 s here; without backtracking it is under 0.03 s.
    started = time.perf_counter()
    assert_invalid(name)
    assert time.perf_counter() - started < 0.2


@pytest.mark.parametrize(
    "name",
    ["a" * 1_000_000 + ".com/b", "[" + ":" * 1_000_000 + "]/a", "A" * 1_000_000 + "/b"],
)
def test_huge_domain_with_short_path_answers_fast(name: str) -> None:
    started = time.perf_counter()
    assert validate_repository_name(name) == name
    assert time.perf_counter() - started < 0.5


# ----------------------------------------------------------------------------------------------
# Properties

alphanumeric = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
separator = st.one_of(st.sampled_from([".", "_", "__"]), st.integers(1, 4).map(lambda n: "-" * n))


@st.composite
def path_components(draw: st.DrawFn) -> str:
    parts = [draw(alphanumeric)]
    for _ in range(draw(st.integers(0, 4))):
        parts += [draw(separator), draw(alphanumeric)]
    return "".join(parts)[:60].rstrip("._-")


domain_letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
domain_component = st.one_of(
    st.sampled_from(domain_letters),
    st.builds(
        lambda first, middle, last: first + middle + last,
        st.sampled_from(domain_letters),
        st.text(alphabet=domain_letters + "-", max_size=20),
        st.sampled_from(domain_letters),
    ),
)
host = st.one_of(
    st.just("localhost"),
    st.lists(domain_component, min_size=1, max_size=4).map(".".join),
    st.text(alphabet="0123456789abcdefABCDEF:", min_size=1, max_size=39).map(lambda h: f"[{h}]"),
)
port = st.integers(0, 99999).map(str)


@st.composite
def domains(draw: st.DrawFn) -> str:
    name = draw(host)
    chosen_port = draw(st.none() | port)
    looks_like_domain = "." in name or ":" in name or name == "localhost" or name != name.lower()
    if chosen_port is None and not looks_like_domain:
        # `foo/bar` is a Docker Hub path, not domain `foo` (and `[0]/bar` is no name at all for
        # ParseNormalizedNamed); a port makes the first component a domain again.
        chosen_port = draw(port)
    return name if chosen_port is None else f"{name}:{chosen_port}"


@st.composite
def grammar_names(draw: st.DrawFn) -> str:
    """Names from the grammar whose path, however the domain is split off, is at most 255."""
    domain = draw(st.none() | domains())
    parts = draw(st.lists(path_components(), min_size=1, max_size=10))
    # With a domain only the path counts (255); without one the name may become `library/<x>`.
    limit = 255 if domain else 247
    while len("/".join(parts)) > limit:
        parts.pop()
    path = "/".join(parts)
    name = f"{domain}/{path}" if domain else path
    assume(not (domain is None and len(name) == 64 and set(name) <= set("0123456789abcdef")))
    return name


@given(grammar_names())
def test_names_from_the_grammar_are_accepted(name: str) -> None:
    assert validate_repository_name(name) is name
    domain, path = split_domain(name)
    assert len(path) <= 255


@given(domains(), st.integers(1, 300))
def test_path_after_an_explicit_domain_may_reach_255(domain: str, length: int) -> None:
    name = f"{domain}/" + "a" * length
    if length <= 255:
        assert validate_repository_name(name) == name
    else:
        assert_invalid(name)


tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(grammar_names(), tags)
def test_a_tag_suffix_is_rejected(name: str, tag: str) -> None:
    assert_invalid(f"{name}:{tag}")


@given(grammar_names(), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_a_digest_suffix_is_rejected(name: str, encoded: str) -> None:
    assert_invalid(f"{name}@sha256:{encoded}")


@given(grammar_names(), st.sampled_from(["{}/", "/{}", "{}//x", "{} ", " {}", "{}\n", "{}/-x"]))
def test_broken_slashes_and_spaces_are_rejected(name: str, shape: str) -> None:
    assert_invalid(shape.format(name))


@given(grammar_names(), st.data())
def test_upper_case_in_the_last_path_component_is_rejected(name: str, data: st.DataObject) -> None:
    head, slash, last = name.rpartition("/")
    letters = [index for index, char in enumerate(last) if char.isalpha()]
    assume(letters)
    index = data.draw(st.sampled_from(letters))
    mutated = head + slash + last[:index] + last[index].upper() + last[index + 1 :]
    assert_invalid(mutated)


name_like = st.lists(
    st.one_of(path_components(), domains(), st.text(max_size=6)), min_size=1, max_size=5
).map("/".join)


@given(st.one_of(st.text(), name_like))
def test_arbitrary_text_is_accepted_or_name_invalid(text: str) -> None:
    try:
        accepted = validate_repository_name(text)
    except NameInvalid as error:
        assert error.code == "NAME_INVALID"
        return
    assert accepted is text
    # Whatever passes is plain ASCII without whitespace, empty components or dangling slashes.
    assert text.isascii()
    assert not any(char.isspace() for char in text)
    assert "//" not in text and not text.startswith("/") and not text.endswith("/")
    assert "@" not in text
    assert len(split_domain(text)[1]) <= 255


# The v0.6.0 grammar spelled out plainly from reference's regexp.go, as a backtracking regex: the
# module's possessive rewrite must accept exactly the same strings.
_PLAIN_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PLAIN_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PLAIN_DOMAIN = rf"(?:{_PLAIN_HOST_PART}(?:\.{_PLAIN_HOST_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
PLAIN = {
    "_NAME": re.compile(rf"(?:{_PLAIN_DOMAIN}/)?{_PLAIN_COMPONENT}(?:/{_PLAIN_COMPONENT})*"),
    "_DOMAIN_ONLY": re.compile(_PLAIN_DOMAIN),
    "_PATH": re.compile(rf"{_PLAIN_COMPONENT}(?:/{_PLAIN_COMPONENT})*"),
}
grammar_pieces = st.sampled_from(
    ["a", "b", "0", "Z", ".", "_", "__", "___", "-", "--", ":", "5000", "/", "//", "[", "]"]
    + ["::1", "f", "localhost", "!", " ", "\u00e9", "A-", "-a", ".a", "a."]
)


@given(st.one_of(st.lists(grammar_pieces, max_size=16).map("".join), st.text(max_size=20)))
def test_the_fast_grammar_accepts_what_the_plain_grammar_accepts(text: str) -> None:
    for name, plain in PLAIN.items():
        fast = getattr(reference, name)
        assert bool(fast.fullmatch(text)) == bool(plain.fullmatch(text)), (name, text)


@pytest.mark.parametrize("length", range(0, 5))
def test_the_fast_grammar_on_every_short_string(length: int) -> None:
    alphabet = "aA0._-:/[]"
    for letters in itertools.product(alphabet, repeat=length):
        text = "".join(letters)
        for name, plain in PLAIN.items():
            assert bool(getattr(reference, name).fullmatch(text)) == bool(plain.fullmatch(text))
