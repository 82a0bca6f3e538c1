"""redis-py's exceptions turned into blobcache's, for every store and every caller of one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis import exceptions as redis_errors

from blobcache import keys, metrics
from blobcache.connection import describe_client
from blobcache.exceptions import CacheUnavailable, DescriptorCorrupt

#: What a script says before the key name when it refuses a key of the wrong type.
CORRUPT_MARK = "BLOBCACHE_CORRUPT"


@contextmanager
def translate_redis_errors(client: Any, involved: Sequence[str] = ()) -> Iterator[None]:
    """Turn redis-py exceptions into blobcache's: outages and corrupt entries differ for callers.

    ``involved`` names the keys of the call, for a WRONGTYPE reply that does not say which key
    (the scripts name it themselves; plain commands on Cluster do not).
    """
    try:
        yield
    except redis_errors.ResponseError as error:
        raise response_error(client, error, involved) from error
    except (redis_errors.RedisError, OSError) as error:
        metrics.count_redis_error(error)
        raise unavailable(client, error) from error


def response_error(
    client: Any, error: Exception, involved: Sequence[str] = ()
) -> DescriptorCorrupt | CacheUnavailable:
    """The blobcache exception for an error reply (counted when it is an outage)."""
    text = str(error)
    if "WRONGTYPE" in text or CORRUPT_MARK in text:
        if CORRUPT_MARK in text:
            where = _strip_script_noise(text).split(CORRUPT_MARK, 1)[1].strip()
        else:
            where = _wrong_typed(client, involved)
        return DescriptorCorrupt(f"a cache key holds a value of the wrong type: {where}")
    # Everything else (OOM, READONLY, LOADING, MASTERDOWN, NOAUTH...) means Redis cannot
    # serve this call now; the entry itself is not at fault. Said apart from "cannot
    # reach", because the operator's fix differs (memory, replication, ACLs).
    metrics.count_redis_error(error)
    return CacheUnavailable(
        f"Redis at {describe_client(client)} refused the command"
        f" ({type(error).__name__}): {_strip_script_noise(text)}"
    )


def _wrong_typed(client: Any, involved: Sequence[str]) -> str:
    """Which of ``involved`` holds the wrong type, for a plain command's WRONGTYPE reply, which
    names no key. Asked (one pipelined round trip) only on this rare path; if Redis cannot say,
    the candidates are named."""
    kinds: list[str] = []
    if involved:
        try:
            pipe = client.pipeline(transaction=False)
            for key in involved:
                pipe.type(key)
            kinds = [keys.key_text(kind) for kind in pipe.execute()]
        except (redis_errors.RedisError, OSError):
            kinds = []
    wrong = [
        f"{key} holds a {kind}"
        for key, kind in zip(involved, kinds, strict=False)
        if kind not in ("none", "set" if keys.is_membership_key(key) else "hash")
    ]
    if wrong:
        return ", ".join(wrong)
    if involved:
        return f"one of {', '.join(involved)}"
    return "a key this call read"


def unavailable(client: Any, error: BaseException) -> CacheUnavailable:
    reason = str(error) or type(error).__name__
    return CacheUnavailable(f"cannot reach Redis at {describe_client(client)}: {reason}")


def _strip_script_noise(text: str) -> str:
    # Redis 6 wraps errors raised inside a script in "Error running script (call to f_...)".
    return text.split(": ", 2)[-1] if text.startswith("Error running script") else text
