"""``POST /api/notifications``: the receiver for the registry's notifications.

Registries before 3.1 leave a deleted blob's membership in Redis and serve the blob again in
that repository once another repository refills the global entry (SPEC B.7.1, B.8.3.3). The
registry announces every blob and manifest ``delete`` to its notification endpoints, so this
receiver clears that repository-scoped entry with 3.1+ semantics and closes the flaw without
upgrading the registry. Point an endpoint at it (``notifications.endpoints[].url``) with the
shared secret in ``headers``.

The registry delivers an endpoint's events one envelope at a time and retries a failed envelope
until it succeeds, so this view answers 2xx for anything retrying cannot change (a replay, an
unknown action, an event naming no digest, a corrupt entry), 400 only for a body that is no
envelope at all, and 503 when Redis does not answer within ``NOTIFICATIONS_TIMEOUT``: then the
registry retries, and clearing again is harmless.

It uses none of Django's user authentication (the registry has no user) and no CSRF token: the
secret in the configured header, compared in constant time, is the authentication.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from typing import Any

from django.db import connections
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, ParseError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from blobcache.api import exceptions as api_exceptions
from blobcache.api.content import DescriptorJSONParser, JSONOnlyNegotiation
from blobcache.api.reconcile import REQUEST_INVALID
from blobcache.cache import DescriptorCache, get_descriptor_cache
from blobcache.conf import blobcache_settings
from blobcache.digest import validate_digest
from blobcache.exceptions import (
    BlobUnknown,
    CacheUnavailable,
    DescriptorCorrupt,
    DigestInvalid,
    NameInvalid,
)
from blobcache.reference import validate_repository_name

logger = logging.getLogger(__name__)

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
NOTIFICATIONS_UNCONFIGURED = "NOTIFICATIONS_UNCONFIGURED"
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

    def authenticate(self, request: Request) -> tuple[RegistrySender, None]:
        secret = blobcache_settings.NOTIFICATIONS_SECRET
        if not secret:
            # Never accept deletes from anyone when no secret is set: the receiver is off.
            raise api_exceptions.RegistryError(
                NOTIFICATIONS_UNCONFIGURED,
                "the notifications receiver is off: set BLOBCACHE['NOTIFICATIONS_SECRET']",
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
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


def deletes_in(envelope: Any) -> tuple[list[tuple[str, str]], Outcome]:
    """The (repository, digest) pairs an envelope deletes, each once, validated.

    Raises ``ParseError`` for a body that is not an envelope at all; an odd event inside a
    valid envelope is ignored, since the registry would resend it forever.
    """
    if not isinstance(envelope, dict) or not isinstance(envelope.get("events"), list):
        raise ParseError("the body is not a notification envelope: no events list")
    outcome = Outcome(events=len(envelope["events"]))
    targets: dict[tuple[str, str], None] = {}
    for event in envelope["events"]:
        if not isinstance(event, dict):
            raise ParseError("the body is not a notification envelope: an event is not an object")
        pair = _delete_target(event.get("action"), event.get("target"))
        if pair is None or pair in targets:
            outcome.ignored += 1
        else:
            targets[pair] = None
    return list(targets), outcome


def _delete_target(action: Any, target: Any) -> tuple[str, str] | None:
    # A manifest DELETE also sends an event for the tag, without a digest: nothing to clear.
    if action != DELETE_ACTION or not isinstance(target, dict):
        return None
    repository, digest = target.get("repository"), target.get("digest")
    try:
        return validate_repository_name(repository), validate_digest(digest)
    except (NameInvalid, DigestInvalid):
        return None


def clear_targets(
    cache: DescriptorCache, targets: Iterable[tuple[str, str]], outcome: Outcome
) -> Outcome:
    try:
        for repository, digest in targets:
            try:
                cache.repository_scoped(repository).clear(digest)
            except BlobUnknown:
                outcome.unknown += 1
            except DescriptorCorrupt as error:
                logger.warning("notification for %s in %s: %s", digest, repository, error)
                outcome.corrupt += 1
            else:
                logger.info("cleared %s in %s after the registry deleted it", digest, repository)
                outcome.cleared += 1
    finally:
        # Signal receivers run in this worker thread: do not leak their database connections.
        connections.close_all()
    return outcome


_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _worker() -> ThreadPoolExecutor:
    """Created on first use, so a server that forks its workers gets one pool per process."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="blobcache-events")
        return _executor


def within_deadline(work: Callable[[], Outcome], timeout: float) -> Outcome:
    """Run ``work`` with a deadline, whatever the Redis client's own timeouts and retries.

    On timeout the work goes on in its thread (until the client's socket timeout ends it); the
    registry retries the envelope, and clearing twice is harmless.
    """
    future = _worker().submit(work)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        raise CacheUnavailable(f"Redis did not answer within {timeout:g} s") from None


class NotificationsView(APIView):
    """Receives the registry's event envelopes and clears what its deletes left in Redis."""

    renderer_classes = [JSONRenderer]
    parser_classes = [EventsJSONParser, DescriptorJSONParser]
    content_negotiation_class = JSONOnlyNegotiation
    authentication_classes = [NotificationSecretAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes: list[Any] = []
    http_method_names = ["post"]

    def get_exception_handler(self) -> Callable[..., Response | None]:
        return api_exceptions.exception_handler

    # The registry's webhook, not part of the API clients use (and not their authentication).
    @extend_schema(exclude=True)
    def post(self, request: Request, **kwargs: Any) -> Response:
        try:
            envelope = request.data
            targets, outcome = deletes_in(envelope)
        except ParseError as error:
            raise api_exceptions.RegistryError(REQUEST_INVALID, str(error.detail)) from None
        if targets:
            cache = get_descriptor_cache()
            outcome = within_deadline(
                lambda: clear_targets(cache, targets, outcome),
                float(blobcache_settings.NOTIFICATIONS_TIMEOUT),
            )
        return Response(asdict(outcome))
