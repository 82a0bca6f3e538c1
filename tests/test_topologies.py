"""The registry conformance suite and the 3.1 regression test on Sentinel and Cluster."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from blobcache import Descriptor, get_descriptor_cache
from blobcache.exceptions import BlobUnknown
from blobcache.testing import Topology, start_cluster, start_sentinel
from tests import test_cache as contract
from tests.topologies import django_settings_for, flush, raw_client_for


@pytest.fixture(scope="module", params=["sentinel", "cluster"])
def topology(request: Any, tmp_path_factory: Any) -> Iterator[Topology]:
    start = start_sentinel if request.param == "sentinel" else start_cluster
    running = start(tmp_path_factory.mktemp(request.param))
    yield running
    running.stop()


@pytest.fixture()
def topo_client(topology: Topology) -> Iterator[Any]:
    client = raw_client_for(topology)
    flush(client)
    with override_settings(**django_settings_for(topology)):
        yield client
    client.close()


def test_conformance(topo_client: Any) -> None:
    contract.TestConformance().test_suite(get_descriptor_cache())


def test_revocation(topo_client: Any) -> None:
    contract.test_repository_clear_revokes_membership(get_descriptor_cache(), topo_client)


def test_state_after_alias_write(topo_client: Any) -> None:
    l1 = "sha384:abc1" + "1" * 92
    c1 = "sha256:abc1" + "1" * 60
    cache = get_descriptor_cache()
    cache.repository_scoped("foo/bar").set_descriptor(l1, Descriptor(c1, 10, "a/b"))
    for digest in (l1, c1):
        assert topo_client.hgetall(f"blobs::{digest}") == {
            "digest": c1, "size": "10", "mediatype": "a/b"
        }
        assert topo_client.hgetall(f"repository::foo/bar::blobs::{digest}") == {
            "mediatype": "a/b"
        }
    assert topo_client.smembers("repository::foo/bar::blobs") == {l1, c1}
    cache.repository_scoped("foo/bar").clear(l1)
    with pytest.raises(BlobUnknown):
        cache.repository_scoped("foo/bar").stat(l1)
    assert topo_client.smembers("repository::foo/bar::blobs") == {c1}
