"""The demo project as a newcomer meets it: real processes, a throwaway ``var/`` each time.

``manage.py`` and ``python -m project.serve`` (what ``bin/serve`` runs, without the venv step)
are started with ``BLOBCACHE_VAR_DIR`` pointing at a folder that does not exist yet, and never
with ``REDIS_URL``: without it they must use the embedded Redis or refuse, never 6379.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from blobcache.testing import find_redis_server

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "manage.py"
PASSWORD = "demo-test-pw"
DIGEST = "sha256:" + "ab" * 32


def demo_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"REDIS_URL", "DJANGO_DB_PATH", "BLOBCACHE_BIND"}
    }
    env.update(BLOBCACHE_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="project.settings")
    env.update(extra)
    return env


def manage(var_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        env=demo_env(var_dir, **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def short_var_dir() -> Iterator[Path]:
    """A ``var/`` that does not exist yet, in a short temporary folder: a unix socket's path
    may not exceed 107 bytes, which pytest's own temporary paths often do."""
    parent = Path(tempfile.mkdtemp(prefix="bc-demo-"))
    try:
        yield parent / "var"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture()
def var_dir() -> Iterator[Path]:
    with short_var_dir() as path:
        yield path


class TestManage:
    def test_migrate_and_createsuperuser_on_a_fresh_clone(self, var_dir: Path) -> None:
        assert not var_dir.exists()
        migrated = manage(var_dir, "migrate", "--noinput", "-v", "0")
        assert (migrated.returncode, migrated.stderr) == (0, "")
        created = manage(
            var_dir, "createsuperuser", "--noinput", "--username", "newcomer",
            "--email", "n@example.com", DJANGO_SUPERUSER_PASSWORD="pw-of-newcomer",
        )
        assert (created.returncode, created.stderr) == (0, "")
        assert (var_dir / "db.sqlite3").is_file()

    @pytest.mark.parametrize(
        "args",
        [
            ("blobcache_stats",),
            ("blobcache_clear", "--all", "--no-input"),
            ("check", "--deploy"),
            ("runserver",),
        ],
    )
    def test_without_redis_url_or_embedded_redis_commands_refuse(
        self, var_dir: Path, args: tuple[str, ...]
    ) -> None:
        result = manage(var_dir, *args)
        assert result.returncode == 2
        assert result.stdout == ""
        socket_path = var_dir / "redis" / "redis.sock"
        assert result.stderr == (
            f"{args[0]}: no Redis to use. REDIS_URL is not set and the demo's embedded Redis is "
            f"not running (no socket at {socket_path}).\n"
            "Start the demo with bin/serve and run commands with bin/manage (same Redis), or "
            "name the registry's Redis:\n"
            f"  REDIS_URL=redis://HOST:6379/0 .venv/bin/python manage.py {args[0]} ...\n"
        )

    def test_without_redis_url_commands_use_the_embedded_redis(self, var_dir: Path) -> None:
        socket_path = var_dir / "redis" / "redis.sock"
        socket_path.parent.mkdir(parents=True)
        server = subprocess.Popen(
            [find_redis_server(), "--port", "0", "--unixsocket", str(socket_path), "--save", "",
             "--dir", str(socket_path.parent)],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 15
            while not socket_path.exists():
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
            client = redis.Redis(unix_socket_path=str(socket_path))
            client.hset(f"blobs::{DIGEST}", mapping={"digest": DIGEST, "size": 3})
            result = manage(var_dir, "blobcache_stats", "--format", "json")
            assert result.returncode == 0, result.stderr
            stats = json.loads(result.stdout)
            assert (stats["descriptors"], stats["repositories"]) == (1, 0)
            client.close()
        finally:
            server.terminate()
            server.wait(timeout=10)


@dataclass
class Demo:
    process: subprocess.Popen[str]
    port: int
    var_dir: Path
    output: list[str]

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes, float]:
        """One request on a fresh connection: status, body and seconds taken."""
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as connection:
            credentials = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
            connection.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {credentials}"
                "\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := connection.recv(65536):
                data += chunk
        status = int(data.split(b" ", 2)[1])
        return status, data.split(b"\r\n\r\n", 1)[1], time.monotonic() - started


