"""The registry's error envelope for every error the API answers.

Clients of the distribution registry already parse ``{"errors": [{"code", "message", "detail"}]}``,
so the API speaks the same shape for its own errors and for DRF's (authentication, permissions,
parsing, throttling). The handler is installed per view (``get_exception_handler``) rather than
through ``REST_FRAMEWORK["EXCEPTION_HANDLER"]``, which belongs to the host project.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import RedisError
from rest_framework import exceptions as drf
from rest_framework import status
from rest_framework.response import Response

from blobcache import exceptions as domain
from blobcache.conf import blobcache_settings

#: The registry code of each DRF error, first match wins. An authentication failure DRF answers
#: with 403 (no challenge to send) is DENIED rather than UNAUTHORIZED, like the registry's.
DRF_CODES: list[tuple[type[drf.APIException] | tuple[type[drf.APIException], ...], str]] = [
    ((drf.NotAuthenticated, drf.AuthenticationFailed), domain.UNAUTHORIZED),
    (drf.PermissionDenied, domain.DENIED),
    ((drf.MethodNotAllowed, drf.UnsupportedMediaType, drf.NotAcceptable), domain.UNSUPPORTED),
    (drf.Throttled, domain.TOOMANYREQUESTS),
    ((drf.ParseError, drf.ValidationError), domain.DescriptorInvalid.code),
    (drf.NotFound, domain.RouteNotFound.code),
]


#: Messages quote the offending input; a megabyte of name is not worth echoing back.
MESSAGE_MAX_LENGTH = 1000


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    if len(message) > MESSAGE_MAX_LENGTH:
        message = message[: MESSAGE_MAX_LENGTH - 3] + "..."
    return {"errors": [{"code": code, "message": message, "detail": detail}]}


def _server_paths() -> list[tuple[str, str]]:
    """Absolute paths of this server that messages may name, each with the setting naming it."""
    paths: list[tuple[str, str]] = []
    section = blobcache_settings.STORAGE
    folder = section.get("filesystem") if isinstance(section, dict) else None
    if isinstance(folder, dict) and isinstance(folder.get("rootdirectory"), str):
        paths.append(
            (
                os.path.normpath(folder["rootdirectory"]),
                "BLOBCACHE['STORAGE']['filesystem']['rootdirectory']",
            )
        )
    root = blobcache_settings.STORAGE_ROOT
    if root:
        paths.append((os.path.normpath(os.fspath(root)), "BLOBCACHE['STORAGE_ROOT']"))
    try:
        from blobcache.cache import get_descriptor_cache

        socket = get_descriptor_cache().client.connection_pool.connection_kwargs.get("path")
    except Exception:  # noqa: BLE001 - an error is being answered; no other may replace it
        socket = None
    if socket:
        where = (
            "BLOBCACHE['CLIENT_FACTORY']"
            if blobcache_settings.CLIENT_FACTORY
            else f"CACHES[{blobcache_settings.CACHE_ALIAS!r}]['LOCATION']"
        )
        paths.append((os.path.normpath(os.fspath(socket)), f"the Redis socket of {where}"))
    return [(path, name) for path, name in paths if os.path.isabs(path) and path != os.sep]


def hide_server_paths(message: str) -> str:
    """API callers are not the server's operators: a configured path is named by its setting.

    The commands keep the paths, since whoever runs them is on the host.
    """
    for path, name in _server_paths():
        # Not where the name goes on: a sibling with a longer name is another path.
        message = re.sub(rf"{re.escape(path)}(?![\w-])", name.replace("\\", r"\\"), message)
    return message


def _drf_code(exc: drf.APIException) -> str:
    code = next((code for kind, code in DRF_CODES if isinstance(exc, kind)), None)
    if code == domain.UNAUTHORIZED and exc.status_code != status.HTTP_401_UNAUTHORIZED:
        return domain.DENIED
    if code is None:
        unavailable = exc.status_code == status.HTTP_503_SERVICE_UNAVAILABLE
        return domain.UNAVAILABLE if unavailable else domain.UNKNOWN
    return code


def _message(exc: drf.APIException) -> str:
    detail = exc.detail
    if isinstance(detail, dict):
        detail = next(iter(detail.values()), "")
    if isinstance(detail, list):
        detail = detail[0] if detail else ""
    return str(detail) or str(exc.default_detail)


def _unavailable_headers() -> dict[str, str]:
    return {"Retry-After": str(blobcache_settings.RETRY_AFTER)}


def _error_response(error: domain.BlobCacheError) -> Response:
    # Every 503 is a state that passes (Redis, storage, configuration): say when to retry.
    unavailable = error.status_code == status.HTTP_503_SERVICE_UNAVAILABLE
    return Response(
        error_body(error.code, hide_server_paths(error.message), error.detail),
        status=error.status_code,
        headers=_unavailable_headers() if unavailable else None,
    )


def _is_redis_outage(exc: BaseException) -> bool:
    # A host's throttle or session on a Redis-backed Django cache fails with these when Redis
    # is down; that is the same outage as ours, not a server bug.
    if isinstance(exc, RedisError):
        return True
    try:
        from django_redis.exceptions import ConnectionInterrupted
    except ImportError:  # pragma: no cover - django-redis is a dependency
        return False
    return isinstance(exc, ConnectionInterrupted)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render ``exc`` in the registry's envelope; ``None`` leaves a real bug to Django (500)."""
    if isinstance(exc, domain.BlobCacheError):
        return _error_response(exc)
    if _is_redis_outage(exc):
        return _error_response(domain.CacheUnavailable())
    if isinstance(exc, RequestDataTooBig):
        # Django refuses to read a body over DATA_UPLOAD_MAX_MEMORY_SIZE; a descriptor is tiny.
        return _error_response(
            domain.RequestTooLarge(
                "the request body is larger than the server accepts "
                f"(DATA_UPLOAD_MAX_MEMORY_SIZE, {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes)"
            )
        )
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if not isinstance(exc, drf.APIException):
        return None
    headers: dict[str, str] = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if wait is not None:
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    if exc.status_code == status.HTTP_503_SERVICE_UNAVAILABLE and "Retry-After" not in headers:
        headers.update(_unavailable_headers())
    return Response(
        error_body(_drf_code(exc), _message(exc)), status=exc.status_code, headers=headers
    )


class RegistryEnvelopeMixin:
    """For every API view: errors answer in the registry's envelope through
    :func:`exception_handler`, whatever the host's ``EXCEPTION_HANDLER``."""

    def get_exception_handler(self) -> Callable[..., Response | None]:
        return exception_handler


def no_route(path: str) -> domain.RouteNotFound:
    """The answer for a URL no route matches (or a route switched off, which must not differ)."""
    return domain.RouteNotFound(f"no API route matches {path[:200]!r}")


@csrf_exempt
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """The catch-all under the API's prefix: unknown URLs answer in the envelope too.

    CSRF-exempt because it changes nothing, and the middleware would otherwise answer an
    unknown POST with Django's HTML 403 page.
    """
    error = no_route(request.path)
    return JsonResponse(
        error_body(error.code, error.message),
        status=error.status_code,
        json_dumps_params={"separators": (",", ":")},
    )
