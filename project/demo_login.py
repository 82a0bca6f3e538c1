"""Demo only: the one-time link ``bin/serve`` prints, which logs the browser in as ``admin``.

Never part of the app: a portal has its own login. The token is a file under ``var/`` that only
the server's user can read; the first request that presents it deletes it, so a link works once
(whichever gunicorn worker answers) and a later ``bin/serve`` prints a new one.
"""

from __future__ import annotations

import secrets
from pathlib import Path

TOKEN_FILE = "login-token"
ADMIN = "admin"


def issue_token(var_dir: Path) -> str:
    token = secrets.token_urlsafe(32)
    path = var_dir / TOKEN_FILE
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_text(token)
    return token


def _redeem(var_dir: Path, token: str) -> bool:
    from django.utils.crypto import constant_time_compare

    path = var_dir / TOKEN_FILE
    try:
        expected = path.read_text().strip()
    except OSError:
        return False
    if not expected or not constant_time_compare(token, expected):
        return False
    try:
        path.unlink()  # two requests racing: only the one that removes the file wins
    except FileNotFoundError:
        return False
    return True


def login_view(request, token: str):  # type: ignore[no-untyped-def]
    from django.conf import settings
    from django.contrib.auth import get_user_model, login
    from django.http import Http404
    from django.shortcuts import redirect

    if not _redeem(Path(settings.VAR_DIR), token):
        raise Http404("this login link was used already or never issued")
    user = get_user_model().objects.filter(username=ADMIN, is_active=True).first()
    if user is None:
        raise Http404("no admin user")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect("admin:index")
