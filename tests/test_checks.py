"""System checks blobcache.E001 to E004, and CLIENT_FACTORY taking over the connection."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.checks import Error, Tags, run_checks
from django.core.management import call_command
from django.test import override_settings

from blobcache import Descriptor, get_descriptor_cache
from blobcache.checks import check_connection_source, check_settings
from blobcache.exceptions import BlobUnknown, DescriptorCorrupt
from blobcache.testing import caches_for

D1 = "sha256:" + "1" * 64
FACTORY_DB = 5

#: Not callable: CLIENT_FACTORY may not point here.
NOT_A_FACTORY = "a string"

_factory_target: dict[str, Any] = {}
factory_calls: list[redis.Redis] = []


def make_test_client() -> redis.Redis:
    """A CLIENT_FACTORY: a plain redis-py client on the test server, in a database of its own."""
    options = _factory_target.get("options", {"protocol": 2})
    client = redis.Redis(
        host=_factory_target["host"], port=_factory_target["port"], db=FACTORY_DB, **options
    )
    factory_calls.append(client)
    return client


def blobcache_errors() -> list[Any]:
    """What ``manage.py check`` would report for blobcache, through Django's own registry."""
    return [m for m in run_checks(tags=[Tags.caches]) if m.id.startswith("blobcache.")]


def only(messages: list[Any]) -> Any:
    assert len(messages) == 1, messages
    message = messages[0]
    assert isinstance(message, Error)
    return message


def test_demo_settings_pass() -> None:
    assert check_settings() == []
    assert check_connection_source() == []
    assert blobcache_errors() == []


def test_demo_settings_pass_manage_py_check() -> None:
    out = StringIO()
    call_command("check", "--tag", "caches", stdout=out)
    assert out.getvalue() == "System check identified no issues (0 silenced).\n"


def test_e001_alias_missing() -> None:
    with override_settings(BLOBCACHE={"CACHE_ALIAS": "registry"}):
        message = only(blobcache_errors())
        assert message.id == "blobcache.E001"
        assert (
            message.msg == "BLOBCACHE['CACHE_ALIAS'] is 'registry', but CACHES has no such alias."
        )
        assert message.hint


def test_e001_for_the_default_alias() -> None:
    caches = {"registry": copy.deepcopy(settings.CACHES["default"])}
    with override_settings(BLOBCACHE={}, CACHES=caches):
        assert only(check_connection_source()).id == "blobcache.E001"


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.redis.RedisCache",
        "django.core.cache.backends.dummy.DummyCache",
        "no.such.Backend",
        "",
    ],
)
def test_e002_alias_is_not_django_redis(backend: str) -> None:
    caches = copy.deepcopy(settings.CACHES)
    caches["blob"] = {"BACKEND": backend, "LOCATION": "x"}
    with override_settings(CACHES=caches, BLOBCACHE={"CACHE_ALIAS": "blob"}):
        message = only(check_connection_source())
        assert message.id == "blobcache.E002"
        assert message.msg == (
            f"CACHES['blob'] uses {backend!r}, which is not a django-redis backend."
        )
        assert "django_redis.cache.RedisCache" in message.hint


def test_a_django_redis_subclass_is_accepted() -> None:
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["BACKEND"] = "tests.test_checks.CustomRedisCache"
    with override_settings(CACHES=caches):
        assert check_connection_source() == []


def _custom_backend() -> type:
    from django_redis.cache import RedisCache

    return type("CustomRedisCache", (RedisCache,), {})


CustomRedisCache = _custom_backend()


@pytest.mark.parametrize(
    "factory",
    [
        "tests.test_checks.no_such_factory",  # module fine, attribute missing
        "tests.no_such_module.factory",  # module missing
        "not_a_dotted_path",
        "tests.test_checks.NOT_A_FACTORY",  # importable but not callable
        42,  # not even a string
    ],
)
def test_e003_factory_unusable(factory: object) -> None:
    with override_settings(BLOBCACHE={"CLIENT_FACTORY": factory}):
        message = only(blobcache_errors())
        assert message.id == "blobcache.E003"
        assert message.msg.startswith(f"BLOBCACHE['CLIENT_FACTORY'] = {factory!r} cannot be used: ")
        assert message.hint


def test_e004_unknown_keys() -> None:
    with override_settings(BLOBCACHE={"CACHE_ALIAS": "default", "CLIENT_FACTROY": "x", "TTL": 5}):
        message = only(blobcache_errors())
        assert message.id == "blobcache.E004"
        assert message.msg == "BLOBCACHE has unknown keys: CLIENT_FACTROY, TTL."


