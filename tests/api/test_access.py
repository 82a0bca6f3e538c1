"""Authentication, permissions, throttling, method and route errors, and the public pages."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client, override_settings
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.test import APIClient
from rest_framework.throttling import BaseThrottle

from tests.api.conftest import OCTET, SHA256, envelope

GLOBAL = f"/api/blobs/{SHA256}"
SCOPED = f"/api/repositories/library/alpine/blobs/{SHA256}"
MEMBERS = "/api/repositories/library/alpine/blobs"
DESCRIPTOR = json.dumps({"size": 1, "mediaType": OCTET})

# Every route and method, with the permission it needs.
OPERATIONS = [
    ("get", GLOBAL, "view_descriptor"),
    ("head", GLOBAL, "view_descriptor"),
    ("put", GLOBAL, "change_descriptor"),
    ("delete", GLOBAL, "delete_descriptor"),
    ("get", SCOPED, "view_descriptor"),
    ("head", SCOPED, "view_descriptor"),
    ("put", SCOPED, "change_descriptor"),
    ("delete", SCOPED, "delete_descriptor"),
    ("get", MEMBERS, "view_descriptor"),
    ("head", MEMBERS, "view_descriptor"),
    ("delete", MEMBERS, "delete_descriptor"),
    ("get", "/api/repositories", "view_descriptor"),
    ("head", "/api/repositories", "view_descriptor"),
]
CODENAMES = ("view_descriptor", "change_descriptor", "delete_descriptor")


def call(client: Any, method: str, path: str, **extra: Any) -> Any:
    if method == "put":
        return client.put(path, DESCRIPTOR, content_type="application/json", **extra)
    return getattr(client, method)(path, **extra)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_migrate_creates_the_permissions_and_no_descriptor_table(db: Any) -> None:
    codenames = Permission.objects.filter(content_type__app_label="blobcache").values_list(
        "codename", flat=True
    )
    # The audit log's own view permission beside the API's; the statistics have none.
    assert sorted(codenames) == sorted([*CODENAMES, "view_auditentry"])
    # Descriptors live in Redis only: the database holds the audit log and the last count.
    tables = [table for table in connection.introspection.table_names() if "blobcache" in table]
    assert sorted(tables) == ["blobcache_auditentry", "blobcache_cachestatistics"]


@pytest.mark.parametrize(("method", "path", "needed"), OPERATIONS)
def test_anonymous_is_401_with_a_challenge(
    anonymous: APIClient, method: str, path: str, needed: str
) -> None:
    response = call(anonymous, method, path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="api"'
    if method != "head":
        assert response.json() == envelope(
            "UNAUTHORIZED", "Authentication credentials were not provided."
        )


@pytest.mark.parametrize(("method", "path", "needed"), OPERATIONS)
def test_each_operation_needs_exactly_its_permission(
    make_user: Any, redis_client: redis.Redis, method: str, path: str, needed: str
) -> None:
    for codenames in ((), *((c,) for c in CODENAMES if c != needed)):
        client = APIClient()
        client.force_authenticate(make_user(*codenames))
        response = call(client, method, path)
        assert response.status_code == 403, codenames
        if method != "head":
            assert response.json() == envelope(
                "DENIED", "You do not have permission to perform this action."
            )
    client = APIClient()
    client.force_authenticate(make_user(needed))
    assert call(client, method, path).status_code in (200, 201, 204, 404)


def test_superuser_has_every_permission(api: APIClient) -> None:
    for method, path, _ in OPERATIONS:
        assert call(api, method, path).status_code in (200, 201, 204, 404), (method, path)


class TestRealAuthentication:
    def test_basic(self, make_user: Any, redis_client: redis.Redis) -> None:
        user = make_user("view_descriptor", password="pw-1")
        client = APIClient()
        ok = client.get(GLOBAL, HTTP_AUTHORIZATION=basic(user.username, "pw-1"))
        assert ok.status_code == 404
        assert ok.json() == envelope("BLOB_UNKNOWN", "unknown blob")
        wrong = client.get(GLOBAL, HTTP_AUTHORIZATION=basic(user.username, "nope"))
        assert wrong.status_code == 401
        assert wrong["WWW-Authenticate"] == 'Basic realm="api"'
        assert wrong.json() == envelope("UNAUTHORIZED", "Invalid username/password.")

    def test_token(self, make_user: Any, redis_client: redis.Redis) -> None:
        user = make_user("change_descriptor")
        token = Token.objects.create(user=user)
        client = APIClient()
        created = call(client, "put", GLOBAL, HTTP_AUTHORIZATION=f"Token {token.key}")
        assert created.status_code == 201
        bad = call(client, "put", GLOBAL, HTTP_AUTHORIZATION="Token " + "0" * 40)
        assert bad.status_code == 401
        assert bad.json() == envelope("UNAUTHORIZED", "Invalid token.")
        assert redis_client.hgetall(f"blobs::{SHA256}") == {
            "digest": SHA256,
            "size": "1",
            "mediatype": OCTET,
        }

    def test_session_writes_need_the_csrf_token(
        self, make_user: Any, redis_client: redis.Redis
    ) -> None:
        user = make_user(*CODENAMES, password="pw-2")
        client = APIClient(enforce_csrf_checks=True)
        assert client.login(username=user.username, password="pw-2")
        assert client.get(GLOBAL).status_code == 404  # reads need no token
        refused = call(client, "put", GLOBAL)
        assert refused.status_code == 403
        assert refused.json() == envelope("DENIED", "CSRF Failed: CSRF cookie not set.")
        assert redis_client.dbsize() == 0
        deleted = client.delete(GLOBAL)
        assert deleted.status_code == 403
        assert deleted.json()["errors"][0]["code"] == "DENIED"

        # With the cookie and the matching header, the same write goes through.
        client.get("/admin/login/")
        csrf = client.cookies["csrftoken"].value
        accepted = call(client, "put", GLOBAL, HTTP_X_CSRFTOKEN=csrf)
        assert accepted.status_code == 201


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        (GLOBAL, "GET, PUT, DELETE, HEAD"),
        (SCOPED + "/", "GET, PUT, DELETE, HEAD"),
        (MEMBERS, "GET, DELETE, HEAD"),
        ("/api/repositories", "GET, HEAD"),
    ],
)
@pytest.mark.parametrize("method", ["post", "patch", "options", "trace"])
def test_other_methods_are_405(api: APIClient, path: str, allow: str, method: str) -> None:
    response = api.generic(method.upper(), path, DESCRIPTOR, content_type="application/json")
    assert response.status_code == 405
    assert response["Allow"] == allow
    assert response.json() == envelope("UNSUPPORTED", f'Method "{method.upper()}" not allowed.')


def test_405_comes_after_authentication(anonymous: APIClient) -> None:
    response = anonymous.post(GLOBAL, DESCRIPTOR, content_type="application/json")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/api/",
        "/api/nope",
        "/api/blobs",
        "/api/blobs/",
        "/api/repositories/library/alpine",
        "/api/repositories/library/alpine/manifests/latest",
        "/api/v2/",
        "/api/schema/extra",
    ],
)
@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_unknown_urls_under_the_api_are_404_in_the_envelope(
    db: Any, path: str, method: str
) -> None:
    client = Client(enforce_csrf_checks=True)
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == envelope("NOT_FOUND", f"no API route matches {path!r}")


class TestThrottling:
    def test_no_rate_means_no_throttling(self, api: APIClient) -> None:
        assert "blobcache" not in api_settings.DEFAULT_THROTTLE_RATES
        assert all(api.get(GLOBAL).status_code == 404 for _ in range(30))

    def test_the_blobcache_scope_uses_the_hosts_rate(
        self, api: APIClient, redis_client: redis.Redis
    ) -> None:
        rates = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"blobcache": "3/minute"}}
        with override_settings(REST_FRAMEWORK=rates):
            assert [api.get(GLOBAL).status_code for _ in range(3)] == [404, 404, 404]
            throttled = api.get(GLOBAL)
            assert throttled.status_code == 429
            assert throttled["Retry-After"] == "60"
            assert throttled.json() == envelope(
                "TOOMANYREQUESTS", "Request was throttled. Expected available in 60 seconds."
            )
            assert api.get("/api/repositories").status_code == 429  # one scope for the whole API
        assert api.get(GLOBAL).status_code == 404  # no rate, no throttle


class AlwaysThrottled(BaseThrottle):
    def allow_request(self, request: Request, view: Any) -> bool:
        return False

    def wait(self) -> float:
        return 6.2


class TestHostReplaceableClasses:
    def test_permission_classes(self, make_user: Any, redis_client: redis.Redis) -> None:
        client = APIClient()
        client.force_authenticate(make_user())
        assert client.get(GLOBAL).status_code == 403
        with override_settings(
            BLOBCACHE={
                **settings.BLOBCACHE,
                "PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
            }
        ):
            assert client.get(GLOBAL).status_code == 404
            assert call(client, "put", GLOBAL).status_code == 201

    def test_authentication_classes(self, make_user: Any, redis_client: redis.Redis) -> None:
        user = make_user("view_descriptor", password="pw-3")
        token = Token.objects.create(user=user)
        client = APIClient()
        token_only = ["rest_framework.authentication.TokenAuthentication"]
        with override_settings(
            BLOBCACHE={**settings.BLOBCACHE, "AUTHENTICATION_CLASSES": token_only}
        ):
            response = client.get(GLOBAL, HTTP_AUTHORIZATION=basic(user.username, "pw-3"))
            assert response.status_code == 401
            assert response["WWW-Authenticate"] == "Token"
            token_auth = client.get(GLOBAL, HTTP_AUTHORIZATION=f"Token {token.key}")
            assert token_auth.status_code == 404

    def test_session_only_host_still_answers_401(self, anonymous: APIClient) -> None:
        with override_settings(
            BLOBCACHE={
                **settings.BLOBCACHE,
                "AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
            }
        ):
            response = anonymous.get(GLOBAL)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Session realm="blobcache"'

    def test_throttle_classes(self, api: APIClient) -> None:
        with override_settings(
            BLOBCACHE={**settings.BLOBCACHE, "THROTTLE_CLASSES": [AlwaysThrottled]}
        ):
            response = api.get(GLOBAL)
        assert response.status_code == 429
        assert response["Retry-After"] == "7"
        assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"


class TestPublicPages:
    def test_schema_is_public_openapi(self, db: Any) -> None:
        response = Client().get("/api/schema/?format=json")
        assert response.status_code == 200
        schema = json.loads(response.content)
        assert schema["openapi"].startswith("3.")
        assert set(schema["paths"]) >= {
            "/api/blobs/{digest}",
            "/api/repositories",
            "/api/repositories/{name}/blobs",
            "/api/repositories/{name}/blobs/{digest}",
        }
        assert Client().get("/api/schema").status_code == 200

    def test_schema_documents_each_descriptor_operation_of_both_scopes(self, db: Any) -> None:
        # The descriptor viewsets share their methods; each scope's schema is its own.
        schema = json.loads(Client().get("/api/schema/?format=json").content)
        operations = {
            (path, method): (
                operation["operationId"],
                operation["summary"],
                sorted(operation["responses"]),
                [parameter["name"] for parameter in operation["parameters"]],
            )
            for path in ("/api/blobs/{digest}", "/api/repositories/{name}/blobs/{digest}")
            for method, operation in schema["paths"][path].items()
        }
        errors = ["400", "401", "403", "429", "503"]
        read = sorted(["200", "404", "409", *errors])
        write = sorted(["200", "201", "409", "413", "415", *errors])
        clear = sorted(["204", "404", "409", *errors])
        scoped = ["digest", "name"]
        assert operations == {
            ("/api/blobs/{digest}", "get"): (
                "blobs_retrieve", "Read a global descriptor", read, ["digest"]
            ),
            ("/api/blobs/{digest}", "put"): (
                "blobs_update", "Set a global descriptor", write, ["digest"]
            ),
            ("/api/blobs/{digest}", "delete"): (
                "blobs_destroy", "Clear a global descriptor", clear, ["digest"]
            ),
            ("/api/repositories/{name}/blobs/{digest}", "get"): (
                "repository_blobs_retrieve", "Read a repository-scoped descriptor", read, scoped
            ),
            ("/api/repositories/{name}/blobs/{digest}", "put"): (
                "repository_blobs_update", "Set a repository-scoped descriptor", write, scoped
            ),
            ("/api/repositories/{name}/blobs/{digest}", "delete"): (
                "repository_blobs_destroy", "Clear a repository-scoped descriptor", clear, scoped
            ),
        }
        global_put = schema["paths"]["/api/blobs/{digest}"]["put"]
        assert global_put["description"] == (
            "Size and digest are overwritten; the media type is set only if absent."
        )
        assert "requestBody" in global_put

    def test_schema_as_json_is_shown_by_browsers_and_clients_get_what_they_got(
        self, db: Any
    ) -> None:
        browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        shown = Client().get("/api/schema/?format=json", HTTP_ACCEPT=browser)
        assert shown["Content-Type"] == "application/json"
        assert json.loads(shown.content)["openapi"].startswith("3.")
        assert Client().get("/api/schema/?format=json")["Content-Type"] == "application/json"
        # Without a format: YAML, the OpenAPI JSON type or plain JSON, as the client asks.
        for accept, content_type in (
            ("*/*", "application/vnd.oai.openapi; charset=utf-8"),
            ("application/vnd.oai.openapi+json", "application/vnd.oai.openapi+json"),
            ("application/json", "application/json"),
            ("application/yaml", "application/yaml; charset=utf-8"),
        ):
            response = Client().get("/api/schema/", HTTP_ACCEPT=accept)
            assert response.status_code == 200
            assert response["Content-Type"] == content_type, accept

    def test_docs_are_public_and_use_local_assets(self, db: Any) -> None:
        for path in ("/api/docs/", "/api/docs"):
            response = Client().get(path)
            assert response.status_code == 200
            html = response.content.decode()
            assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
            assert "/api/schema" in html
            assert "//cdn" not in html and "https://" not in html

    def test_public_pages_answer_other_methods_in_the_envelope(self, db: Any) -> None:
        response = Client().post("/api/schema/")
        assert response.status_code == 405
        assert response.json() == envelope("UNSUPPORTED", 'Method "POST" not allowed.')

    def test_static_files_are_served_with_debug_off(self, db: Any, tmp_path: Path) -> None:
        from django.core.management import call_command

        with override_settings(STATIC_ROOT=tmp_path / "static", DEBUG=False):
            call_command("collectstatic", interactive=False, verbosity=0)
            client = Client()
            for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
                response = client.get(f"/static/drf_spectacular_sidecar/swagger-ui-dist/{asset}")
                assert response.status_code == 200, asset
                assert b"".join(response.streaming_content)


def test_user_model_permission_names(db: Any) -> None:
    user = User.objects.create_user("granted")
    user.user_permissions.set(Permission.objects.filter(codename="view_descriptor"))
    assert User.objects.get(pk=user.pk).has_perm("blobcache.view_descriptor")


def a_hosts_handler(exc: Exception, context: Any) -> Any:
    from rest_framework.response import Response

    return Response({"host": "format"}, status=418)


def test_the_hosts_exception_handler_is_left_to_its_own_views(api: APIClient) -> None:
    host = {**settings.REST_FRAMEWORK, "EXCEPTION_HANDLER": f"{__name__}.a_hosts_handler"}
    with override_settings(REST_FRAMEWORK=host):
        response = api.get(GLOBAL)
    assert response.status_code == 404
    assert response.json() == envelope("BLOB_UNKNOWN", "unknown blob")
