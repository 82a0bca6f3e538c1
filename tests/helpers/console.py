"""The operator console's addresses, and the entries and state its tests write and read."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from blobcache import Descriptor
from blobcache.cache import DescriptorCache
from tests.helpers.storage_tree import OCTET
from tests.redis_state import dump


def url(page: str, /, **query: str) -> str:
    location = "admin:blobcache_cacheddescriptor_" + page
    text = reverse(location)
    if query:
        text += "?" + urlencode(query)
    return text


def put(cache: DescriptorCache, repository: str | None, digest: str, media: str = OCTET) -> None:
    target = cache if repository is None else cache.repository_scoped(repository)
    target.set_descriptor(digest, Descriptor(digest, 42, media))


def values(client: Any) -> dict[str, Any]:
    """Every key and its value; the registry's keys never have a TTL."""
    state = dump(client)
    assert {ttl for _, _, ttl in state.values()} <= {-1}
    return {key: value for key, (_, value, _) in state.items()}
