"""GET /api/metrics and GET /api/health in process: who may scrape, what a scrape shows, and
what the health probe answers while Redis answers, is frozen, and answers again."""

from __future__ import annotations

import base64
import datetime as dt
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from blobcache import statistics
from blobcache.models import AuditEntry
from blobcache.testing import caches_for, start_redis_process
from tests.helpers.api import envelope

TOKEN = "scrape-secret-1"


def blobcache_settings(**values: Any) -> Any:
    """The current BLOBCACHE (a topology's client factory included) with ``values`` on top."""
    return override_settings(BLOBCACHE={**(settings.BLOBCACHE or {}), **values})


def samples(response: Any) -> dict[str, float]:
    """``name{labels}`` -> value of a text-format scrape (labels sorted, as Prometheus keys)."""
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


class TestAccess:
    def test_off_without_token_or_users_even_for_a_superuser(self, api: APIClient) -> None:
        for path in ("/api/metrics", "/api/metrics/"):
            with blobcache_settings(METRICS_TOKEN=None, METRICS_ALLOW_USERS=False):
                response = api.get(path)
            assert response.status_code == 404
            assert response.json() == envelope("NOT_FOUND", f"no API route matches {path!r}")

    def test_off_when_metrics_are_switched_off(self, anonymous: APIClient) -> None:
        with blobcache_settings(METRICS=False, METRICS_TOKEN=TOKEN):
            response = anonymous.get("/api/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 404

    def test_token(self, anonymous: APIClient, superuser: User) -> None:
        basic = "Basic " + base64.b64encode(b"root:root-pw").decode()
        with blobcache_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOW_USERS=False):
            refused = anonymous.get("/api/metrics")
            assert refused.status_code == 401
            assert refused["WWW-Authenticate"] == 'Bearer realm="blobcache metrics"'
            assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
            wrong = anonymous.get("/api/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-2")
            assert wrong.status_code == 401
            assert wrong.json() == envelope(
                "UNAUTHORIZED", "the bearer token is not the metrics token"
            )
            # Users do not count unless METRICS_ALLOW_USERS says so, superusers included.
            assert anonymous.get("/api/metrics", HTTP_AUTHORIZATION=basic).status_code == 401
            good = anonymous.get("/api/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
            assert good.status_code == 200
            assert good["Content-Type"].startswith("text/plain; version=0.0.4")
            assert samples(good)["blobcache_redis_up"] == 1.0

    def test_users_with_the_view_permission(self, make_user: Any, anonymous: APIClient) -> None:
        reader = APIClient()
        reader.force_authenticate(make_user("view_descriptor"))
        writer = APIClient()
        writer.force_authenticate(make_user("change_descriptor", "delete_descriptor"))
        with blobcache_settings(METRICS_TOKEN=None, METRICS_ALLOW_USERS=True):
            assert reader.get("/api/metrics").status_code == 200
            denied = writer.get("/api/metrics")
            assert denied.status_code == 403
            assert denied.json()["errors"][0]["code"] == "DENIED"
            assert anonymous.get("/api/metrics").status_code == 401
            # No token configured: a bearer header is nobody's.
            assert anonymous.get(
                "/api/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
            ).status_code == 401

    def test_openmetrics_when_asked(self, anonymous: APIClient) -> None:
        with blobcache_settings(METRICS_TOKEN=TOKEN):
            response = anonymous.get(
                "/api/metrics",
                HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
                HTTP_ACCEPT="application/openmetrics-text; version=1.0.0",
            )
        assert response["Content-Type"].startswith("application/openmetrics-text")
        assert response.content.endswith(b"# EOF\n")


@pytest.mark.standalone
class TestScrape:
    def test_sizes_and_reconcile_from_the_database_and_no_scan(
        self, anonymous: APIClient, redis_client: Any, db: Any
    ) -> None:
        def scrape() -> dict[str, float]:
            with blobcache_settings(METRICS_TOKEN=TOKEN):
                response = anonymous.get("/api/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
            assert response.status_code == 200
            return samples(response)

        first = scrape()
        assert first["blobcache_reconcile_last_success_timestamp_seconds"] == 0.0
        assert "blobcache_descriptors" not in first  # no statistics run yet: no number at all

        redis_client.hset("blobs::sha256:" + "a" * 64, mapping={"digest": "x", "size": "1"})
        row = statistics.run()
        finished = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
        when = dt.datetime(2026, 5, 2, 3, 4, 5, tzinfo=dt.UTC)
        AuditEntry.objects.create(interface="command", operation="reconcile", timestamp=when)
        # Neither a dry run, nor a run over one repository, nor an interrupted one is a success.
        later = when + dt.timedelta(hours=1)
        AuditEntry.objects.create(
            interface="api", operation="reconcile", timestamp=later, dry_run=True
        )
        AuditEntry.objects.create(
            interface="api", operation="reconcile", timestamp=later, repository="team/app"
        )
        AuditEntry.objects.create(
            interface="api", operation="reconcile", timestamp=later, outcome="interrupted"
        )
        type(row).objects.filter(pk=row.pk).update(finished_at=finished)
        scans = redis_client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)
        second = scrape()
        assert redis_client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0) == scans
        assert second["blobcache_descriptors"] == 1.0
        assert second["blobcache_repositories"] == 0.0
        assert second["blobcache_memberships"] == 0.0
        assert second["blobcache_memory_bytes"] == float(row.memory_bytes)
        assert second["blobcache_stats_timestamp_seconds"] == finished.timestamp()
        assert second["blobcache_reconcile_last_success_timestamp_seconds"] == when.timestamp()


