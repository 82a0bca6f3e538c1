"""The ``blobcache`` throttle scope: off until the host gives it a rate."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle


class BlobCacheScopedRateThrottle(ScopedRateThrottle):
    """``ScopedRateThrottle`` for the views' ``throttle_scope = "blobcache"``.

    DRF's class reads the rates once at import and raises ``ImproperlyConfigured`` for a scope
    without a rate, so a reusable app could not ship it enabled. This one reads
    ``DEFAULT_THROTTLE_RATES`` per request and lets everything through when the host set no
    ``"blobcache"`` rate.
    """

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request: Request, view: Any) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope or self.get_rate() is None:
            return True
        return super().allow_request(request, view)
