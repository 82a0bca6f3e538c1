"""Reconciliation and the receiver end to end: the real registry 2.8, its garbage collector,
its notifications.

Each scenario first shows the flaw on the real binary (the control), then shows blobcache
closing it: stale entries after ``garbage-collect`` (reconcile), a deleted blob revived through
another repository (the notifications receiver, run as a real server the registry posts to),
and a healthy registry on which reconciliation changes nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import port_for
import pytest
import redis
from mirakuru import TCPExecutor

from blobcache.api.notifications import EVENTS_MEDIA_TYPE
from blobcache.reconcile import reconcile
from tests.helpers.reconcile_report import (
    report_after_garbage_collect,
    report_clearing_nothing,
    run_reconcile_json,
)
from tests.helpers.storage_tree import ALPINE, APP
from tests.interop.registry import (
    NotificationEndpoint,
    RegistryFactory,
    RegistryServer,
    assert_pulls_every_byte,
    make_image,
    push_healthy_images,
)
from tests.redis_state import dump

# The registry 2.8 under test reaches a single Redis only (no Sentinel, no Cluster).
pytestmark = [pytest.mark.interop, pytest.mark.standalone]

SECRET = "interop-notifications-secret"
PROJECT_DIR = Path(__file__).resolve().parents[2]


def run_reconcile(storage_root: Path, *args: str) -> dict[str, Any]:
    """``blobcache_reconcile --storage-root <root> --format json`` in this process, parsed."""
    return run_reconcile_json("--storage-root", str(storage_root), *args)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# --- Scenario 1: garbage-collect, then reconcile ------------------------------------------------


def test_reconcile_after_garbage_collect_unblocks_pushes_and_pulls(
    registry: RegistryServer, redis_client: redis.Redis
) -> None:
    client = registry.client
    image = make_image("swept by the garbage collector, then pushed again\n")
    layer, config = image.layer_digests[0], image.config_digest
    manifest = client.push_image(ALPINE, "latest", image)
    assert_pulls_every_byte(client, ALPINE, image)
    assert client.delete_manifest(ALPINE, manifest).status == 202

    swept = registry.garbage_collect(delete_untagged=True)
    assert f"blob eligible for deletion: {layer}" in swept.stdout
    assert not registry.storage_root.joinpath(
        "docker/registry/v2/blobs/sha256", layer[7:9], layer[7:], "data"
    ).exists()
    registry.restart()

    # The control: the flaw is real. A client asking whether the layer exists (to skip its
    # upload) hears yes, and a pull gets the headers and no bytes.
    assert client.head_blob(ALPINE, layer).status == 200
    truncated = client.get_blob(ALPINE, layer)
    assert (truncated.status, truncated.complete) == (200, False)
    assert len(truncated.body) < len(image.layers[0])

    before = dump(redis_client)
    dry = run_reconcile(registry.storage_root, "--dry-run")
    assert dump(redis_client) == before
    result = run_reconcile(registry.storage_root)
    assert dry == {**result, "dry_run": True}
    # GC left library/alpine's _layers links behind and swept the data they point to.
    assert result == report_after_garbage_collect(
        layer=layer,
        config=config,
        manifest=manifest,
        # One system call each: the two members' link and data, walked and re-checked; the
        # three global entries' data, walked and re-checked.
        storage_requests=2 * 2 * 2 + 3 * 2,
    )
    assert dump(redis_client) == {}

    assert client.head_blob(ALPINE, layer).status == 404
    assert client.get_blob(ALPINE, layer).status == 404
    # A client now uploads the layer again, and the pull returns every byte.
    assert client.push_image(ALPINE, "latest", image) == manifest
    assert_pulls_every_byte(client, ALPINE, image)


# --- Scenario 2: the notifications receiver -----------------------------------------------------


class BlobcacheServer:
    """The demo project under gunicorn, on the test Redis, reachable by the registry."""

    def __init__(self, workdir: Path, redis_url: str) -> None:
        self.port = port_for.select_random()
        self.log_path = workdir / "gunicorn.log"
        environment = {
            **os.environ,
            "REDIS_URL": redis_url,
            "BLOBCACHE_NOTIFICATIONS_SECRET": SECRET,
            "DJANGO_DB_PATH": str(workdir / "db.sqlite3"),
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_LOG_LEVEL": "INFO",
        }
        self._log = self.log_path.open("ab")
        self.executor = TCPExecutor(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "project.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", "1",
                "--chdir", str(PROJECT_DIR),
                "--no-control-socket",  # not in the user's ~/.gunicorn
            ],
            host="127.0.0.1",
            port=self.port,
            timeout=30,
            envvars=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def notifications_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/notifications"

    def start(self) -> None:
        self.executor.start()
        # Django imports the URL conf and the API on the first request, which can take longer
        # than the registry's 1 s notification timeout: pay for it here, and check the secret.
        warm_up = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            warm_up.request(
                "POST",
                "/api/notifications",
                body=json.dumps({"events": []}),
                headers={"Content-Type": EVENTS_MEDIA_TYPE, "Authorization": SECRET},
            )
            answer = warm_up.getresponse()
            assert (answer.status, json.loads(answer.read())["events"]) == (200, 0)
        finally:
            warm_up.close()

    def stop(self) -> None:
        self.executor.stop()
        self._log.close()


@pytest.fixture()
def blobcache_server(tmp_path: Path, redis_url: str) -> Iterator[BlobcacheServer]:
    server = BlobcacheServer(tmp_path, redis_url)
    server.start()
    yield server
    server.stop()
    print(f"--- {server.log_path} ---\n{server.log_path.read_text(errors='replace')[-5000:]}")


@pytest.mark.parametrize("receiver", [True, False], ids=["receiver", "control"])
def test_deleted_blob_stays_deleted_with_the_receiver(
    request: pytest.FixtureRequest,
    registry_factory: RegistryFactory,
    redis_client: redis.Redis,
    receiver: bool,
) -> None:
    endpoints = []
    if receiver:
        server: BlobcacheServer = request.getfixturevalue("blobcache_server")
        endpoints = [
            NotificationEndpoint(url=server.notifications_url, headers={"Authorization": SECRET})
        ]
    client = registry_factory(notifications=endpoints).client
    blob = b"a layer two repositories share, deleted from one of them\n"
    digest = client.push_blob(ALPINE, blob)
    assert client.mount_blob(APP, digest, source=ALPINE).status == 201
    assert client.head_blob(APP, digest).status == 200  # the read-through fill for team/app
    assert redis_client.smembers(f"repository::{APP}::blobs") == {digest}

    assert client.delete_blob(APP, digest).status == 202
    if receiver:
        # The registry posts the delete event asynchronously; the receiver clears team/app's
        # membership and repository hash (3.1+ semantics).
        wait_until(
            lambda: redis_client.exists(
                f"repository::{APP}::blobs", f"repository::{APP}::blobs::{digest}"
            )
            == 0,
            "the receiver to clear team/app's entry",
        )
    else:
        # Without it, the registry's own DELETE leaves team/app's membership behind.
        assert redis_client.smembers(f"repository::{APP}::blobs") == {digest}

    # A read in library/alpine refills the shared global descriptor.
    shared = client.get_blob(ALPINE, digest)
    assert (shared.status, shared.body) == (200, blob)
    assert redis_client.hgetall(f"blobs::{digest}")["size"] == str(len(blob))

    revived = client.head_blob(APP, digest)
    if receiver:
        assert revived.status == 404
        assert client.get_blob(APP, digest).status == 404
        assert client.delete_blob(APP, digest).status == 404
    else:
        # The control: the blob deleted from team/app is served there again.
        assert revived.status == 200
        assert client.get_blob(APP, digest).body == blob


# --- Scenario 3: a healthy registry -------------------------------------------------------------


def test_reconcile_on_a_healthy_registry_clears_nothing(
    registry: RegistryServer, redis_client: redis.Redis
) -> None:
    client = registry.client
    first, second = push_healthy_images(client, ALPINE, APP)

    before = dump(redis_client)
    # Every shape the registry writes: global hashes of blobs and (read by tag) manifests, the
    # memberships, and the repository hashes, including the mounted layer's in team/app.
    alpine_blobs = [first.config_digest, first.layer_digests[0]]
    app_blobs = [second.config_digest, second.layer_digests[0], first.layer_digests[0]]
    manifests = [first.manifest_digest, second.manifest_digest]
    assert set(before) == {
        *(f"blobs::{digest}" for digest in {*alpine_blobs, *app_blobs, *manifests}),
        f"repository::{ALPINE}::blobs",
        f"repository::{APP}::blobs",
        *(f"repository::{ALPINE}::blobs::{digest}" for digest in alpine_blobs),
        *(f"repository::{APP}::blobs::{digest}" for digest in app_blobs),
    }
    # A link and the data of each of the five memberships, the data of the six globals.
    nothing = report_clearing_nothing(storage_requests=5 * 2 + 6)
    assert run_reconcile(registry.storage_root, "--dry-run") == {**nothing, "dry_run": True}
    assert run_reconcile(registry.storage_root) == nothing
    for repository in (ALPINE, APP):
        scoped = reconcile(registry.storage_root, repository=repository)
        assert (scoped.cleared, scoped.keys_deleted) == (0, 0)
    assert dump(redis_client) == before
    assert_pulls_every_byte(client, ALPINE, first)


def test_reconcile_keeps_a_blob_pushed_under_its_sha512_digest(
    registry: RegistryServer, redis_client: redis.Redis
) -> None:
    """The registry stores the data under sha256 only and links the sha512 digest to it."""
    client = registry.client
    data = b"a layer pushed under its sha512 digest\n"
    alias = "sha512:" + hashlib.sha512(data).hexdigest()
    canonical = client.push_blob(APP, data, as_digest=alias)
    link = registry.storage_root.joinpath(
        "docker/registry/v2/repositories", APP, "_layers/sha512", alias[7:], "link"
    )
    assert link.read_text() == canonical
    assert not registry.storage_root.joinpath("docker/registry/v2/blobs/sha512").exists()
    assert client.head_blob(APP, alias).status == 200
    before = dump(redis_client)
    assert redis_client.smembers(f"repository::{APP}::blobs") == {alias, canonical}

    result = run_reconcile(registry.storage_root)
    assert (result["cleared"], result["keys_deleted"], result["digests"]) == (0, 0, [])
    assert dump(redis_client) == before
    assert client.get_blob(APP, alias).body == data
