"""Redis stopped or frozen: every console page answers within 2 s with the admin's own error
message, never a 500; the rest of the admin keeps working."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from blobcache.models import AuditEntry
from tests.helpers.console import url
from tests.helpers.entries import D1
from tests.helpers.outage import DEADLINE, PrivateRedis
from tests.helpers.storage_tree import ALPINE

pytestmark = pytest.mark.standalone

GETS = [
    ("repositories", {}),
    ("repository", {"name": ALPINE}),
    ("digest", {"digest": D1}),
    ("repository_clear", {"name": ALPINE, "digest": D1}),
    ("repository_scope", {"name": ALPINE}),
    ("digest_clear", {"digest": D1}),
]


@pytest.fixture()
def operator(make_staff: Callable[..., User], login: Callable[..., Client]) -> Client:
    return login(make_staff("view_descriptor", "change_descriptor", "delete_descriptor"))


def timed(call: Callable[[], Any]) -> Any:
    started = time.monotonic()
    response = call()
    assert time.monotonic() - started < DEADLINE
    return response


def error_text(response: Any) -> str:
    found = re.search(r'<li class="error">([^<]*)</li>', response.content.decode())
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("how", ["stopped", "frozen"])
def test_every_page_says_redis_is_unavailable(
    operator: Client, private_redis: PrivateRedis, how: str
) -> None:
    if how == "stopped":
        private_redis.stop()
    else:
        os.kill(private_redis.process.process.pid, signal.SIGSTOP)
    expected = f"cannot reach Redis at 127.0.0.1:{private_redis.port}"
    for page, query in GETS:
        response = timed(lambda page=page, query=query: operator.get(url(page, **query)))
        assert response.status_code == 503, page
        assert error_text(response).startswith(expected)
        assert "Traceback" not in response.content.decode()
    overview = timed(lambda: operator.get(url("changelist")))
    assert overview.status_code == 200
    assert error_text(overview).startswith(expected)
    assert 'alt="no"> no' in overview.content.decode()
    assert timed(lambda: operator.get(reverse("admin:index"))).status_code == 200


def test_a_clear_that_cannot_reach_redis_is_audited_as_unavailable(
    operator: Client, private_redis: PrivateRedis
) -> None:
    private_redis.stop()
    response = timed(
        lambda: operator.post(url("repository_clear"), {"name": ALPINE, "digest": D1})
    )
    assert response.status_code == 503
    assert list(AuditEntry.objects.values_list("operation", "repository", "digest", "outcome")) == [
        ("clear", ALPINE, D1, "unavailable")
    ]


def test_pages_work_again_once_redis_is_back(
    operator: Client, private_redis: PrivateRedis
) -> None:
    private_redis.stop()
    assert operator.get(url("repositories")).status_code == 503
    private_redis.start()
    assert operator.get(url("repositories")).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_count_that_cannot_reach_redis_is_saved_as_failed(
    operator: Client, private_redis: PrivateRedis
) -> None:
    from blobcache.admin import console
    from blobcache.models import CacheStatistics

    private_redis.stop()
    assert timed(lambda: operator.post(url("statistics"))).status_code == 302
    assert console.counting is not None
    console.counting.join(timeout=30)
    (row,) = CacheStatistics.objects.all()
    assert row.state == "failed"
    assert row.error.startswith(f"cannot reach Redis at 127.0.0.1:{private_redis.port}")
    overview = operator.get(url("changelist")).content.decode()
    assert "failed: cannot reach Redis at 127.0.0.1:" in overview
    assert "No count yet." in overview