def follow(process: subprocess.Popen[str], output: list[str]) -> threading.Thread:
    """Collect the process's lines as they come (a thread: select() on a buffered pipe misses
    lines already read into the buffer)."""
    assert process.stdout is not None
    stream = process.stdout

    def read() -> None:
        for line in stream:
            output.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def wait_for_line(process: subprocess.Popen[str], marker: str, output: list[str],
                  timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(marker in line for line in output):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{marker!r} never came; output so far:\n{''.join(output)}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with short_var_dir() as var_dir:
        yield from serve(var_dir)


def serve(var_dir: Path) -> Iterator[Demo]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "project.serve"],
        env=demo_env(var_dir, BLOBCACHE_BIND=f"127.0.0.1:{port}",
                     BLOBCACHE_ADMIN_PASSWORD=PASSWORD),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    follow(process, output)
    try:
        wait_for_line(process, "Press Ctrl-C to stop.", output, timeout=240)
        running = Demo(process, port, var_dir, output)
        deadline = time.monotonic() + 60
        while True:
            try:
                if running.get("/api/repositories")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the demo never answered"
            time.sleep(0.2)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class TestServe:
    def test_banner_names_the_address_and_the_embedded_redis(self, demo: Demo) -> None:
        text = "".join(demo.output)
        assert f"blobcache is serving on http://127.0.0.1:{demo.port}/" in text
        assert f"Redis: unix://{demo.var_dir / 'redis' / 'redis.sock'}?db=0" in text

    def test_gunicorns_control_socket_is_the_demos_own(self, demo: Demo) -> None:
        # Not the per-user default (~/.gunicorn/gunicorn.ctl) that every gunicorn would share.
        assert (demo.var_dir / "gunicorn.ctl").is_socket()

    def test_slow_clients_do_not_stall_other_requests(self, demo: Demo) -> None:
        stalled: list[socket.socket] = []
        try:
            for _ in range(2):
                # A body announced and half sent...
                trickle = socket.create_connection(("127.0.0.1", demo.port))
                trickle.sendall(
                    f"PUT /api/blobs/{DIGEST} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"si".encode()
                )
                stalled.append(trickle)
                # ...and a browser's idle connection that never sends a request.
                stalled.append(socket.create_connection(("127.0.0.1", demo.port)))
            time.sleep(1)
            for _ in range(8):
                status, body, seconds = demo.get("/api/repositories")
                assert status == 200, body
                assert json.loads(body) == {"results": [], "next": None}
                # Stalled, each would wait for gunicorn's 30 s timeout; a busy 2-core machine
                # running the suite can take a few seconds.
                assert seconds < 10
        finally:
            for connection in stalled:
                connection.close()

    def test_embedded_redis_passes_the_deploy_checks(self, demo: Demo) -> None:
        # Without REDIS_URL, manage.py uses the Redis this demo started.
        result = manage(demo.var_dir, "check", "--deploy")
        assert result.returncode == 0, result.stderr
        assert "blobcache.W00" not in result.stdout + result.stderr
        client = redis.Redis(unix_socket_path=str(demo.var_dir / "redis" / "redis.sock"))
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert client.config_get("maxmemory") == {"maxmemory": str(256 * 1024 * 1024)}
        client.close()


def test_busy_port_is_refused_before_anything_starts(var_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "project.serve"],
            env=demo_env(var_dir, BLOBCACHE_BIND=f"127.0.0.1:{port}"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"bin/serve: cannot listen on 127.0.0.1:{port}: Address already in use.\n"
        "Another server may be using it: stop it, or choose another address with "
        "BLOBCACHE_BIND=host:port (e.g. BLOBCACHE_BIND=127.0.0.1:8001 bin/serve).\n"
    )
    assert not (var_dir / "redis").exists()
