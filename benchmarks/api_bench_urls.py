"""The demo project's routes plus the baseline: a minimal DRF view doing one raw HMGET.

The baseline goes through the same middleware, the same authentication classes (the token) and
DRF's dispatch, so the ratio prices what blobcache adds per request: validation, the one-script
stat, the serializer and the envelope machinery.
"""

from __future__ import annotations

from django.urls import path
from django_redis import get_redis_connection
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from blobcache import keys
from project.urls import urlpatterns as project_urlpatterns


class RawHMGETView(APIView):
    renderer_classes = [JSONRenderer]
    schema = None  # not part of the API's OpenAPI document

    def get(self, request: Request, digest: str) -> Response:
        client = get_redis_connection("default")
        found, size, media_type = client.hmget(keys.global_key(digest), keys.DESCRIPTOR_FIELDS)
        if found is None:
            return Response(status=404)
        return Response(
            {"digest": found.decode(), "size": int(size), "mediaType": media_type.decode()}
        )


# After the project's routes, so that both views pay for the same URL resolution steps.
urlpatterns = [
    *project_urlpatterns,
    path("raw/blobs/<str:digest>", RawHMGETView.as_view()),
]
