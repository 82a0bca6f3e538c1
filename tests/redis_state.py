"""Reading a whole Redis database back, to assert exact state before and after an operation."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

KeyState = tuple[str, Any, int]


def dump(client: redis.Redis) -> dict[str, KeyState]:
    """Every key of the client's database as ``key -> (type, value, ttl)``.

    Values are compared as plain Python data (dict, set, list), so a test sees exactly which
    field or member changed; the TTL is there because the registry never sets one (-1).
    """
    state: dict[str, KeyState] = {}
    for key in sorted(client.scan_iter(count=1000)):
        kind = client.type(key)
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = client.dump(key)
        state[key] = (kind, value, client.ttl(key))
    return state


def keyspace(client: redis.Redis) -> dict[str, object]:
    """Every key with its content, to assert the whole state of the test Redis."""
    state: dict[str, object] = {}
    for key in client.keys("*"):
        kind = client.type(key)
        if kind == "hash":
            state[key] = client.hgetall(key)
        elif kind == "set":
            state[key] = client.smembers(key)
        else:
            state[key] = (kind, client.get(key) if kind == "string" else None)
    return state


# --- Counting commands with MONITOR ------------------------------------------------------------


@dataclass
class Capture:
    """What MONITOR showed between the markers, split into client commands and script commands."""

    client: list[dict[str, Any]] = field(default_factory=list)
    script: list[dict[str, Any]] = field(default_factory=list)

    @property
    def client_commands(self) -> list[str]:
        return [line["command"].split(" ", 1)[0].upper() for line in self.client]

    @property
    def script_commands(self) -> list[str]:
        return [line["command"].split(" ", 1)[0].upper() for line in self.script]


@contextmanager
def monitored(server: Any) -> Iterator[Capture]:
    watcher = redis.Redis(host=server.host, port=server.port, decode_responses=True, protocol=2)
    marker = redis.Redis(host=server.host, port=server.port, decode_responses=True, protocol=2)
    token = uuid.uuid4().hex
    lines: list[dict[str, Any]] = []
    capture = Capture()
    with watcher.monitor() as monitor:  # MONITOR is active once this returns

        def listen() -> None:
            for line in monitor.listen():
                lines.append(line)
                if line["command"] == f"ECHO end-{token}":
                    return

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        marker.echo(f"start-{token}")
        try:
            yield capture
        finally:
            marker.echo(f"end-{token}")
            thread.join(10)
    assert not thread.is_alive(), "MONITOR never showed the end marker"
    commands = [line["command"] for line in lines]
    between = lines[commands.index(f"ECHO start-{token}") + 1 : commands.index(f"ECHO end-{token}")]
    capture.client[:] = [line for line in between if line["client_type"] != "lua"]
    capture.script[:] = [line for line in between if line["client_type"] == "lua"]
    marker.close()
    watcher.close()
