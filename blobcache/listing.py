"""Paged walks over the registry's keys with SCAN/SSCAN, cheap for Redis and exact for clients.

Cheap: one page makes at most ``MAX_SCAN_CALLS`` SCAN/SSCAN calls with a COUNT of at most
``MAX_SCAN_COUNT`` (about a millisecond of Redis time in all), then one pipeline for the page's
details. A sparse keyspace (300,000 ``blobs::`` hashes and three repositories) therefore
answers short or empty pages with a next position instead of holding Redis's single thread.

Exact: a page never holds more than ``page_size`` items, yet a walk still returns every element
present for the whole walk at least once. A SCAN call from cursor ``c`` that returns cursor
``e`` reports every element whose bucket lies between ``c`` and ``e`` in SCAN's reverse-binary
order, and that order does not depend on the table's size (a cursor read with its bits reversed
is a fraction of the hash space). When a reply holds more than the page has room for, its
elements are ordered by a hash of their bytes and the position keeps ``c``, the end ``e`` and
the sort key of the last element returned; the next page asks SCAN from ``c`` again and goes on
after that key. A stable element of the repeated reply whose key is below it was returned
before, as long as the walk continues from the nearest end any of those replies had, which is
what ``ScanPosition.end`` records. Duplicates remain possible, as with SCAN itself.

On Redis Cluster a member listing works as on one server (a set lives on one node); the
repository listing walks the primaries in name order, the position carrying the node's index.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis import exceptions as redis_errors

from blobcache import keys
from blobcache.cache import (
    DescriptorCache,
    RepositoryScopedCache,
    descriptor_from_fields,
    translate_redis_errors,
)
from blobcache.descriptor import Descriptor
from blobcache.exceptions import BlobUnknown, DescriptorCorrupt, NameInvalid
from blobcache.reference import validate_repository_name
from blobcache.store.base import Scan

T = TypeVar("T")

#: SCAN/SSCAN calls one page may make before it answers, short or even empty.
MAX_SCAN_CALLS = 4
#: The largest COUNT sent. SCAN looks at about COUNT keys, about a microsecond each on a busy
#: server, while every other client waits: four calls of 250 cost Redis about a millisecond per
#: page, and no client waits behind a listing for more than a quarter of one.
MAX_SCAN_COUNT = 250
#: The largest page: the surplus of a SCAN reply is carried in the position, never returned.
MAX_PAGE_SIZE = 1000

#: Redis cursors are unsigned 64-bit integers.
_CURSOR_BITS = 64
_SORT_KEY_BYTES = 16
_POSITION_VERSION = 1
# version, node, cursor, end, count, flags; then the sort key when the flag says so.
_POSITION_HEAD = struct.Struct(">BHQQHB")
_HAS_END = 1
_HAS_AFTER = 2



class PositionInvalid(ValueError):
    """A position token that no page produced (edited, truncated, or from another version)."""


@dataclass(frozen=True, slots=True)
class ScanPosition:
    """Where a walk stands; ``encode()`` gives the opaque text a client sends back."""

    #: Cluster: index of the primary (in name order) being walked; 0 elsewhere.
    node: int = 0
    #: The Redis cursor the current SCAN step starts from.
    cursor: int = 0
    #: The nearest end cursor a reply of this step had, when the step is partly returned.
    end: int | None = None
    #: COUNT of the current step (repeated so that its reply covers the same buckets), or the
    #: next step's when ``after`` is empty; 0 lets the page size choose.
    count: int = 0
    #: Sort key of the last element returned from the current step.
    after: bytes = b""

    def encode(self) -> str:
        flags = (_HAS_END if self.end is not None else 0) | (_HAS_AFTER if self.after else 0)
        raw = _POSITION_HEAD.pack(
            _POSITION_VERSION, self.node, self.cursor, self.end or 0, self.count, flags
        )
        return base64.urlsafe_b64encode(raw + self.after).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> ScanPosition:
        """Parse ``encode()``'s text; raises ``PositionInvalid`` for anything else."""
        if not text.isascii() or len(text) > 64:
            raise PositionInvalid("not a position")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError) as error:
            raise PositionInvalid("not base64") from error
        if len(raw) < _POSITION_HEAD.size:
            raise PositionInvalid("too short")
        version, node, cursor, end, count, flags = _POSITION_HEAD.unpack_from(raw)
        after = raw[_POSITION_HEAD.size :]
        expected = _SORT_KEY_BYTES if flags & _HAS_AFTER else 0
        if (
            version != _POSITION_VERSION
            or flags & ~(_HAS_END | _HAS_AFTER)
            or len(after) != expected
            or count > MAX_SCAN_COUNT
            or (after and (not flags & _HAS_END or count == 0))
        ):
            raise PositionInvalid("not a position of this version")
        position = cls(node, cursor, end if flags & _HAS_END else None, count, after)
        if position.encode() != text:
            raise PositionInvalid("not in canonical form")  # e.g. stray base64 padding bits
        return position


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    #: Where the walk continues; None when it is complete.
    next: ScanPosition | None


@dataclass(frozen=True, slots=True)
class Member:
    """A digest linked into a repository; ``descriptor`` is None for a miss or a corrupt entry."""

    digest: str
    descriptor: Descriptor | None


@dataclass(frozen=True, slots=True)
class RepositoryCount:
    name: str
    members: int


def sort_key(element: Any) -> bytes:
    """A fixed-size order for one reply's elements: the position stays short whatever the
    element (a name may be hundreds of bytes), and 128 bits never collide by accident."""
    data = element if isinstance(element, bytes) else str(element).encode("utf-8")
    return hashlib.blake2b(data, digest_size=_SORT_KEY_BYTES).digest()


