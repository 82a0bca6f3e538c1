"""blobcache's settings: defaults, the host's overrides read on every access, unknown names."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from blobcache.conf import DEFAULTS, SETTING_NAME, BlobCacheSettings, blobcache_settings


def test_the_setting_is_one_dict_named_blobcache() -> None:
    assert SETTING_NAME == "BLOBCACHE"


@override_settings(BLOBCACHE=None)
@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_without_the_dict_every_name_has_its_default(name: str) -> None:
    assert getattr(blobcache_settings, name) == DEFAULTS[name]


def test_the_defaults_an_operator_relies_on() -> None:
    with override_settings(BLOBCACHE={}):
        assert blobcache_settings.CACHE_ALIAS == "default"
        assert blobcache_settings.CLIENT_FACTORY is None
        assert blobcache_settings.RETRY_AFTER == 1
        assert blobcache_settings.NOTIFICATIONS_HEADER == "Authorization"
        assert blobcache_settings.AUDIT_RETENTION_DAYS == 90
        assert blobcache_settings.METRICS is True
        assert blobcache_settings.METRICS_TOKEN is None


def test_a_host_value_wins_and_the_others_keep_their_defaults(settings: Any) -> None:
    settings.BLOBCACHE = {"RETRY_AFTER": 7, "STORAGE_ROOT": "/srv/registry"}
    assert blobcache_settings.RETRY_AFTER == 7
    assert blobcache_settings.STORAGE_ROOT == "/srv/registry"
    assert blobcache_settings.CACHE_ALIAS == "default"


def test_values_are_read_on_every_access_without_a_reload() -> None:
    # The object is created once at import; override_settings must still show through it.
    with override_settings(BLOBCACHE={"HEALTH_TIMEOUT": 0.2}):
        assert blobcache_settings.HEALTH_TIMEOUT == 0.2
        with override_settings(BLOBCACHE={"HEALTH_TIMEOUT": 0.5}):
            assert blobcache_settings.HEALTH_TIMEOUT == 0.5
        assert blobcache_settings.HEALTH_TIMEOUT == 0.2
    assert BlobCacheSettings().HEALTH_TIMEOUT == DEFAULTS["HEALTH_TIMEOUT"]


def test_an_unknown_name_raises_instead_of_reading_none() -> None:
    with pytest.raises(AttributeError) as caught:
        blobcache_settings.RETRY_AFTR  # noqa: B018 - the access itself is the test
    assert str(caught.value) == "unknown blobcache setting 'RETRY_AFTR'"


@pytest.mark.parametrize(
    ("configured", "unknown"),
    [
        (None, []),
        ({}, []),
        ({"RETRY_AFTER": 2}, []),
        ({"RETRY_AFTR": 2, "CACHE_ALIAS": "x", "Metrics": False}, ["Metrics", "RETRY_AFTR"]),
    ],
)
def test_unknown_keys_are_listed_sorted(configured: Any, unknown: list[str]) -> None:
    with override_settings(BLOBCACHE=configured):
        assert blobcache_settings.unknown_keys() == unknown
