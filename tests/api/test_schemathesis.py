"""Property-based checks of the whole API against its own drf-spectacular schema.

Every operation gets positive and negative data, as a superuser with a real token: no 5xx, and
every response (status, content type, headers, body) must be one the schema documents.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from blobcache import Descriptor, get_descriptor_cache
from blobcache.api.views import EXAMPLE_DIGEST, EXAMPLE_NAME

MAX_EXAMPLES = 40

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture()
def token(db: Any, redis_client: Any) -> str:
    """A superuser's token, and the schema's example descriptor cached, so reads can hit."""
    scoped = get_descriptor_cache().repository_scoped(EXAMPLE_NAME)
    scoped.put(EXAMPLE_DIGEST, Descriptor(EXAMPLE_DIGEST, 32, "application/octet-stream"))
    user = User.objects.create_superuser("fuzzer", "fuzzer@example.com", "fuzzer-pw")
    return Token.objects.create(user=user).key


def test_every_operation_is_covered() -> None:
    operations = {
        (result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()
    }
    # Other issues may add routes to the same URL conf; these are this API's own.
    assert operations >= {
        ("GET", "/api/blobs/{digest}"),
        ("PUT", "/api/blobs/{digest}"),
        ("DELETE", "/api/blobs/{digest}"),
        ("GET", "/api/repositories"),
        ("GET", "/api/repositories/{name}/blobs"),
        ("DELETE", "/api/repositories/{name}/blobs"),
        ("GET", "/api/repositories/{name}/blobs/{digest}"),
        ("PUT", "/api/repositories/{name}/blobs/{digest}"),
        ("DELETE", "/api/repositories/{name}/blobs/{digest}"),
    }


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api_conforms_to_its_schema(case: Any, token: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
