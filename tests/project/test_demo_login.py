"""The demo's one-time login link: logs in as admin once, then never again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from project.demo_login import TOKEN_FILE, issue_token


@pytest.fixture()
def var_dir(settings: Any, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture()
def admin_user(db: Any) -> User:
    return User.objects.create_superuser("admin", "admin@localhost", None)


def test_the_link_logs_in_once(var_dir: Path, admin_user: User) -> None:
    token = issue_token(var_dir)
    assert (var_dir / TOKEN_FILE).stat().st_mode & 0o777 == 0o600
    browser = Client()
    response = browser.get(f"/demo-login/{token}/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200
    assert not (var_dir / TOKEN_FILE).exists()
    other = Client()
    assert other.get(f"/demo-login/{token}/").status_code == 404
    assert other.get("/admin/").status_code == 302


def test_a_wrong_token_changes_nothing(var_dir: Path, admin_user: User) -> None:
    token = issue_token(var_dir)
    browser = Client()
    assert browser.get("/demo-login/not-the-token/").status_code == 404
    assert browser.get("/admin/").status_code == 302
    assert (var_dir / TOKEN_FILE).read_text() == token


def test_no_token_issued_means_no_login(var_dir: Path, admin_user: User) -> None:
    assert Client().get("/demo-login/anything/").status_code == 404
