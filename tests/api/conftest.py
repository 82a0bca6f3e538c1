"""API clients that authenticate as a superuser or not at all; users come from tests/conftest."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def _fast_password_hashing(fast_password_hashing: None) -> None:
    """Nearly every API test creates users."""


@pytest.fixture()
def api(superuser: User, redis_client: Any) -> APIClient:
    """A client authenticated as a superuser, on an emptied test Redis."""
    client = APIClient()
    client.force_authenticate(superuser)
    return client


@pytest.fixture()
def anonymous(db: Any, redis_client: Any) -> APIClient:
    return APIClient()
