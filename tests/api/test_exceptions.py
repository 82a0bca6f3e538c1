"""Redis stopped or frozen: every route answers 503 UNAVAILABLE within 2 s, then recovers.

A private redis-server is started here so that it can be killed and frozen without touching the
session's server.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from blobcache.testing import caches_for, start_redis_process
from tests.helpers.api import OPERATIONS, call
from tests.helpers.outage import DEADLINE, PrivateRedis

# Each test stops or freezes a private standalone server of its own.
pytestmark = pytest.mark.standalone


@pytest.fixture()
def api(superuser: User, redis_client: Any) -> APIClient:
    """Token authentication, as a registry portal's scripts would use (the database answers it)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=superuser).key}")
    return client


def assert_unavailable(client: APIClient, method: str, path: str, port: int) -> None:
    started = time.monotonic()
    response = call(client, method, path)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, (method, path, response.content)
    assert elapsed < DEADLINE, (method, path, elapsed)
    assert response["Retry-After"] == "1"
    if method != "head":
        (error,) = response.json()["errors"]
        assert set(error) == {"code", "message", "detail"}
        assert error["code"] == "UNAVAILABLE"
        assert error["message"].startswith(f"cannot reach Redis at 127.0.0.1:{port}: ")
        assert error["detail"] is None


def assert_answers(client: APIClient) -> None:
    for method, path, _ in OPERATIONS:
        assert call(client, method, path).status_code in (200, 201, 204, 404), (method, path)


def test_stopped_redis_is_503_on_every_route_and_recovers(
    api: APIClient, private_redis: PrivateRedis
) -> None:
    assert_answers(api)  # pooled connections exist before the outage
    private_redis.stop()
    for method, path, _ in OPERATIONS:
        assert_unavailable(api, method, path, private_redis.port)
    # Validation still comes first: bad input is a 400, not a 503.
    assert api.get("/api/blobs/nope").status_code == 400
    assert api.get("/api/repositories/x/blobs?page_size=0").status_code == 400
    private_redis.start()
    assert_answers(api)
    # The restarted server is empty: a write lands there and reads back.
    assert call(api, "put", OPERATIONS[2][1]).status_code == 201
    assert api.get(OPERATIONS[2][1]).json()["size"] == 1


def test_frozen_redis_is_503_within_the_deadline_and_recovers(
    api: APIClient, private_redis: PrivateRedis
) -> None:
    assert_answers(api)
    pid = private_redis.process.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        for method, path, _ in OPERATIONS:
            if method == "head":
                continue  # the same code path as GET; keeps the test short
            assert_unavailable(api, method, path, private_redis.port)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert_answers(api)


def test_redis_backed_throttle_of_the_host_is_503_not_500(
    api: APIClient, private_redis: PrivateRedis
) -> None:
    rates = {**django_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"blobcache": "1000/min"}}
    with override_settings(REST_FRAMEWORK=rates):
        assert api.get("/api/repositories").status_code == 200
        private_redis.stop()
        response = api.get("/api/repositories")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json() == {
        "errors": [
            {
                "code": "UNAVAILABLE",
                "message": "the blob descriptor cache is unavailable",
                "detail": None,
            }
        ]
    }


def test_a_unix_socket_is_named_by_its_setting_not_its_path(
    api: APIClient, tmp_path: Path
) -> None:
    socket = tmp_path / "redis.sock"
    server = start_redis_process(tmp_path, "--unixsocket", str(socket))
    try:
        with override_settings(CACHES=caches_for(f"unix://{socket}?db=0")):
            assert api.get("/api/repositories").status_code == 200
            server.stop()
            response = api.get("/api/repositories")
    finally:
        server.stop()
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    (error,) = response.json()["errors"]
    assert error["message"].startswith(
        "cannot reach Redis at the Redis socket of CACHES['default']['LOCATION']: "
    )
    assert str(tmp_path) not in response.content.decode()
