"""``POST /api/notifications``: the receiver for the registry's notifications.

Registries before 3.1 leave a deleted blob's membership in Redis and serve the blob again in
that repository once another repository refills the global entry (CVE-2026-35172, fixed in
distribution v3.1.0 by commit 5cda72868). The registry announces every blob and manifest
``delete`` to its notification endpoints, so this receiver clears that repository-scoped entry
with 3.1+ semantics and closes the flaw without upgrading the registry. Point an endpoint at it
(``notifications.endpoints[].url``) with the shared secret in ``headers``.

The registry delivers an endpoint's events one envelope at a time and retries a failed envelope
until it succeeds, so this view answers 2xx for anything retrying cannot change (a replay, an
unknown action, an event naming no digest, a corrupt entry), 400 only for a body that is no
envelope at all, and 503 when Redis does not answer within ``NOTIFICATIONS_TIMEOUT``: then the
registry retries, and clearing again is harmless.

It uses none of Django's user authentication (the registry has no user) and no CSRF token: the
secret in the configured header, compared in constant time, is the authentication.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.db import connections
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, ParseError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from blobcache import actor, audit, bulk, metrics
from blobcache.api import exceptions as api_exceptions
from blobcache.api.content import DescriptorJSONParser, JSONOnlyNegotiation
from blobcache.cache import DescriptorCache, get_descriptor_cache
from blobcache.conf import blobcache_settings
from blobcache.digest import validate_digest
from blobcache.exceptions import (
    CacheUnavailable,
    DescriptorCorrupt,
    DigestInvalid,
    NameInvalid,
    NotificationsUnconfigured,
    ReceiverBusy,
    RequestInvalid,
    RequestTooLarge,
)
from blobcache.models import NOTIFICATIONS, REPOSITORY_SCOPE, UNAVAILABLE
from blobcache.reference import validate_repository_name

logger = logging.getLogger(__name__)

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
DELETE_ACTION = "delete"


class EventsJSONParser(DescriptorJSONParser):
    """The registry's envelope media type, parsed like any JSON body."""

    media_type = EVENTS_MEDIA_TYPE


class RegistrySender:
    """``request.user`` for a sender that proved it knows the secret; it is no Django user."""

    is_authenticated = True
    is_anonymous = False
    username = "registry"


class NotificationSecretAuthentication(BaseAuthentication):
    """The configured header must carry exactly the configured secret."""

    def authenticate(self, request: Request) -> tuple[RegistrySender, None] | None:
        secret = blobcache_settings.NOTIFICATIONS_SECRET
        if not secret:
            # Without a secret nobody is the registry (the view answers that the receiver is off).
            return None
        header = blobcache_settings.NOTIFICATIONS_HEADER
        provided = request.headers.get(header)
        if provided is None:
            raise AuthenticationFailed(f"the {header} header with the shared secret is missing")
        if not hmac.compare_digest(provided.encode("utf-8"), str(secret).encode("utf-8")):
            raise AuthenticationFailed(f"the {header} header does not carry the shared secret")
        return RegistrySender(), None

    def authenticate_header(self, request: Request) -> str:
        return 'Secret realm="blobcache notifications"'


@dataclass
class Outcome:
    """What one envelope did; the registry ignores the body, a person debugging does not."""

    events: int = 0
    cleared: int = 0
    #: Deletes whose entry was already gone (a replay, or never cached): nothing to do.
    unknown: int = 0
    #: Events that are not deletes, name no valid digest or repository, or repeat another.
    ignored: int = 0
    #: Entries that cannot be read (a key of the wrong type): left for an operator.
    corrupt: int = 0


def deletes_in(envelope: Any) -> tuple[list[tuple[str, str]], Outcome, Counter[str]]:
    """The (repository, digest) pairs an envelope deletes, each once, validated, and the
    actions of the events it ignores (counted in the metrics once the envelope is accepted).

    Raises ``ParseError`` for a body that is not an envelope at all; an odd event inside a
    valid envelope is ignored, since the registry would resend it forever.
    """
    if not isinstance(envelope, dict) or not isinstance(envelope.get("events"), list):
        raise ParseError("the body is not a notification envelope: no events list")
    outcome = Outcome(events=len(envelope["events"]))
    targets: dict[tuple[str, str], None] = {}
    ignored: Counter[str] = Counter()
    for event in envelope["events"]:
        if not isinstance(event, dict):
            raise ParseError("the body is not a notification envelope: an event is not an object")
        action = event.get("action")
        pair = _delete_target(action, event.get("target"))
        if pair is None or pair in targets:
            outcome.ignored += 1
            ignored[action if isinstance(action, str) else ""] += 1
        else:
            targets[pair] = None
    return list(targets), outcome, ignored


