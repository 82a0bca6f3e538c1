"""400s per field with the registry's codes, and malformed requests that must never be a 500."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import redis
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from blobcache.digest import validate_digest
from blobcache.exceptions import BlobCacheError
from blobcache.reference import validate_repository_name
from tests.helpers.api import OCTET, SHA256, envelope

GLOBAL = f"/api/blobs/{SHA256}"
SCOPED = f"/api/repositories/library/alpine/blobs/{SHA256}"
SIZE_MAX = 2**63 - 1


def domain_message(validator: Any, value: str) -> str:
    """The message the pure validator gives: the API passes it through unchanged."""
    with pytest.raises(BlobCacheError) as caught:
        validator(value)
    return caught.value.message


def put_json(api: APIClient, path: str, payload: Any) -> Any:
    return api.put(path, json.dumps(payload), content_type="application/json")


@pytest.mark.parametrize("path", [GLOBAL, SCOPED])
@pytest.mark.parametrize(
    ("size", "message"),
    [
        ('"123"', "size must be an integer, not str"),
        ("1.0", "size must be an integer, not float"),
        ("1e400", "size must be an integer, not float"),
        ("true", "size must be an integer, not bool"),
        ("null", "size must be an integer"),
        ("{}", "size must be an integer, not dict"),
        ("[1]", "size must be an integer, not list"),
        ("-1", f"size must be between 0 and {SIZE_MAX}, got -1"),
        (str(SIZE_MAX + 1), f"size must be between 0 and {SIZE_MAX}, got {SIZE_MAX + 1}"),
    ],
)
def test_size_must_be_a_json_integer(
    api: APIClient, redis_client: redis.Redis, path: str, size: str, message: str
) -> None:
    raw = f'{{"size": {size}, "mediaType": "{OCTET}"}}'
    response = api.put(path, raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == envelope("SIZE_INVALID", message, {"field": "size"})
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("path", [GLOBAL, SCOPED])
def test_missing_size_is_size_invalid_and_checked_before_media_type(
    api: APIClient, redis_client: redis.Redis, path: str
) -> None:
    for payload in ({"mediaType": OCTET}, {}, {"digest": SHA256}):
        response = put_json(api, path, payload)
        assert response.status_code == 400
        assert response.json() == envelope("SIZE_INVALID", "size is required", {"field": "size"})
    assert redis_client.dbsize() == 0


def test_size_limits_are_accepted(api: APIClient, redis_client: redis.Redis) -> None:
    assert put_json(api, GLOBAL, {"size": 0, "mediaType": OCTET}).json()["size"] == 0
    assert put_json(api, GLOBAL, {"size": SIZE_MAX, "mediaType": OCTET}).json()["size"] == SIZE_MAX
    assert redis_client.hget(f"blobs::{SHA256}", "size") == str(SIZE_MAX)


@pytest.mark.parametrize("path", [GLOBAL, SCOPED])
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"size": 1}, "mediaType is required"),
        ({"size": 1, "mediaType": None}, "mediaType must be a string"),
        ({"size": 1, "mediaType": ""}, "mediaType must not be empty"),
        ({"size": 1, "mediaType": 5}, "media type must be a non-empty string"),
        (
            {"size": 1, "mediaType": "text"},
            "media type 'text' is not of the form type/subtype (no parameters)",
        ),
        (
            {"size": 1, "mediaType": "text/plain; charset=utf-8"},
            "media type 'text/plain; charset=utf-8' is not of the form type/subtype "
            "(no parameters)",
        ),
        (
            {"size": 1, "mediaType": "a/b\u0000"},
            "media type 'a/b\\x00' is not of the form type/subtype (no parameters)",
        ),
    ],
)
def test_media_type(
    api: APIClient, redis_client: redis.Redis, path: str, payload: Any, message: str
) -> None:
    response = put_json(api, path, payload)
    assert response.status_code == 400
    assert response.json() == envelope("DESCRIPTOR_INVALID", message, {"field": "mediaType"})
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("path", [GLOBAL, SCOPED])
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "the request body is empty: send a descriptor as JSON"),
        ("[]", "the request body must be a JSON object"),
        ('"a string"', "the request body must be a JSON object"),
        ("42", "the request body must be a JSON object"),
        ("null", "the request body must be a JSON object"),
        ("{", None),
        ('{"size": NaN, "mediaType": "a/b"}', None),
        ('{"size": 1, "mediaType": "a/b\x00"}', None),
        ("[" * 100_000, "the request body is not valid JSON: nesting too deep"),
        ('{"a":' * 100_000, "the request body is not valid JSON: nesting too deep"),
        ('{"size": 1' + "0" * 5000 + "}", None),
    ],
)
def test_malformed_bodies_are_descriptor_invalid(
    api: APIClient, redis_client: redis.Redis, path: str, raw: str, message: str | None
) -> None:
    response = api.put(path, raw, content_type="application/json")
    assert response.status_code == 400
    if message is None:
        try:
            json.loads(raw, parse_constant=lambda name: 1 / 0)
        except (ValueError, ZeroDivisionError) as error:
            reason = str(error) if isinstance(error, ValueError) else None
        message = (
            f"the request body is not valid JSON: {reason}"
            if reason
            else "the request body is not valid JSON: Out of range float values are not JSON "
            "compliant: 'NaN'"
        )
    assert response.json() == envelope("DESCRIPTOR_INVALID", message)
    assert redis_client.dbsize() == 0


def test_body_not_utf8_is_descriptor_invalid(api: APIClient, redis_client: redis.Redis) -> None:
    response = api.put(GLOBAL, b'{"size": 1, "mediaType": "\xff"}', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DESCRIPTOR_INVALID"
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", GLOBAL),
        ("put", SCOPED),
        ("post", "/api/reconcile"),
        ("post", "/api/notifications"),
    ],
)
def test_body_over_djangos_limit_is_413_on_every_route(
    api: APIClient,
    redis_client: redis.Redis,
    settings: Any,
    tmp_path: Any,
    method: str,
    path: str,
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.BLOBCACHE = {
        **settings.BLOBCACHE,
        "NOTIFICATIONS_SECRET": "s3cret",
        "STORAGE_ROOT": str(tmp_path),
    }
    payload = json.dumps({"size": 1, "mediaType": OCTET, "annotations": {"a": "x" * 2000}})
    response = getattr(api, method)(
        path, payload, content_type="application/json", HTTP_AUTHORIZATION="s3cret"
    )
    assert response.status_code == 413
    assert response.json() == envelope(
        "REQUEST_TOO_LARGE",
        "the request body is larger than the server accepts "
        "(DATA_UPLOAD_MAX_MEMORY_SIZE, 1000 bytes)",
    )
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("path", [GLOBAL, SCOPED])
@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/plain", "text/plain"),
        ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
        ("application/octet-stream", "application/octet-stream"),
    ],
)
def test_a_body_that_is_not_json_is_415(
    api: APIClient, redis_client: redis.Redis, path: str, content_type: str, expected: str
) -> None:
    response = api.put(path, "size=1", content_type=content_type)
    assert response.status_code == 415
    assert response.json() == envelope(
        "UNSUPPORTED", f'Unsupported media type "{expected}" in request.'
    )
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("path", [GLOBAL, SCOPED])
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"size": 1, "mediaType": OCTET, "urls": ["x"], "annotations": {"a": "b"}}, "annotations"),
        ({"size": 1, "mediatype": OCTET}, "mediatype"),
        ({"size": 1, "mediaType": OCTET, "digest": SHA256, "Size": 2}, "Size"),
    ],
    ids=["oci-fields", "typo", "case"],
)
def test_unknown_descriptor_fields_are_refused(
    api: APIClient, redis_client: redis.Redis, path: str, payload: dict[str, Any], field: str
) -> None:
    response = put_json(api, path, payload)
    assert response.status_code == 400
    assert response.json() == envelope(
        "DESCRIPTOR_INVALID",
        f"unknown field {field!r}: expected digest, size or mediaType",
        {"field": field},
    )
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("path", [GLOBAL, SCOPED])
@pytest.mark.parametrize("digest", ["nope", 5, None, "sha256:abc", "md5:abc", ""])
def test_body_digest(api: APIClient, redis_client: redis.Redis, path: str, digest: Any) -> None:
    # DRF checks null and blank before the field's own validation.
    special = {None: "digest must be a string", "": "digest must not be empty"}
    message = special.get(digest) or domain_message(validate_digest, digest)
    response = put_json(api, path, {"digest": digest, "size": 1, "mediaType": OCTET})
    assert response.status_code == 400
    assert response.json() == envelope("DIGEST_INVALID", message, {"field": "digest"})
    assert redis_client.dbsize() == 0


BAD_DIGESTS = ["nope", "sha256:abc", "md5:abc", "sha256:" + "A" * 64, "sha256:\x00" + "a" * 63]


@pytest.mark.parametrize("digest", BAD_DIGESTS)
@pytest.mark.parametrize("route", ["/api/blobs/", "/api/repositories/library/alpine/blobs/"])
@pytest.mark.parametrize("method", ["get", "head", "put", "delete"])
def test_path_digest_is_digest_invalid_on_every_method(
    api: APIClient, redis_client: redis.Redis, digest: str, route: str, method: str
) -> None:
    url = route + quote(digest)
    if method == "put":
        response = put_json(api, url, {"size": 1, "mediaType": OCTET})
    else:
        response = getattr(api, method)(url)
    assert response.status_code == 400
    if method != "head":
        message = domain_message(validate_digest, digest)
        assert response.json() == envelope("DIGEST_INVALID", message)
    assert redis_client.dbsize() == 0


BAD_NAMES = ["UPPER", "a//b", "a\x00b", "f" * 64, "a" * 256, "x/" + "a" * 254, "a" * 100_000]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", f"/{SHA256}"),
        ("head", f"/{SHA256}"),
        ("put", f"/{SHA256}"),
        ("delete", f"/{SHA256}"),
        ("get", ""),
        ("delete", ""),
    ],
)
def test_bad_names_are_name_invalid_on_every_repository_route(
    api: APIClient, redis_client: redis.Redis, name: str, method: str, suffix: str
) -> None:
    url = f"/api/repositories/{quote(name)}/blobs{suffix}"
    if method == "put":
        response = put_json(api, url, {"size": 1, "mediaType": OCTET})
    else:
        response = getattr(api, method)(url)
    assert response.status_code == 400
    if method != "head":
        message = domain_message(validate_repository_name, name)
        if len(message) > 1000:  # the envelope shortens what it echoes
            message = message[:997] + "..."
        assert response.json() == envelope("NAME_INVALID", message)
    assert redis_client.dbsize() == 0


def test_huge_digest_gets_a_short_answer(api: APIClient, redis_client: redis.Redis) -> None:
    response = api.get("/api/blobs/sha256:" + "a" * 1_000_000)
    assert response.status_code == 400
    assert response.json() == envelope(
        "DIGEST_INVALID",
        "invalid checksum digest length: sha256 needs 64 hex characters, got 1000000 bytes",
    )
    response = api.get("/api/blobs/" + "x" * 1_000_000)
    assert response.status_code == 400
    message = response.json()["errors"][0]["message"]
    assert len(message) == 1000
    assert message == ("invalid checksum digest format: '" + "x" * 1000)[:997] + "..."


def test_path_digest_is_checked_before_the_body(api: APIClient, redis_client: redis.Redis) -> None:
    response = api.put("/api/blobs/nope", "{", content_type="application/json")
    assert response.json() == envelope("DIGEST_INVALID", "invalid checksum digest format: 'nope'")


def test_name_is_checked_before_the_digest(api: APIClient, redis_client: redis.Redis) -> None:
    response = api.get("/api/repositories/UPPER/blobs/nope")
    assert response.json()["errors"][0]["code"] == "NAME_INVALID"


class TestCheckOrder:
    """Authentication (401), then permission (403), then validation (400), then Redis."""

    def test_anonymous_bad_input_is_401(self, anonymous: APIClient) -> None:
        response = anonymous.put("/api/blobs/nope", "{", content_type="application/json")
        assert response.status_code == 401
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"

    def test_unpermitted_bad_input_is_403(
        self, make_user: Any, redis_client: redis.Redis
    ) -> None:
        client = APIClient()
        client.force_authenticate(make_user("view_descriptor"))
        response = client.put("/api/blobs/nope", "{", content_type="application/json")
        assert response.status_code == 403
        assert response.json()["errors"][0]["code"] == "DENIED"
        response = client.put("/api/blobs/nope", "x", content_type="text/plain")
        assert response.status_code == 403

    def test_permitted_bad_input_is_400(self, make_user: Any, redis_client: redis.Redis) -> None:
        client = APIClient()
        user: User = make_user("change_descriptor")
        client.force_authenticate(user)
        response = client.put("/api/blobs/nope", "{", content_type="application/json")
        assert response.status_code == 400
