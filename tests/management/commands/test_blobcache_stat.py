"""``blobcache_stat`` through call_command, with exact output and exit statuses."""

from __future__ import annotations

import json

import pytest
import redis

from blobcache import Descriptor
from blobcache.cache import DescriptorCache
from tests.helpers.commands import run
from tests.helpers.entries import CONFIG, D1, D2, D3, LAYER

D384 = "sha384:" + "1" * 96


@pytest.fixture()
def entries(cache: DescriptorCache, redis_client: redis.Redis) -> None:
    cache.set_descriptor(D1, Descriptor(D1, 10, LAYER))
    cache.repository_scoped("foo/bar").set_descriptor(D2, Descriptor(D2, 20, LAYER))
    cache.repository_scoped("foo/bar").set_descriptor(D2, Descriptor(D2, 20, CONFIG))
    cache.set_descriptor(D384, Descriptor(D1, 10, LAYER))  # an alias entry


def test_text_output_of_hits(entries: None) -> None:
    outcome = run("blobcache_stat", D1, D384)
    assert outcome.status == 0
    assert outcome.stdout == (
        f"{D1} size=10 mediaType={LAYER}\n{D384} size=10 mediaType={LAYER} digest={D1}\n"
    )
    assert outcome.stderr == ""


def test_repository_scope_uses_the_override(entries: None) -> None:
    outcome = run("blobcache_stat", D2, "--repository", "foo/bar", "--format", "json")
    assert outcome.status == 0
    assert json.loads(outcome.stdout) == [{"digest": D2, "size": 20, "mediaType": CONFIG}]


def test_unknown_digests_still_print_the_others_and_exit_1(entries: None) -> None:
    outcome = run("blobcache_stat", D3, D1, "--format", "json")
    assert outcome.status == 1
    assert json.loads(outcome.stdout) == [None, {"digest": D1, "size": 10, "mediaType": LAYER}]
    assert outcome.stderr == f"{D3}: unknown blob\n1 of 2 digests unknown or unreadable\n"
    text = run("blobcache_stat", D3, D1)
    assert (text.status, text.stdout) == (1, f"{D1} size=10 mediaType={LAYER}\n")


def test_a_global_entry_is_not_a_repository_hit(entries: None) -> None:
    outcome = run("blobcache_stat", D1, "--repository", "foo/bar")
    assert (outcome.status, outcome.stdout) == (1, "")


def test_corrupt_entry_exits_1(redis_client: redis.Redis) -> None:
    redis_client.hset(f"blobs::{D1}", mapping={"digest": D1, "size": "ten"})
    outcome = run("blobcache_stat", D1, "--format", "json")
    assert outcome.status == 1
    assert outcome.stdout == "[null]\n"
    assert outcome.stderr.startswith(f"{D1}: corrupt entry: the cached size b'ten'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sha256:abc"], "'sha256:abc': invalid checksum digest length"),
        ([D1, "--repository", "Foo/Bar/"], "invalid reference format"),
        ([D1, "--format", "xml"], "Error: argument --format: invalid choice: 'xml'"),
        ([], "Error: the following arguments are required: DIGEST"),
    ],
)
def test_invalid_input_exits_2(redis_client: redis.Redis, args: list[str], message: str) -> None:
    outcome = run("blobcache_stat", *args)
    assert outcome.status == 2
    assert outcome.stdout == ""
    assert outcome.stderr.startswith(message)
