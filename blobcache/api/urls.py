"""Routes: each answers with and without a trailing slash, directly (no redirect).

Repository names contain slashes, so the name is everything up to the last ``/blobs`` before
the digest (``team/blobs/app`` routes as one name). The member listing comes first: a path
ending in ``/blobs`` is always a listing, since no digest is spelled "blobs". A name matches
any character, a newline too, so that every name reaches the view and its 400 ``NAME_INVALID``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.urls import URLPattern, re_path

from blobcache.api import views
from blobcache.api.exceptions import not_found
from blobcache.api.monitoring import HealthView, MetricsView
from blobcache.api.notifications import NotificationsView
from blobcache.api.reconcile import ReconcileViewSet

app_name = "blobcache_api"

View = Callable[..., HttpResponseBase]

_DESCRIPTOR = {"get": "retrieve", "put": "update", "delete": "destroy"}


def _unlisted(view: View) -> View:
    """The same view, hidden from the OpenAPI schema (it lists DRF views by their ``cls``)."""

    def call(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return view(request, *args, **kwargs)

    call.csrf_exempt = True  # type: ignore[attr-defined]
    return call


def _both_slashes(pattern: str, view: View, name: str) -> list[URLPattern]:
    """``pattern`` (no trailing slash, the documented form) and its twin with one."""
    return [
        re_path(rf"^{pattern}$", view, name=name),
        re_path(rf"^{pattern}/$", _unlisted(view)),
    ]


urlpatterns = [
    *_both_slashes("schema", views.SchemaView.as_view(), "schema"),
    *_both_slashes("docs", views.DocsView.as_view(), "docs"),
    *_both_slashes(
        r"blobs/(?P<digest>[^/]+)",
        views.GlobalDescriptorViewSet.as_view(_DESCRIPTOR),
        "blob",
    ),
    *_both_slashes(
        "repositories",
        views.RepositoryViewSet.as_view({"get": "list"}),
        "repositories",
    ),
    *_both_slashes(
        r"repositories/(?P<name>(?s:.+))/blobs",
        views.RepositoryMemberViewSet.as_view({"get": "list", "delete": "clear"}),
        "repository-blobs",
    ),
    *_both_slashes(
        r"repositories/(?P<name>(?s:.+))/blobs/(?P<digest>[^/]+)",
        views.RepositoryDescriptorViewSet.as_view(_DESCRIPTOR),
        "repository-blob",
    ),
    # Reconciliation with the registry's storage, and the registry's notifications.
    *_both_slashes("reconcile", ReconcileViewSet.as_view({"post": "create"}), "reconcile"),
    *_both_slashes("notifications", NotificationsView.as_view(), "notifications"),
    *_both_slashes("metrics", MetricsView.as_view(), "metrics"),
    *_both_slashes("health", HealthView.as_view(), "health"),
    re_path(r"", not_found, name="not-found"),
]
