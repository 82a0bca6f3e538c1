"""Reading a whole Redis database back, to assert exact state before and after an operation."""

from __future__ import annotations

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
