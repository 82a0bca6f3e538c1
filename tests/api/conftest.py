"""Users with exactly one kind of access, and API clients that authenticate for real or not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

SHA256 = "sha256:" + "ab" * 32
SHA256_B = "sha256:" + "cd" * 32
SHA384 = "sha384:" + "ef" * 48
OCTET = "application/octet-stream"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # PBKDF2's deliberate slowness would dominate a suite that creates users in every test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture()
def make_user(db: Any) -> Callable[..., User]:
    """A user holding exactly the given ``blobcache`` permission codenames."""
    counter = iter(range(1, 1000))

    def make(*codenames: str, password: str = "secret-pw") -> User:
        user = User.objects.create_user(f"user{next(counter)}", password=password)
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="blobcache", codename__in=codenames)
        )
        return User.objects.get(pk=user.pk)  # a fresh instance: no stale permission cache

    return make


@pytest.fixture()
def superuser(db: Any) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-pw")


@pytest.fixture()
def api(superuser: User, redis_client: Any) -> APIClient:
    """A client authenticated as a superuser, on an emptied test Redis."""
    client = APIClient()
    client.force_authenticate(superuser)
    return client


@pytest.fixture()
def anonymous(db: Any, redis_client: Any) -> APIClient:
    return APIClient()


def envelope(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "detail": detail}]}


def body(digest: str = SHA256, size: int = 42, media_type: str = OCTET) -> dict[str, Any]:
    return {"digest": digest, "size": size, "mediaType": media_type}