@pytest.mark.parametrize("value", [["CACHE_ALIAS"], "default", 1])
def test_e004_not_a_dict_is_reported_not_raised(value: object) -> None:
    # Every check runs on every manage.py command: a bad value must give a message, not a crash.
    with override_settings(BLOBCACHE=value):
        message = only(blobcache_errors())
        assert message.id == "blobcache.E004"
        assert message.msg == "BLOBCACHE must be a dict."


def test_checks_open_no_connection() -> None:
    # A dead Redis must not break `manage.py migrate`: the checks are static.
    with override_settings(CACHES=caches_for("redis://127.0.0.1:1/0")):
        assert blobcache_errors() == []


# ----------------------------------------------------------------------------------------------
# CLIENT_FACTORY


@pytest.fixture()
def factory_target(redis_server: Any, redis_client: redis.Redis) -> Iterator[redis.Redis]:
    _factory_target.clear()
    _factory_target.update(host=redis_server.host, port=redis_server.port)
    factory_calls.clear()
    raw = redis.Redis(
        host=redis_server.host, port=redis_server.port, db=FACTORY_DB, decode_responses=True
    )
    yield raw
    raw.close()
    for client in factory_calls:
        client.close()


def test_client_factory_is_used(factory_target: redis.Redis, redis_client: redis.Redis) -> None:
    # The django-redis alias points at a port nothing listens on: a fallback would fail loudly.
    with override_settings(
        BLOBCACHE={"CLIENT_FACTORY": "tests.test_checks.make_test_client", "CACHE_ALIAS": "none"},
        CACHES=caches_for("redis://127.0.0.1:1/0"),
    ):
        assert blobcache_errors() == []
        cache = get_descriptor_cache()
        assert cache.client is factory_calls[-1]
        cache.repository_scoped("foo/bar").set_descriptor(D1, Descriptor(D1, 7, "text/plain"))
        assert factory_target.hgetall(f"blobs::{D1}") == {
            "digest": D1,
            "size": "7",
            "mediatype": "text/plain",
        }
        assert factory_target.smembers("repository::foo/bar::blobs") == {D1}
        assert redis_client.dbsize() == 0  # nothing went to the alias's database 0
        assert get_descriptor_cache() is cache
    assert len(factory_calls) == 1  # resolved once, not per call


@pytest.mark.standalone
def test_changing_the_settings_drops_the_factory_client(factory_target: redis.Redis) -> None:
    with override_settings(BLOBCACHE={"CLIENT_FACTORY": "tests.test_checks.make_test_client"}):
        factory_cache = get_descriptor_cache()
    default_cache = get_descriptor_cache()
    assert default_cache is not factory_cache
    assert default_cache.client is not factory_calls[-1]
    default_cache.set_descriptor(D1, Descriptor(D1, 1, "text/plain"))
    assert factory_target.dbsize() == 0


@pytest.mark.standalone
@pytest.mark.parametrize(
    "options",
    [
        {"protocol": 3},  # redis-py 8's default: Lua false comes back as False, not None
        {"protocol": 2, "decode_responses": True},
        {"protocol": 3, "decode_responses": True},
        {},
    ],
    ids=["resp3", "resp2-decoded", "resp3-decoded", "redis-py-defaults"],
)
def test_any_client_shape_a_factory_returns_works(
    factory_target: redis.Redis, options: dict[str, Any]
) -> None:
    _factory_target["options"] = options
    alias = "sha384:" + "a" * 96
    with override_settings(BLOBCACHE={"CLIENT_FACTORY": "tests.test_checks.make_test_client"}):
        cache = get_descriptor_cache()
        scoped = cache.repository_scoped("foo/bar")
        with pytest.raises(BlobUnknown):
            scoped.stat(D1)
        assert scoped.put(D1, Descriptor(D1, 5, "a/b")) == (Descriptor(D1, 5, "a/b"), True)
        assert cache.put(D1, Descriptor(D1, 6, "a/c")) == (Descriptor(D1, 6, "a/b"), False)
        assert scoped.stat(D1) == Descriptor(D1, 6, "a/b")
        scoped.set_descriptor(alias, Descriptor(D1, 6, "x/y"))
        assert scoped.stat(alias) == Descriptor(D1, 6, "x/y")
        factory_target.hdel(f"blobs::{D1}", "mediatype")
        assert cache.stat(D1) == Descriptor(D1, 6, "")
        factory_target.delete(f"repository::foo/bar::blobs::{D1}")
        with pytest.raises(BlobUnknown):
            scoped.stat(D1)
        factory_target.hset(f"blobs::{D1}", "size", "x")
        with pytest.raises(DescriptorCorrupt):
            scoped.stat(D1)
        scoped.clear(D1)
        with pytest.raises(BlobUnknown):
            scoped.clear(D1)
        with pytest.raises(BlobUnknown):
            cache.clear(D1)
        cache.clear(alias)
        scoped.clear(alias)
        assert factory_target.dbsize() == 0