class TestHealth:
    def test_ok_on_every_topology(
        self, anonymous: APIClient, topology: Any, redis_client: Any
    ) -> None:
        response = anonymous.get("/api/health")
        assert response.status_code == 200
        body = response.json()
        assert (body["status"], body["redis"], body["topology"]) == ("ok", "ok", topology.kind)
        assert anonymous.get("/api/health/?live=1").json() == {"status": "ok"}
        bad = anonymous.get("/api/health?live=yes")
        assert bad.status_code == 400
        assert bad.json() == envelope("REQUEST_INVALID", "live must be 1 or 0, not 'yes'")

    @pytest.mark.standalone
    def test_the_eviction_warning_of_check_deploy(
        self, anonymous: APIClient, redis_client: Any
    ) -> None:
        before = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
        try:
            redis_client.config_set("maxmemory-policy", "noeviction")
            assert anonymous.get("/api/health").json() == {
                "status": "ok",
                "redis": "ok",
                "topology": "standalone",
                "warnings": [
                    {
                        "id": "blobcache.W002",
                        "message": "Redis maxmemory-policy is noeviction, not allkeys-lru.",
                    }
                ],
            }
            redis_client.config_set("maxmemory-policy", "allkeys-lru")
            assert anonymous.get("/api/health").json()["warnings"] == []
        finally:
            redis_client.config_set("maxmemory-policy", before)


@pytest.fixture()
def frozen_redis(tmp_path: Path, db: Any) -> Iterator[Any]:
    """A private server this test may freeze, with blobcache pointed at it (request it after
    the clients, whose ``redis_client`` points blobcache at the session's server)."""
    server = start_redis_process(tmp_path)
    try:
        with override_settings(CACHES=caches_for(f"redis://127.0.0.1:{server.port}/0")):
            yield server
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


@pytest.mark.standalone
def test_frozen_redis_is_503_and_redis_up_0_within_a_second(
    anonymous: APIClient, frozen_redis: Any
) -> None:
    def scrape_redis_up() -> float:
        with blobcache_settings(METRICS_TOKEN=TOKEN):
            response = anonymous.get("/api/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        return samples(response)["blobcache_redis_up"]

    assert anonymous.get("/api/health").status_code == 200
    assert scrape_redis_up() == 1.0
    os.kill(frozen_redis.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = anonymous.get("/api/health")
        assert time.monotonic() - started < 1.2
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        assert response.json() == {
            "status": "unavailable", "redis": "timeout", "topology": "standalone", "warnings": [],
        }
        started = time.monotonic()
        assert scrape_redis_up() == 0.0
        assert time.monotonic() - started < 1.2
        started = time.monotonic()
        assert anonymous.get("/api/health?live=1").json() == {"status": "ok"}
        assert time.monotonic() - started < 0.2
    finally:
        os.kill(frozen_redis.process.pid, signal.SIGCONT)
    deadline = time.monotonic() + 5
    while anonymous.get("/api/health").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert scrape_redis_up() == 1.0
