"""The listings and a descriptor round trip through the API on a Redis Cluster (three primaries)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from blobcache.testing import Topology, django_settings_for, raw_client_for, start_cluster
from tests.helpers.api import OCTET, body, digest_of, walk

# Starts a cluster of its own; the topology parameter would only repeat it.
pytestmark = pytest.mark.standalone


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    running = start_cluster(Path(tmp_path_factory.mktemp("cluster")), replicas_per_master=0)
    yield running
    running.stop()


@pytest.fixture()
def on_cluster(cluster: Topology, api: APIClient) -> Iterator[Any]:
    client = raw_client_for(cluster)
    client.flushall(target_nodes=client.PRIMARIES)
    with override_settings(**django_settings_for(cluster)):
        yield client
    client.close()


def test_listings_walk_every_primary(api: APIClient, on_cluster: Any) -> None:
    names = {f"org/repo{n}" for n in range(120)}
    for index, name in enumerate(sorted(names)):
        path = f"/api/repositories/{name}/blobs/{digest_of(index)}"
        assert api.put(path, {"size": index, "mediaType": OCTET}, format="json").status_code == 201
    # The sets are spread over the three primaries; the walk must visit each of them.
    holders = {on_cluster.get_node_from_key(f"repository::{name}::blobs").name for name in names}
    assert len(holders) == 3
    pages = walk(api, "/api/repositories?page_size=25")
    listed = [item for page in pages for item in page]
    assert sorted(item["name"] for item in listed) == sorted(names)
    assert {item["members"] for item in listed} == {1}
    # A page goes on from one primary to the next; it never holds more than asked for.
    assert all(len(page) <= 25 for page in pages)
    assert len(pages) >= 5

    name = sorted(names)[7]
    assert api.get(f"/api/repositories/{name}/blobs").json() == {
        "results": [{"digest": digest_of(7), "descriptor": body(digest_of(7), 7, OCTET)}],
        "next": None,
    }
    assert api.delete(f"/api/repositories/{name}/blobs").json() == {"cleared": 1, "keys_deleted": 2}
    assert api.get(f"/api/repositories/{name}/blobs").json() == {"results": [], "next": None}


def test_bad_cursor_is_still_checked_before_redis(api: APIClient, on_cluster: Any) -> None:
    response = api.get(f"/api/repositories?cursor={2**64}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "CURSOR_INVALID"
