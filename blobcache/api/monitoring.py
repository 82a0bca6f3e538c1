"""``GET /api/metrics`` (Prometheus) and ``GET /api/health`` (load balancers, orchestrators).

Metrics reveal how the cache is used, so they are off until the host says who may scrape: a
bearer token (``METRICS_TOKEN``, what a Prometheus ``authorization`` block sends) and/or users
holding ``blobcache.view_descriptor`` (``METRICS_ALLOW_USERS``). Switched off, the route answers
exactly like an unknown one. Health needs no credentials and says nothing secret: a probe must
work before anyone can log in, and it names no address.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from rest_framework import status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from blobcache import health, metrics
from blobcache.api import exceptions as api_exceptions
from blobcache.api.content import JSONOnlyNegotiation
from blobcache.api.permissions import VIEW
from blobcache.api.views import _classes
from blobcache.conf import blobcache_settings
from blobcache.exceptions import RequestInvalid


class MonitoringView(api_exceptions.RegistryEnvelopeMixin, APIView):
    """JSON errors in the registry's envelope; no throttling (a scraper polls on a schedule)."""

    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnlyNegotiation
    throttle_classes: list[Any] = []
    http_method_names = ["get", "head"]


# --- metrics -------------------------------------------------------------------------------------


class MetricsScraper:
    """``request.user`` for a caller that sent the metrics token; it is no Django user."""

    is_authenticated = True
    is_anonymous = False
    username = "metrics-scraper"


class MetricsTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <METRICS_TOKEN>``, compared in constant time."""

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[MetricsScraper, None] | None:
        token = blobcache_settings.METRICS_TOKEN
        parts = get_authorization_header(request).split()
        if not token or len(parts) != 2 or parts[0].lower() != self.keyword:
            return None
        if hmac.compare_digest(parts[1], str(token).encode("utf-8")):
            return MetricsScraper(), None
        if blobcache_settings.METRICS_ALLOW_USERS:
            return None  # perhaps the host's own bearer scheme (a JWT): let it try
        raise AuthenticationFailed("the bearer token is not the metrics token")

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="blobcache metrics"'


class MetricsPermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if isinstance(user, MetricsScraper):
            return True
        if not blobcache_settings.METRICS_ALLOW_USERS:
            return False
        return bool(user and user.is_authenticated and user.has_perm(VIEW))


def metrics_exposed() -> bool:
    return bool(
        blobcache_settings.METRICS
        and (blobcache_settings.METRICS_TOKEN or blobcache_settings.METRICS_ALLOW_USERS)
    )


_exposition: CollectorRegistry | None = None


def exposition() -> CollectorRegistry:
    """One per process: in multiprocess mode it reads every worker's files at each scrape."""
    global _exposition
    if _exposition is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(metrics.ExpositionCollector())
        _exposition = registry
    return _exposition


class MetricsView(MonitoringView):
    permission_classes = [MetricsPermission]

    def get_authenticators(self) -> list[BaseAuthentication]:
        authenticators: list[BaseAuthentication] = [MetricsTokenAuthentication()]
        if blobcache_settings.METRICS_ALLOW_USERS:
            classes = _classes(
                blobcache_settings.AUTHENTICATION_CLASSES,
                api_settings.DEFAULT_AUTHENTICATION_CLASSES,
            )
            authenticators += [cls() for cls in classes]
        return authenticators

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if not metrics_exposed():
            raise api_exceptions.no_route(request.path)
        super().initial(request, *args, **kwargs)

    @extend_schema(exclude=True)
    def get(self, request: Request, **kwargs: Any) -> HttpResponse:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return HttpResponse(encoder(exposition()), content_type=content_type)


# --- health --------------------------------------------------------------------------------------

LIVE_VALUES = {"1": True, "0": False}


class HealthView(MonitoringView):
    """Readiness by default (Redis answers a PING); ``?live=1`` is liveness (the process serves
    requests), which must not fail while Redis is down or an orchestrator restarts healthy
    workers for nothing."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(exclude=True)
    def get(self, request: Request, **kwargs: Any) -> Response:
        live = request.query_params.get("live", "0")
        if live not in LIVE_VALUES:
            raise RequestInvalid(f"live must be 1 or 0, not {live[:20]!r}")
        if LIVE_VALUES[live]:
            return Response({"status": "ok"})
        report = health.check()
        if report.healthy:
            return Response(report.as_dict())
        return Response(
            report.as_dict(),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(blobcache_settings.RETRY_AFTER)},
        )

