"""blobcache.testing as a portal uses it: the plugin enabled in a project's own conftest.py, and
the helpers that point blobcache at a topology."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import port_for
import pytest
from django.conf import settings

from blobcache import testing
from blobcache.testing import Topology, caches_for, django_settings_for, free_port

ROOT = Path(__file__).resolve().parents[1]

PORTAL_TESTS = '''
import pytest
from django.conf import settings

from blobcache import Descriptor, get_descriptor_cache
from blobcache.exceptions import CacheUnavailable

DIGEST = "sha256:" + "ab" * 32


def test_a_repository_clear_leaves_nothing(redis_client, cache):
    cache.repository_scoped("team/app").set_descriptor(DIGEST, Descriptor(DIGEST, 1, "a/b"))
    assert len(redis_client.keys("*")) == 3
    cache.repository_scoped("team/app").clear(DIGEST)
    assert redis_client.keys("*") == []


@pytest.mark.standalone
def test_blobcache_is_on_the_throwaway_server(redis_server, redis_url):
    assert redis_server.port != 6379
    assert settings.CACHES["default"]["LOCATION"] == redis_url


def test_an_outage(stopped_redis):
    with pytest.raises(CacheUnavailable, match=f"cannot reach Redis at 127.0.0.1:{stopped_redis}"):
        get_descriptor_cache().stat(DIGEST)
'''


def test_a_portal_enables_the_plugin_in_its_conftest(tmp_path: Path) -> None:
    ini = "[pytest]\naddopts = --strict-markers -p no:cacheprovider\n"
    (tmp_path / "pytest.ini").write_text(ini)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["blobcache.testing"]\n')
    (tmp_path / "test_portal.py").write_text(PORTAL_TESTS)
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "PYTHONPATH": str(ROOT),
        "BLOBCACHE_TEST_TOPOLOGIES": "standalone",
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1].startswith("3 passed"), run.stdout


def test_free_port_leaves_the_cluster_bus_port_free() -> None:
    for _ in range(20):
        port = free_port()
        assert 10000 <= port < 55000
        assert not port_for.port_is_used(port)
        assert port_for.is_available(port + 10000)


def test_caches_for_points_blobcache_s_alias_and_keeps_the_rest() -> None:
    caches = caches_for("redis://127.0.0.1:1/0")
    assert caches["default"]["LOCATION"] == "redis://127.0.0.1:1/0"
    assert caches["default"]["OPTIONS"] == settings.CACHES["default"]["OPTIONS"]
    assert caches["default"]["BACKEND"] == settings.CACHES["default"]["BACKEND"]


def test_django_settings_for_each_topology(settings: Any) -> None:
    settings.BLOBCACHE = {"RETRY_AFTER": 3}
    standalone = Topology(kind="standalone", port=7001)
    assert django_settings_for(standalone)["CACHES"]["default"]["LOCATION"] == (
        "redis://127.0.0.1:7001/0"
    )
    sentinel = Topology(
        kind="sentinel", port=7002, sentinels=[("127.0.0.1", 7003)], service_name="svc"
    )
    alias = django_settings_for(sentinel)["CACHES"]["default"]
    assert alias["LOCATION"] == "redis://svc/0"
    assert alias["OPTIONS"]["SENTINELS"] == [("127.0.0.1", 7003)]
    assert alias["OPTIONS"]["CLIENT_CLASS"] == "django_redis.client.SentinelClient"
    assert django_settings_for(Topology(kind="cluster", port=7004)) == {
        "BLOBCACHE": {
            "RETRY_AFTER": 3,
            "CLIENT_FACTORY": "blobcache.connection.cluster_client",
            "CLUSTER_URL": "redis://127.0.0.1:7004/0",
        }
    }
    # The host's own settings are copied, never changed in place.
    assert settings.BLOBCACHE == {"RETRY_AFTER": 3}
    assert "SENTINELS" not in settings.CACHES["default"].get("OPTIONS", {})


def test_find_redis_server_prefers_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOBCACHE_REDIS_SERVER", "/opt/redis/bin/redis-server")
    assert testing.find_redis_server() == "/opt/redis/bin/redis-server"
    monkeypatch.delenv("BLOBCACHE_REDIS_SERVER")
    assert Path(testing.find_redis_server()).name == "redis-server"