def sender_of(request: Request, envelope: dict[str, Any]) -> str:
    """The registry instance that sent the envelope, as the audit log names it.

    Events carry the sending instance's address in ``source.addr`` (its host name and the port
    of its ``http.addr``); the peer address stands in when they do not.
    """
    for event in envelope["events"]:
        source = event.get("source") if isinstance(event, dict) else None
        if isinstance(source, dict) and isinstance(source.get("addr"), str) and source["addr"]:
            return str(source["addr"])[:200]
    return str(request.META.get("REMOTE_ADDR") or RegistrySender.username)


def _delete_target(action: Any, target: Any) -> tuple[str, str] | None:
    # A manifest DELETE also sends an event for the tag, without a digest: nothing to clear.
    if action != DELETE_ACTION or not isinstance(target, dict):
        return None
    repository, digest = target.get("repository"), target.get("digest")
    try:
        return validate_repository_name(repository), validate_digest(digest)
    except (NameInvalid, DigestInvalid):
        return None


#: Deletes cleared per round trip: large enough that a thousand-event envelope takes a couple of
#: round trips, small enough that the batch in flight when a request is abandoned stays short.
EVENTS_PER_BATCH = 500


def clear_targets(
    cache: DescriptorCache,
    targets: list[tuple[str, str]],
    outcome: Outcome,
    stop: threading.Event,
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    def corrupt(repository: str, digests: Sequence[str], error: DescriptorCorrupt) -> None:
        logger.warning("notification for %d digests in %s: %s", len(digests), repository, error)

    try:
        result = bulk.clear_entries(
            cache,
            targets,
            batch_size=EVENTS_PER_BATCH,
            stop=stop,
            progress=progress,
            on_corrupt=corrupt,
        )
    finally:
        # Signal receivers run in this worker thread: do not leak their database connections.
        connections.close_all()
    outcome.cleared += result.cleared
    outcome.unknown += result.unknown
    outcome.corrupt += result.corrupt
    for name in ("cleared", "unknown", "corrupt"):
        metrics.count_notification_event(DELETE_ACTION, name, getattr(result, name))
    if result.cleared:
        logger.info("cleared %d entries after the registry deleted them", result.cleared)
    return outcome


class _Slots:
    """Receiver jobs running in this process, whether or not their request is still waiting.

    A job keeps its slot until its worker ends, so work abandoned by a timed-out request still
    counts: the limit bounds what Redis and the process are asked to do, not just the requests.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0

    def take(self, limit: int) -> bool:
        with self._lock:
            if self.taken >= limit:
                return False
            self.taken += 1
            return True

    def give(self) -> None:
        with self._lock:
            self.taken -= 1


_slots = _Slots()


class _Job:
    """One envelope's clears on a worker thread of its own, with the request's context."""

    def __init__(self, work: Callable[[threading.Event, Callable[[int], None]], Outcome]) -> None:
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.done = 0
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self._work = work
        # The actor (and whatever else the request set) follows the work into the thread.
        self._context = contextvars.copy_context()

    def advance(self, done: int) -> None:
        self.done += done

    def run(self) -> None:
        try:
            self.outcome = self._context.run(self._work, self.stop, self.advance)
        except BaseException as error:  # handed to the waiting request, which re-raises it
            self.error = error
        finally:
            _slots.give()
            self.finished.set()


def within_deadline(
    work: Callable[[threading.Event, Callable[[int], None]], Outcome],
    timeout: float,
    max_jobs: int,
) -> Outcome:
    """Run ``work`` with a deadline, whatever the Redis client's own timeouts and retries.

    At most ``max_jobs`` run at once in this process; beyond that the answer is "busy" at once,
    without queueing. On timeout, ``work`` is told to stop (it checks between batches), so what
    goes on after the answer is at most the batch in flight; the registry retries the envelope,
    and clearing twice is harmless.
    """
    if not _slots.take(max_jobs):
        raise ReceiverBusy(max_jobs)
    job = _Job(work)
    try:
        threading.Thread(target=job.run, name="blobcache-events", daemon=True).start()
    except BaseException:
        _slots.give()
        raise
    if not job.finished.wait(timeout):
        job.stop.set()
        if job.done:
            raise CacheUnavailable(
                f"clearing the envelope's deletes took longer than {timeout:g} s"
                f" ({job.done} done); the rest is left for the registry's retry"
            )
        raise CacheUnavailable(f"Redis did not answer within {timeout:g} s")
    if job.error is not None:
        raise job.error
    assert job.outcome is not None
    return job.outcome


@dataclass(frozen=True)
class ReceiverLimits:
    timeout: float
    max_events: int
    max_bytes: int
    max_jobs: int


_WHOLE_NUMBER_SETTINGS = (
    "NOTIFICATIONS_MAX_EVENTS",
    "NOTIFICATIONS_MAX_BYTES",
    "NOTIFICATIONS_MAX_JOBS",
)


def receiver_limits() -> ReceiverLimits:
    """The receiver's limits from the settings, checked; ``ValueError`` names a bad one.

    Check ``blobcache.E006`` reports the same error at startup; at request time the receiver
    answers as if it were off, since a zero job limit or timeout would refuse every envelope.
    """
    timeout = blobcache_settings.NOTIFICATIONS_TIMEOUT
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(
            "BLOBCACHE['NOTIFICATIONS_TIMEOUT'] must be a number of seconds above 0, "
            f"not {timeout!r}"
        )
    counts: list[int] = []
    for name in _WHOLE_NUMBER_SETTINGS:
        value = getattr(blobcache_settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"BLOBCACHE[{name!r}] must be a whole number above 0, not {value!r}")
        counts.append(value)
    return ReceiverLimits(float(timeout), *counts)


def check_length(request: Request, limit: int) -> None:
    """Refuse a body over NOTIFICATIONS_MAX_BYTES from its Content-Length, before reading it."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0  # Django then reads no body at all
    if length > limit:
        raise RequestTooLarge(
            f"the envelope has {length} bytes, more than NOTIFICATIONS_MAX_BYTES ({limit})"
        )


class NotificationsView(api_exceptions.RegistryEnvelopeMixin, APIView):
    """Receives the registry's event envelopes and clears what its deletes left in Redis."""

    renderer_classes = [JSONRenderer]
    parser_classes = [EventsJSONParser, DescriptorJSONParser]
    content_negotiation_class = JSONOnlyNegotiation
    authentication_classes = [NotificationSecretAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes: list[Any] = []
    http_method_names = ["post"]

    def perform_authentication(self, request: Request) -> None:
        # Never accept deletes from anyone when no secret is set: the receiver is off.
        if not blobcache_settings.NOTIFICATIONS_SECRET:
            raise NotificationsUnconfigured(
                "the notifications receiver is off: set BLOBCACHE['NOTIFICATIONS_SECRET']"
            )
        super().perform_authentication(request)

    # The registry's webhook, not part of the API clients use (and not their authentication).
    @extend_schema(exclude=True)
    def post(self, request: Request, **kwargs: Any) -> Response:
        try:
            limits = receiver_limits()
        except ValueError as error:
            raise NotificationsUnconfigured(f"the notifications receiver is off: {error}") from None
        check_length(request, limits.max_bytes)
        try:
            envelope = request.data
            targets, outcome, ignored = deletes_in(envelope)
        except ParseError as error:
            raise RequestInvalid(str(error.detail)) from None
        if outcome.events > limits.max_events:
            raise RequestTooLarge(
                f"the envelope has {outcome.events} events, more than NOTIFICATIONS_MAX_EVENTS"
                f" ({limits.max_events})"
            )
        for action, count in ignored.items():
            metrics.count_notification_event(action, "ignored", count)
        if targets:
            outcome = self.clear(request, envelope, targets, outcome, limits)
        return Response(asdict(outcome))

    def clear(
        self,
        request: Request,
        envelope: dict[str, Any],
        targets: list[tuple[str, str]],
        outcome: Outcome,
        limits: ReceiverLimits,
    ) -> Outcome:
        """Clear the envelope's deletes within the deadline; one audit row for the envelope.

        The row is written here, in the request's thread: a database connection opened by the
        worker thread would outlive it. A busy receiver did nothing and records nothing.
        """
        cache = get_descriptor_cache()

        def work(stop: threading.Event, progress: Callable[[int], None]) -> Outcome:
            return clear_targets(cache, targets, outcome, stop, progress)

        with actor.acting_as(actor.NOTIFICATIONS, sender_of(request, envelope)):
            try:
                outcome = within_deadline(work, limits.timeout, limits.max_jobs)
            except ReceiverBusy:
                metrics.count_notification_event(DELETE_ACTION, "unavailable", len(targets))
                raise
            except CacheUnavailable as error:
                metrics.count_notification_event(DELETE_ACTION, "unavailable", len(targets))
                audit.record(
                    NOTIFICATIONS,
                    scope=REPOSITORY_SCOPE,
                    counts={"events": outcome.events, "deletes": len(targets)},
                    outcome=UNAVAILABLE,
                    detail=str(error),
                )
                raise
            audit.record(
                NOTIFICATIONS,
                scope=REPOSITORY_SCOPE,
                cleared=outcome.cleared,
                counts=asdict(outcome),
            )
        return outcome
