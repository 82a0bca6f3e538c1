"""POST /api/notifications: the registry's delete events clear repository-scoped entries.

The envelopes are the shapes a registry 2.8.2 sends (tests/interop shows one arriving): a blob
DELETE carries only ``target.digest`` and ``target.repository``; a manifest DELETE sends two
events, the digest's and then the tag's, which names no digest.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from blobcache import Descriptor, actor, metrics, signals
from blobcache.api import notifications
from blobcache.cache import DescriptorCache
from blobcache.checks import E006, check_notifications_limits
from blobcache.conf import blobcache_settings
from tests.api.conftest import envelope
from tests.api.test_unavailable import PrivateRedis, private_redis
from tests.audit_state import audit_row, audit_rows
from tests.redis_state import dump

__all__ = ["private_redis"]

URL = "/api/notifications"
EVENTS = "application/vnd.docker.distribution.events.v1+json"
SECRET = "s3cret-shared-with-the-registry"
APP = "team/app"
ALPINE = "library/alpine"
LAYER = "sha256:" + "1" * 64
CONFIG = "sha256:" + "2" * 64
MANIFEST = "sha256:" + "3" * 64
OCTET = "application/octet-stream"


def event(action: str, repository: str = APP, digest: str | None = LAYER, **target: Any) -> dict:
    if digest is not None:
        target["digest"] = digest
    return {
        "id": "6e0f8a4c-0000-0000-0000-000000000000",
        "timestamp": "2026-11-28T10:00:00.000000000Z",
        "action": action,
        "target": {"repository": repository, **target},
        "request": {"method": "DELETE", "useragent": "blobcache-tests"},
        "actor": {},
        "source": {"addr": "registry:5000"},
    }


def send(
    client: Client,
    *events: dict,
    secret: str | None = SECRET,
    header: str = "Authorization",
    content_type: str = EVENTS,
    raw: str | None = None,
) -> Any:
    extra = {} if secret is None else {f"HTTP_{header.upper().replace('-', '_')}": secret}
    body = raw if raw is not None else json.dumps({"events": list(events)})
    return client.post(URL, body, content_type=content_type, **extra)


def outcome(**counts: int) -> dict[str, int]:
    return {"events": 0, "cleared": 0, "unknown": 0, "ignored": 0, "corrupt": 0, **counts}


@pytest.fixture()
def receiver(settings: Any, redis_client: redis.Redis) -> Client:
    """A client the way the registry is one: no session, no CSRF token, just the header."""
    settings.BLOBCACHE = {**settings.BLOBCACHE, "NOTIFICATIONS_SECRET": SECRET}
    return Client(enforce_csrf_checks=True)


@pytest.fixture()
def shared(cache: DescriptorCache, redis_client: redis.Redis) -> redis.Redis:
    """LAYER and CONFIG in team/app and library/alpine, as after a push and a mount."""
    for repository in (APP, ALPINE):
        for digest in (LAYER, CONFIG):
            cache.repository_scoped(repository).set_descriptor(
                digest, Descriptor(digest, 10, OCTET)
            )
    return redis_client


class TestDeletes:
    @pytest.mark.parametrize("content_type", [EVENTS, "application/json"])
    def test_blob_delete_clears_that_repository_entry(
        self, receiver: Client, shared: redis.Redis, content_type: str
    ) -> None:
        before = dump(shared)
        response = send(receiver, event("delete"), content_type=content_type)
        assert response.status_code == 200
        assert response.json() == outcome(events=1, cleared=1)
        after = dump(shared)
        # 3.1+ semantics: membership, repository hash and global fields of LAYER in team/app.
        assert set(before) - set(after) == {
            f"repository::{APP}::blobs::{LAYER}",
            f"blobs::{LAYER}",
        }
        assert shared.smembers(f"repository::{APP}::blobs") == {CONFIG}
        assert shared.smembers(f"repository::{ALPINE}::blobs") == {LAYER, CONFIG}

    def test_replay_is_200_and_changes_nothing(self, receiver: Client, shared: redis.Redis) -> None:
        assert send(receiver, event("delete")).status_code == 200
        before = dump(shared)
        replay = send(receiver, event("delete"))
        assert replay.status_code == 200
        assert replay.json() == outcome(events=1, unknown=1)
        assert dump(shared) == before

    def test_manifest_delete_pair_and_repeats_in_one_envelope(
        self, receiver: Client, shared: redis.Redis
    ) -> None:
        before = dump(shared)
        response = send(
            receiver,
            event(
                "delete", digest=MANIFEST, mediaType="application/vnd.oci.image.manifest.v1+json"
            ),
            event("delete", digest=None, tag="latest"),
            event("delete", digest=CONFIG),
            event("delete", digest=CONFIG),
        )
        assert response.status_code == 200
        # The manifest was never a member (manifests only get global entries): unknown.
        assert response.json() == outcome(events=4, cleared=1, unknown=1, ignored=2)
        assert set(before) - set(dump(shared)) == {
            f"repository::{APP}::blobs::{CONFIG}",
            f"blobs::{CONFIG}",
        }

    @pytest.mark.parametrize(
        "odd",
        [
            event("push"),
            event("pull"),
            event("mount"),
            event("frobnicate"),
            event("delete", digest="sha256:not-hex"),
            event("delete", digest="md5:" + "0" * 32),
            event("delete", repository="Team/App"),
            event("delete", repository=None),
            {"action": "delete", "target": "team/app"},
            {"action": "delete"},
            {},
        ],
        ids=[
            "push",
            "pull",
            "mount",
            "unknown-action",
            "bad-digest",
            "md5",
            "bad-name",
            "no-name",
            "target-not-object",
            "no-target",
            "empty-event",
        ],
    )
    def test_events_that_clear_nothing_are_200_and_ignored(
        self, receiver: Client, shared: redis.Redis, odd: dict
    ) -> None:
        before = dump(shared)
        response = send(receiver, odd)
        assert response.status_code == 200
        assert response.json() == outcome(events=1, ignored=1)
        assert dump(shared) == before

    def test_empty_events_list(self, receiver: Client, shared: redis.Redis) -> None:
        response = send(receiver)
        assert (response.status_code, response.json()) == (200, outcome())

    def test_corrupt_entry_is_reported_not_retried(
        self, receiver: Client, redis_client: redis.Redis
    ) -> None:
        redis_client.set(f"repository::{APP}::blobs", "not a set")
        response = send(receiver, event("delete"))
        assert response.status_code == 200
        assert response.json() == outcome(events=1, corrupt=1)
        assert redis_client.get(f"repository::{APP}::blobs") == "not a set"


class TestSecret:
    @pytest.mark.parametrize(
        ("secret", "message"),
        [
            (None, "the Authorization header with the shared secret is missing"),
            ("wrong", "the Authorization header does not carry the shared secret"),
            (SECRET + "x", "the Authorization header does not carry the shared secret"),
            ("", "the Authorization header does not carry the shared secret"),
        ],
        ids=["missing", "wrong", "longer", "empty"],
    )
    def test_wrong_or_missing_secret_is_401(
        self, receiver: Client, shared: redis.Redis, secret: str | None, message: str
    ) -> None:
        before = dump(shared)
        response = send(receiver, event("delete"), secret=secret)
        assert response.status_code == 401
        assert response.json() == envelope("UNAUTHORIZED", message)
        assert response["WWW-Authenticate"] == 'Secret realm="blobcache notifications"'
        assert dump(shared) == before

    def test_the_secret_is_checked_before_the_body_is_read(self, receiver: Client) -> None:
        response = send(receiver, raw="{not json", secret="wrong")
        assert response.status_code == 401

    def test_configured_header(self, settings: Any, receiver: Client, shared: redis.Redis) -> None:
        settings.BLOBCACHE = {
            **settings.BLOBCACHE,
            "NOTIFICATIONS_SECRET": SECRET,
            "NOTIFICATIONS_HEADER": "X-Registry-Secret",
        }
        assert send(receiver, event("delete")).status_code == 401
        response = send(receiver, event("delete"), header="X-Registry-Secret")
        assert (response.status_code, response.json()) == (200, outcome(events=1, cleared=1))

    def test_a_logged_in_superuser_is_no_registry(
        self, receiver: Client, shared: redis.Redis, superuser: User
    ) -> None:
        client = Client()
        client.force_login(superuser)  # a real session cookie; the receiver ignores it
        before = dump(shared)
        response = send(client, event("delete"), secret=None)
        assert response.status_code == 401
        assert dump(shared) == before

    def test_unconfigured_receiver_refuses_everything(
        self, settings: Any, shared: redis.Redis
    ) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "NOTIFICATIONS_SECRET": None}
        before = dump(shared)
        response = send(Client(), event("delete"))
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        assert response.json() == envelope(
            "NOTIFICATIONS_UNCONFIGURED",
            "the notifications receiver is off: set BLOBCACHE['NOTIFICATIONS_SECRET']",
        )
        assert dump(shared) == before

    @pytest.mark.parametrize("secret", [None, ""])
    def test_without_a_secret_the_authentication_accepts_nobody(
        self, settings: Any, secret: str | None
    ) -> None:
        # A host reusing the authentication class elsewhere gets "not authenticated" (401),
        # never a sender that matched an empty secret.
        settings.BLOBCACHE = {**settings.BLOBCACHE, "NOTIFICATIONS_SECRET": secret}
        # The header carries exactly what comparing with the unset secret would match.
        request = APIRequestFactory().post(URL, HTTP_AUTHORIZATION=str(secret))
        authentication = notifications.NotificationSecretAuthentication()
        assert authentication.authenticate(Request(request)) is None


class TestMalformed:
    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ("{not json", None),
            ("", "the body is not a notification envelope: no events list"),
            ("[]", "the body is not a notification envelope: no events list"),
            ('{"events": {}}', "the body is not a notification envelope: no events list"),
            ('{"Events": []}', "the body is not a notification envelope: no events list"),
            (
                '{"events": [1]}',
                "the body is not a notification envelope: an event is not an object",
            ),
        ],
        ids=["json", "empty", "list", "events-object", "wrong-key", "event-number"],
    )
    def test_malformed_body_is_400_and_changes_nothing(
        self, receiver: Client, shared: redis.Redis, raw: str, message: str | None
    ) -> None:
        before = dump(shared)
        response = send(receiver, raw=raw)
        assert response.status_code == 400
        (error,) = response.json()["errors"]
        assert (error["code"], error["detail"]) == ("REQUEST_INVALID", None)
        if message is None:
            assert error["message"].startswith("the request body is not valid JSON: ")
        else:
            assert error["message"] == message
        assert dump(shared) == before

    def test_other_content_types_are_415(self, receiver: Client) -> None:
        response = send(receiver, content_type="text/plain")
        assert response.status_code == 415
        assert response.json()["errors"][0]["code"] == "UNSUPPORTED"

    def test_only_post(self, receiver: Client) -> None:
        response = receiver.get(URL, HTTP_AUTHORIZATION=SECRET)
        assert response.status_code == 405
        assert response["Allow"] == "POST"


@pytest.mark.standalone  # a private standalone server, stopped or frozen
class TestRedisDown:
    """The registry waits for the answer before sending the next envelope: 503 within 1 s."""

    def assert_quick_503(self, receiver: Client, port: int) -> None:
        started = time.monotonic()
        response = send(receiver, event("delete"))
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert elapsed < 1.0, elapsed
        assert response["Retry-After"] == "1"
        (error,) = response.json()["errors"]
        assert error["code"] == "UNAVAILABLE"

    def test_stopped(self, receiver: Client, private_redis: PrivateRedis) -> None:
        private_redis.stop()
        self.assert_quick_503(receiver, private_redis.port)

    def test_frozen(self, receiver: Client, private_redis: PrivateRedis) -> None:
        # A pooled connection first, so the request meets a hung socket, not a refused one.
        assert send(receiver, event("delete")).status_code == 200
        os.kill(private_redis.process.process.pid, signal.SIGSTOP)
        try:
            self.assert_quick_503(receiver, private_redis.port)
        finally:
            os.kill(private_redis.process.process.pid, signal.SIGCONT)
        # Once Redis answers again, the registry's retry goes through.
        deadline = time.monotonic() + 5
        while (response := send(receiver, event("delete"))).status_code != 200:
            assert time.monotonic() < deadline, response.content
        assert response.json() == outcome(events=1, unknown=1)


def digest_number(number: int) -> str:
    return f"sha256:{number:064x}"


def cache_entries(cache: DescriptorCache, repository: str, numbers: range) -> None:
    scoped = cache.repository_scoped(repository)
    for number in numbers:
        scoped.set_descriptor(digest_number(number), Descriptor(digest_number(number), 10, OCTET))


@pytest.fixture()
def blocked_signal() -> Iterator[threading.Event]:
    """The first ``descriptor_cleared`` of the test blocks its worker until the event is set.

    It is sent after the batch's writes, so the worker is held between two batches, the way a
    slow Redis would hold it, while Redis itself stays healthy.
    """
    release = threading.Event()
    first = threading.Lock()

    def hold(**kwargs: Any) -> None:
        if first.acquire(blocking=False):
            release.wait(10)

    signals.descriptor_cleared.connect(hold, weak=False)
    try:
        yield release
    finally:
        release.set()
        signals.descriptor_cleared.disconnect(hold)
        wait_for_idle_receiver()


@pytest.fixture()
def held_slot(
    settings: Any, receiver: Client, shared: redis.Redis, blocked_signal: threading.Event
) -> threading.Event:
    """The receiver's only slot, held by an envelope that timed out while its job waits between
    two batches; setting the event lets the job go on."""
    settings.BLOBCACHE = {
        **settings.BLOBCACHE,
        "NOTIFICATIONS_TIMEOUT": 0.3,
        "NOTIFICATIONS_MAX_JOBS": 1,
    }
    assert send(receiver, event("delete")).status_code == 503
    return blocked_signal


def wait_for_idle_receiver() -> None:
    """Until every receiver job of this process has ended (abandoned ones included)."""
    deadline = time.monotonic() + 10
    while notifications._slots.taken:
        assert time.monotonic() < deadline, "a receiver job is still running"
        time.sleep(0.01)


class TestBounds:
    def test_a_thousand_events_are_cleared_in_batches_within_the_deadline(
        self, receiver: Client, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        cache_entries(cache, "library/keep", range(2000, 2010))
        expected = dump(redis_client)
        # 950 cached entries over 10 repositories, and 50 deletes of entries never cached.
        events = []
        for number in range(1000):
            repository = f"team/app{number % 10}"
            if number < 950:
                cache_entries(cache, repository, range(number, number + 1))
            events.append(event("delete", repository=repository, digest=digest_number(number)))
        started = time.monotonic()
        response = send(receiver, *events)
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.content
        assert response.json() == outcome(events=1000, cleared=950, unknown=50)
        assert dump(redis_client) == expected
        assert elapsed < blobcache_settings.NOTIFICATIONS_TIMEOUT

    @pytest.mark.standalone  # INFO commandstats of the one server
    def test_one_script_call_per_repository_and_batch(
        self, receiver: Client, cache: DescriptorCache, redis_client: redis.Redis
    ) -> None:
        size = notifications.EVENTS_PER_BATCH
        events = []
        for number in range(2 * size):
            repository = f"team/app{number % 3}"
            cache_entries(cache, repository, range(number, number + 1))
            events.append(event("delete", repository=repository, digest=digest_number(number)))
        redis_client.config_resetstat()
        response = send(receiver, *events)
        assert response.json() == outcome(events=2 * size, cleared=2 * size)
        stats = redis_client.info("commandstats")
        # Two batches of three repositories each; no command per event.
        assert stats["cmdstat_evalsha"]["calls"] == 6
        assert redis_client.dbsize() == 0

    def test_corrupt_repository_does_not_stop_the_others_of_its_batch(
        self, receiver: Client, shared: redis.Redis
    ) -> None:
        shared.set("repository::team/broken::blobs", "not a set")
        before = dump(shared)
        response = send(
            receiver,
            event("delete", repository="team/broken", digest=LAYER),
            event("delete", repository="team/broken", digest=CONFIG),
            event("delete", digest=LAYER),
        )
        assert response.json() == outcome(events=3, cleared=1, corrupt=2)
        assert set(before) - set(dump(shared)) == {
            f"repository::{APP}::blobs::{LAYER}",
            f"blobs::{LAYER}",
        }
        assert shared.get("repository::team/broken::blobs") == "not a set"

    def test_the_work_acts_as_the_registry_through_the_receiver(
        self, receiver: Client, shared: redis.Redis
    ) -> None:
        seen: list[actor.Actor] = []

        def record(**kwargs: Any) -> None:
            seen.append(actor.current_actor())

        signals.descriptor_cleared.connect(record, weak=False)
        try:
            assert send(receiver, event("delete")).status_code == 200
        finally:
            signals.descriptor_cleared.disconnect(record)
        # Named by the instance address the registry puts in each event's source.
        assert seen == [actor.Actor(actor.NOTIFICATIONS, "registry:5000")]

    def test_a_timed_out_run_starts_no_further_batch(
        self,
        settings: Any,
        receiver: Client,
        cache: DescriptorCache,
        redis_client: redis.Redis,
        blocked_signal: threading.Event,
    ) -> None:
        # Long enough for the first batch on a busy machine; the second waits for the signal.
        settings.BLOBCACHE = {**settings.BLOBCACHE, "NOTIFICATIONS_TIMEOUT": 1.0}
        size = notifications.EVENTS_PER_BATCH
        cache_entries(cache, APP, range(size, 2 * size))
        expected = dump(redis_client)  # what stays: the second batch's entries
        cache_entries(cache, APP, range(size))
        response = send(
            receiver, *(event("delete", digest=digest_number(n)) for n in range(2 * size))
        )
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        assert response.json() == envelope(
            "UNAVAILABLE",
            f"clearing the envelope's deletes took longer than 1 s ({size} done); "
            "the rest is left for the registry's retry",
        )
        blocked_signal.set()
        wait_for_idle_receiver()
        assert dump(redis_client) == expected

    def test_saturated_receiver_is_busy_at_once_while_redis_is_healthy(
        self, receiver: Client, shared: redis.Redis, held_slot: threading.Event
    ) -> None:
        before = dump(shared)
        started = time.monotonic()
        response = send(receiver, event("delete", digest=CONFIG))
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert elapsed < 0.2, elapsed
        assert response["Retry-After"] == "1"
        assert response.json() == envelope(
            "UNAVAILABLE",
            "the notifications receiver is busy: 1 envelopes are being cleared in this process"
            " (NOTIFICATIONS_MAX_JOBS); retry later",
        )
        assert dump(shared) == before
        assert shared.ping()
        held_slot.set()
        wait_for_idle_receiver()
        response = send(receiver, event("delete", digest=CONFIG))
        assert (response.status_code, response.json()) == (200, outcome(events=1, cleared=1))


@pytest.mark.standalone  # a private server, stopped: any Redis call would answer 503
class TestTooLarge:
    def test_too_many_bytes_is_413_before_any_redis_call(
        self, receiver: Client, private_redis: PrivateRedis
    ) -> None:
        private_redis.stop()
        events = [event("delete", digest=digest_number(n)) for n in range(10_000)]
        body = json.dumps({"events": events})
        response = send(receiver, raw=body)
        assert response.status_code == 413
        assert response.json() == envelope(
            "REQUEST_TOO_LARGE",
            f"the envelope has {len(body)} bytes, more than NOTIFICATIONS_MAX_BYTES (1048576)",
        )

    def test_too_many_events_is_413_before_any_redis_call(
        self, settings: Any, receiver: Client, private_redis: PrivateRedis
    ) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "NOTIFICATIONS_MAX_EVENTS": 10}
        private_redis.stop()
        response = send(receiver, *(event("delete", digest=digest_number(n)) for n in range(11)))
        assert response.status_code == 413
        assert response.json() == envelope(
            "REQUEST_TOO_LARGE",
            "the envelope has 11 events, more than NOTIFICATIONS_MAX_EVENTS (10)",
        )

    def test_at_the_limits_the_envelope_is_cleared(
        self, settings: Any, receiver: Client, shared: redis.Redis
    ) -> None:
        body = json.dumps({"events": [event("delete")] * 10})
        settings.BLOBCACHE = {
            **settings.BLOBCACHE,
            "NOTIFICATIONS_MAX_EVENTS": 10,
            "NOTIFICATIONS_MAX_BYTES": len(body),
        }
        response = send(receiver, raw=body)
        assert (response.status_code, response.json()) == (
            200,
            outcome(events=10, cleared=1, ignored=9),
        )


class TestLimitSettings:
    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("NOTIFICATIONS_MAX_JOBS", 0, "a whole number above 0"),
            ("NOTIFICATIONS_MAX_EVENTS", "1000", "a whole number above 0"),
            ("NOTIFICATIONS_MAX_BYTES", True, "a whole number above 0"),
            ("NOTIFICATIONS_MAX_BYTES", 1.5, "a whole number above 0"),
            ("NOTIFICATIONS_TIMEOUT", 0, "a number of seconds above 0"),
            ("NOTIFICATIONS_TIMEOUT", float("inf"), "a number of seconds above 0"),
            ("NOTIFICATIONS_TIMEOUT", "0.8", "a number of seconds above 0"),
        ],
    )
    def test_a_bad_limit_is_e006_and_turns_the_receiver_off(
        self, settings: Any, receiver: Client, shared: redis.Redis, name: str, value: Any,
        message: str,
    ) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, name: value}
        expected = f"BLOBCACHE[{name!r}] must be {message}, not {value!r}"
        (error,) = check_notifications_limits()
        assert (error.id, error.msg) == (E006, expected)
        before = dump(shared)
        response = send(receiver, event("delete"))
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        assert response.json() == envelope(
            "NOTIFICATIONS_UNCONFIGURED", f"the notifications receiver is off: {expected}"
        )
        assert dump(shared) == before

    def test_the_defaults_and_other_positive_values_pass(self, settings: Any) -> None:
        assert check_notifications_limits() == []
        settings.BLOBCACHE = {
            **settings.BLOBCACHE,
            "NOTIFICATIONS_TIMEOUT": 2,
            "NOTIFICATIONS_MAX_JOBS": 1,
            "NOTIFICATIONS_MAX_EVENTS": 1,
            "NOTIFICATIONS_MAX_BYTES": 1,
        }
        assert check_notifications_limits() == []


def events_counted(action: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "blobcache_notifications_events_total", {"action": action, "outcome": outcome}
    )
    return value or 0.0


@pytest.mark.django_db
class TestAuditAndMetrics:
    """One audit row per envelope that deletes something; every event counted by outcome."""

    def test_one_row_and_the_events_by_outcome(self, receiver: Client, shared: redis.Redis) -> None:
        counted = {
            (action, name): events_counted(action, name)
            for action, name in [
                ("delete", "cleared"),
                ("delete", "unknown"),
                ("push", "ignored"),
                ("pull", "ignored"),
            ]
        }
        response = send(
            receiver,
            event("delete"),
            event("delete", repository=ALPINE, digest=MANIFEST),
            event("push"),
            event("pull"),
            event("pull"),
        )
        assert response.status_code == 200
        counts = outcome(events=5, cleared=1, unknown=1, ignored=3)
        assert response.json() == counts
        assert audit_rows() == [
            audit_row(
                "notifications",
                interface="notifications",
                user="registry:5000",
                scope="repository",
                cleared=1,
                counts=counts,
            )
        ]
        assert {
            key: events_counted(*key) - before for key, before in counted.items()
        } == {
            ("delete", "cleared"): 1,
            ("delete", "unknown"): 1,
            ("push", "ignored"): 1,
            ("pull", "ignored"): 2,
        }

    def test_envelopes_without_deletes_write_no_row(
        self, receiver: Client, shared: redis.Redis
    ) -> None:
        assert send(receiver, event("push"), event("pull")).status_code == 200
        assert audit_rows() == []

    def test_the_peer_names_a_sender_without_source(
        self, receiver: Client, shared: redis.Redis
    ) -> None:
        anonymous = event("delete")
        del anonymous["source"]
        assert send(receiver, anonymous).status_code == 200
        assert [row["user"] for row in audit_rows()] == ["127.0.0.1"]

    @pytest.mark.standalone
    def test_redis_down_is_recorded_unavailable(
        self, receiver: Client, private_redis: PrivateRedis
    ) -> None:
        unavailable = events_counted("delete", "unavailable")
        private_redis.stop()
        assert send(receiver, event("delete"), event("delete", digest=CONFIG)).status_code == 503
        (row,) = audit_rows()
        assert row["outcome"] == "unavailable"
        assert row["counts"] == {"events": 2, "deletes": 2}
        assert row["cleared"] is None
        assert events_counted("delete", "unavailable") - unavailable == 2

    def test_a_busy_receiver_records_nothing(
        self, receiver: Client, shared: redis.Redis, held_slot: threading.Event
    ) -> None:
        assert send(receiver, event("delete", digest=CONFIG)).status_code == 503  # busy
        held_slot.set()
        # The timed-out envelope is recorded (its first batch did clear); the busy one did
        # nothing and is not.
        (row,) = audit_rows()
        assert (row["outcome"], row["counts"]) == ("unavailable", {"events": 1, "deletes": 1})
        assert "took longer than 0.3 s (1 done)" in row["detail"]
