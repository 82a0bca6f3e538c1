"""Run the demo project: an embedded Redis when REDIS_URL is unset, migrations, an admin, gunicorn.

Started by ``bin/serve``. The embedded Redis listens on a unix socket only (no TCP port), keeps
its data under ``var/redis`` (git-ignored) and is stopped together with the web server.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BLOBCACHE_VAR_DIR", BASE_DIR / "var"))
BIND = os.environ.get("BLOBCACHE_BIND", "127.0.0.1:8000")


def start_embedded_redis() -> tuple[subprocess.Popen[bytes], str]:
    from blobcache.testing import find_redis_server

    data_dir = VAR_DIR / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = data_dir / "redis.sock"
    socket_path.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            find_redis_server(),
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(data_dir),
            "--dbfilename", "dump.rdb",
            "--save", "60 1",
            "--appendonly", "no",
            "--logfile", str(data_dir / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while not socket_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"the embedded redis-server did not start; see {data_dir / 'redis.log'}")
        time.sleep(0.05)
    return process, f"unix://{socket_path}?db=0"


def admin_password() -> str:
    """Stable across runs: generated once into var/, unless BLOBCACHE_ADMIN_PASSWORD is set."""
    explicit = os.environ.get("BLOBCACHE_ADMIN_PASSWORD")
    if explicit:
        return explicit
    path = VAR_DIR / "admin-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def manage(*args: str) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], check=True)


def ensure_admin(password: str) -> None:
    code = (
        "from django.contrib.auth import get_user_model;"
        "User = get_user_model();"
        "user = User.objects.filter(username='admin').first() or "
        "User.objects.create_superuser('admin', 'admin@localhost', None);"
        f"user.set_password({password!r}); user.save()"
    )
    manage("shell", "-v", "0", "-c", code)


def one_click_login_url() -> str:
    """A link that logs the browser in as admin once (see project/demo_login.py)."""
    from project.demo_login import issue_token

    return f"http://{BIND}/demo-login/{issue_token(VAR_DIR)}/"


def main() -> int:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    redis_process = None
    if not os.environ.get("REDIS_URL"):
        redis_process, url = start_embedded_redis()
        os.environ["REDIS_URL"] = url
        print(f"Started an embedded Redis at {url} (data in {VAR_DIR / 'redis'}).", flush=True)
    server = None
    try:
        manage("migrate", "--noinput", "-v", "0")
        manage("collectstatic", "--noinput", "-v", "0")
        password = admin_password()
        ensure_admin(password)
        host = BIND.rsplit(":", 1)
        print(
            f"\nblobcache is serving on http://{BIND}/\n"
            f"  API docs (Swagger UI): http://{BIND}/api/docs/\n"
            f"  Admin:                 http://{BIND}/admin/\n"
            f"  One-click admin login: {one_click_login_url()}  (works once)\n"
            f"  Log in as: admin / {password}  (HTTP Basic for the API, or the admin login)\n"
            f"  Example: curl -u admin:{password} http://{host[0]}:{host[1]}/api/repositories\n"
            f"  Redis: {os.environ['REDIS_URL']}\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        server = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "project.wsgi:application",
                "--bind", BIND, "--workers", "2", "--access-logfile", "-",
            ]
        )
        signal.signal(signal.SIGTERM, lambda *_: server.terminate() if server else None)
        try:
            return server.wait()
        except KeyboardInterrupt:
            server.terminate()
            return server.wait()
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(timeout=10)
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
