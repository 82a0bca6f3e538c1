"""A private redis-server a test may stop and start again, without touching the session's server."""

from __future__ import annotations

from pathlib import Path

from blobcache.testing import start_redis_process

#: Seconds within which every route answers 503 while Redis is down or frozen.
DEADLINE = 2.0


class PrivateRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process = start_redis_process(data_dir)
        self.port: int = self.process.port

    def stop(self) -> None:
        self.process.stop()

    def start(self) -> None:
        self.process = start_redis_process(self.data_dir, port=self.port)