def _reversed_bits(cursor: int) -> int:
    return int(f"{cursor:0{_CURSOR_BITS}b}"[::-1], 2)


def _end_order(end: int) -> int:
    """Where an end cursor lies in SCAN's order; 0 (the walk's end) lies after every cursor."""
    return 1 << _CURSOR_BITS if end == 0 else _reversed_bits(end)


def _next_count(count: int, batch: int) -> int:
    """Double COUNT where fewer than half the keys looked at matched (a keyspace of mostly
    ``blobs::`` hashes); 0 elsewhere, so that the next page sizes it to what it still needs."""
    return min(count * 2, MAX_SCAN_COUNT) if 2 * batch < count else 0


def walk(
    scan: Scan,
    nodes: int,
    position: ScanPosition,
    page_size: int,
    accept: Callable[[Any], bool] = lambda element: True,
) -> tuple[list[Any], ScanPosition | None]:
    """At most ``page_size`` elements that ``accept`` takes, from at most ``MAX_SCAN_CALLS``
    calls of ``scan``, and the position after them (None at the walk's end)."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    found: list[Any] = []
    for _ in range(MAX_SCAN_CALLS):
        room = page_size - len(found)
        if room <= 0 or position.node >= nodes:
            break
        count = position.count or min(room, MAX_SCAN_COUNT)
        end, batch = scan(position.node, position.cursor, count)
        end = int(end)
        ordered = sorted({sort_key(element): element for element in batch}.items())
        candidates = [
            (key, element) for key, element in ordered if key > position.after and accept(element)
        ]
        if position.end is not None and _end_order(position.end) < _end_order(end):
            end = position.end  # stable elements beyond the nearest end were not all seen
        if len(candidates) > room:
            found.extend(element for _, element in candidates[:room])
            return found, ScanPosition(
                position.node, position.cursor, end, count, candidates[room - 1][0]
            )
        found.extend(element for _, element in candidates)
        next_count = _next_count(count, len(batch))
        if end != 0:
            position = ScanPosition(position.node, end, count=next_count)
        else:
            position = ScanPosition(position.node + 1, count=next_count)
    return found, (position if position.node < nodes else None)


def list_members(
    scoped: RepositoryScopedCache, position: ScanPosition, page_size: int
) -> Page[Member]:
    """One page of a repository's members with their descriptors.

    The descriptors of the whole page come from one pipeline; a member reads as the
    repository-scoped ``stat`` would read it (3.x rules), with a miss or corrupt entry as None.
    """
    client = scoped.client
    membership_key = keys.membership_key(scoped.repository)

    def scan(node: int, at: int, count: int) -> tuple[int, Sequence[Any]]:
        return client.sscan(membership_key, cursor=at, count=count)  # type: ignore[no-any-return]

    with translate_redis_errors(client):
        raw_digests, following = walk(scan, 1, position, page_size)
        digests = [keys.key_text(digest) for digest in raw_digests]
        pipeline = client.pipeline(transaction=False)
        for digest in digests:
            pipeline.hmget(keys.global_key(digest), keys.DESCRIPTOR_FIELDS)
            pipeline.hget(keys.repository_key(scoped.repository, digest), keys.FIELD_MEDIA_TYPE)
        replies = pipeline.execute(raise_on_error=False) if digests else []
    members = [
        Member(digest, _member_descriptor(replies[2 * index], replies[2 * index + 1]))
        for index, digest in enumerate(digests)
    ]
    return Page(members, following)


def _member_descriptor(fields: Any, override: Any) -> Descriptor | None:
    if isinstance(fields, redis_errors.ResponseError) or isinstance(
        override, redis_errors.ResponseError
    ):
        return None  # a key of the wrong type: corrupt
    if override is None:
        return None  # 3.x: a member without its repository hash is a miss
    digest, size, media_type = fields
    try:
        return descriptor_from_fields(digest, size, media_type, override)
    except (BlobUnknown, DescriptorCorrupt):
        return None


def repository_name(key: Any) -> str | None:
    """The repository a membership key names, or None when the registry could not route it
    (not UTF-8, or not a valid name): every other route would refuse such a name."""
    try:
        text = key.decode("utf-8") if isinstance(key, bytes) else str(key)
        return validate_repository_name(keys.repository_of_membership_key(text))
    except (UnicodeDecodeError, NameInvalid):
        return None


def list_repositories(
    cache: DescriptorCache, position: ScanPosition, page_size: int, *, names: str = "*"
) -> Page[RepositoryCount]:
    """One page of repository names (from their membership sets) with their member counts.

    ``names`` is a SCAN MATCH glob over repository names (escape literal text with
    ``keys.glob_escape``); Redis filters while it walks, so a filter costs no extra round trip.
    """
    client = cache.client
    pattern = keys.membership_key(names)
    with translate_redis_errors(client):
        scan, nodes = cache.store.set_scan(pattern)
        raw_keys, following = walk(
            scan, nodes, position, page_size, accept=lambda key: repository_name(key) is not None
        )
        pipeline = client.pipeline(transaction=False)
        for key in raw_keys:
            pipeline.scard(key)
        counts = pipeline.execute(raise_on_error=False) if raw_keys else []
    repositories = [
        RepositoryCount(name, members)
        for key, members in zip(raw_keys, counts, strict=True)
        if (name := repository_name(key)) is not None
        # A set removed (or replaced) since SCAN saw it no longer names a repository.
        and isinstance(members, int)
        and members > 0
    ]
    return Page(repositories, following)
