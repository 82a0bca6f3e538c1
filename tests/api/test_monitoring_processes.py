"""The demo under gunicorn with 2 workers, a command beside it, one Redis: the counters of every
process are summed by a scrape, and Redis frozen with SIGSTOP shows within the bound."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import port_for
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from blobcache.testing import start_redis_process

pytestmark = pytest.mark.standalone

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-token-for-the-test"
D = ["sha256:" + str(number) * 64 for number in range(1, 10)]
OCTET = "application/octet-stream"
ROOT_AUTH = "Basic " + base64.b64encode(b"root:root-pw").decode()
PLAIN_AUTH = "Basic " + base64.b64encode(b"plain:plain-pw").decode()


@dataclass
class Demo:
    port: int
    env: dict[str, str]
    redis: Any
    metrics_dir: Path

    def request(
        self, method: str, path: str, body: Any = None, auth: str | None = ROOT_AUTH
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Authorization": auth} if auth else {}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )

    def scrape(self) -> dict[str, float]:
        status, _, content = self.request("GET", "/api/metrics", auth=f"Bearer {TOKEN}")
        assert status == 200, content
        found = {}
        for family in text_string_to_metric_families(content.decode()):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return found


def wait_for_http(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/health?live=1")
            connection.getresponse().read()
            connection.close()
            return
        except OSError as error:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"gunicorn did not start:\n{log.read_text()[-3000:]}"
                ) from error
            time.sleep(0.1)


@pytest.fixture()
def demo(tmp_path: Path) -> Iterator[Demo]:
    redis_server = start_redis_process(tmp_path / "redis")
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (tmp_path / "static").mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
        "DJANGO_DB_PATH": str(tmp_path / "db.sqlite3"),
        "BLOBCACHE_VAR_DIR": str(tmp_path),
        "BLOBCACHE_METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    port = port_for.select_random()
    log = tmp_path / "gunicorn.log"
    server: subprocess.Popen[bytes] | None = None
    try:
        demo = Demo(port, env, redis_server, metrics_dir)
        setup = demo.manage("migrate", "--noinput", "-v", "0")
        assert setup.returncode == 0, setup.stderr
        users = demo.manage(
            "shell", "-v", "0", "-c",
            "from django.contrib.auth.models import User;"
            "User.objects.create_superuser('root', 'root@localhost', 'root-pw');"
            "User.objects.create_user('plain', password='plain-pw')",
        )
        assert users.returncode == 0, users.stderr
        before = set(metrics_dir.glob("counter_*.db"))
        with log.open("wb") as output:
            server = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("gunicorn")), "project.wsgi:application",
                    "--chdir", str(ROOT), "--bind", f"127.0.0.1:{port}", "--workers", "2",
                    "--no-control-socket",  # not in the user's ~/.gunicorn
                ],
                env=env, stdout=output, stderr=subprocess.STDOUT,
            )
        wait_for_http(port, server, log)
        # Each worker creates its files when it loads the app: wait until both can serve.
        deadline = time.monotonic() + 60
        while len(set(metrics_dir.glob("counter_*.db")) - before) < 2:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        yield demo
    finally:
        try:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        redis_server.stop()


def op(operation: str, scope: str, outcome: str) -> str:
    return f"blobcache_operations_total{{operation={operation},outcome={outcome},scope={scope}}}"


def blobcache_counts(scraped: dict[str, float]) -> dict[str, float]:
    """The non-zero counters (every series exists from the start, most at 0)."""
    return {
        name: value
        for name, value in scraped.items()
        if value
        and name.startswith(("blobcache_operations_total", "blobcache_cleared_entries_total",
                             "blobcache_redis_errors_total"))
    }


def test_counters_of_both_workers_and_a_command_are_summed(demo: Demo) -> None:
    put = {"size": 3, "mediaType": OCTET}
    # Requests in parallel, so that both workers (one request at a time each) serve some.
    calls = (
        [("PUT", f"/api/blobs/{digest}", put) for digest in D[:3]]
        + [("PUT", f"/api/repositories/team/app/blobs/{D[3]}", put)]
    )
    with ThreadPoolExecutor(4) as pool:
        assert {status for status, _, _ in pool.map(lambda c: demo.request(*c), calls)} == {201}
        reads = (
            [("GET", f"/api/blobs/{D[0]}")] * 8
            + [("GET", f"/api/blobs/{D[8]}")] * 4
            + [("GET", f"/api/repositories/team/app/blobs/{D[3]}")] * 2
            + [("GET", "/api/blobs/sha256:bad")]
        )
        statuses = sorted(status for status, _, _ in pool.map(lambda c: demo.request(*c), reads))
    assert statuses == [200] * 10 + [400] + [404] * 4
    assert demo.request("DELETE", f"/api/blobs/{D[1]}")[0] == 204
    assert demo.request("DELETE", f"/api/blobs/{D[8]}")[0] == 404
    # A command in its own process, writing its own files in the same folder.
    stat = demo.manage("blobcache_stat", D[0], D[2])
    assert stat.returncode == 0, stat.stderr
    cleared = demo.manage("blobcache_clear", "--repository", "team/app", D[3], D[7])
    assert cleared.returncode == 1, cleared.stderr  # D[7] is unknown

    assert blobcache_counts(demo.scrape()) == {
        op("set", "global", "ok"): 3,
        op("set", "repository", "ok"): 1,
        op("stat", "global", "hit"): 8 + 2,
        op("stat", "global", "miss"): 4,
        op("stat", "global", "invalid"): 1,
        op("stat", "repository", "hit"): 2,
        op("clear", "global", "ok"): 1,
        op("clear", "global", "miss"): 1,
        op("clear", "repository", "ok"): 1,
        op("clear", "repository", "miss"): 1,
        "blobcache_cleared_entries_total{interface=api}": 1,
        "blobcache_cleared_entries_total{interface=command}": 2,
    }
    # Both workers and both commands counted operations, each process in its own file.
    counting = [
        path.name
        for path in demo.metrics_dir.glob("counter_*.db")
        if any(
            key.startswith('["blobcache_operations"') and value
            for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
        )
    ]
    assert len(counting) == 4, counting


def test_scrapes_without_credentials_are_refused(demo: Demo) -> None:
    assert demo.request("GET", "/api/metrics", auth=None)[0] == 401
    assert demo.request("GET", "/api/metrics", auth="Bearer not-the-token")[0] == 401
    status, _, content = demo.request("GET", "/api/metrics", auth=PLAIN_AUTH)
    assert status == 403
    assert json.loads(content)["errors"][0]["code"] == "DENIED"
    # The superuser holds blobcache.view_descriptor, which the demo lets scrape.
    assert demo.request("GET", "/api/metrics", auth=ROOT_AUTH)[0] == 200


def test_a_frozen_redis_shows_within_a_second_and_recovers(demo: Demo) -> None:
    assert demo.scrape()["blobcache_redis_up"] == 1.0
    assert demo.request("GET", "/api/health", auth=None)[0] == 200
    pid = demo.redis.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        status, headers, content = demo.request("GET", "/api/health", auth=None)
        assert time.monotonic() - started < 1.3
        assert (status, headers["Retry-After"]) == (503, "1")
        assert json.loads(content) == {
            "status": "unavailable", "redis": "timeout", "topology": "standalone",
            "warnings": [],
        }
        started = time.monotonic()
        assert demo.scrape()["blobcache_redis_up"] == 0.0
        assert time.monotonic() - started < 1.3
        status, _, _ = demo.request("GET", f"/api/blobs/{D[0]}")
        assert status == 503
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 5
    while demo.request("GET", "/api/health", auth=None)[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    scraped = demo.scrape()
    assert scraped["blobcache_redis_up"] == 1.0
    assert blobcache_counts(scraped) == {
        op("stat", "global", "unavailable"): 1,
        "blobcache_redis_errors_total{kind=timeout}": 1,
    }


def test_reconcile_and_statistics_run_by_commands_show_in_the_scrape(
    demo: Demo, tmp_path: Path
) -> None:
    before = demo.scrape()
    assert before["blobcache_reconcile_last_success_timestamp_seconds"] == 0.0
    assert "blobcache_descriptors" not in before
    put = {"size": 3, "mediaType": OCTET}
    for digest in D[:2]:
        assert demo.request("PUT", f"/api/blobs/{digest}", put)[0] == 201
    stats = demo.manage("blobcache_stats")
    assert stats.returncode == 0, stats.stderr
    storage = tmp_path / "storage"
    (storage / "docker" / "registry" / "v2").mkdir(parents=True)
    started = time.time()
    # Storage holds no blob at all: both global entries go.
    reconciled = demo.manage("blobcache_reconcile", "--storage-root", str(storage), "--no-input")
    assert reconciled.returncode == 0, reconciled.stderr
    scraped = demo.scrape()
    assert started - 1 <= scraped["blobcache_reconcile_last_success_timestamp_seconds"]
    assert scraped["blobcache_reconcile_last_success_timestamp_seconds"] <= time.time()
    assert scraped["blobcache_descriptors"] == 2.0
    assert scraped["blobcache_repositories"] == 0.0
    assert scraped["blobcache_stats_timestamp_seconds"] <= started
    assert blobcache_counts(scraped) == {
        op("set", "global", "ok"): 2,
        "blobcache_cleared_entries_total{interface=reconcile}": 2,
    }
    assert scraped["blobcache_reconcile_cleared_total{reason=global_data_missing}"] == 2.0
