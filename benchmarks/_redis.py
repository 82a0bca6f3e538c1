"""A throwaway redis-server for benchmarks: free loopback port, no persistence, removed after."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import port_for
import redis

from blobcache.testing import find_redis_server


@contextmanager
def throwaway_redis(*extra: str) -> Iterator[int]:
    port = port_for.select_random()
    with tempfile.TemporaryDirectory(prefix="blobcache-bench-") as data_dir:
        process = subprocess.Popen(
            [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", data_dir, *extra],
            stdout=subprocess.DEVNULL,
        )
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            client.close()
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)
