"""Staff users with exactly one set of blobcache permissions, logged in to the admin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture(autouse=True)
def _fast_password_hashing(fast_password_hashing: None) -> None:
    """Nearly every console test creates users."""


@pytest.fixture()
def make_staff(make_user: Callable[..., User]) -> Callable[..., User]:
    def make(*codenames: str) -> User:
        user = make_user(*codenames)
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        return User.objects.get(pk=user.pk)

    return make


@pytest.fixture()
def login(db: Any) -> Callable[[User], Client]:
    def make(user: User, **options: Any) -> Client:
        client = Client(**options)
        client.force_login(user)
        return client

    return make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so a browser fixture knows the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
