"""Run the demo project: an embedded Redis when REDIS_URL is unset, migrations, an admin, gunicorn.

Started by ``bin/serve``. The address (``BLOBCACHE_BIND``, default ``127.0.0.1:8000``) is bound
first, before anything is started or printed, and the listening socket is handed to gunicorn,
so a busy port is reported at once and the banner never names an address nobody serves.
The embedded Redis listens on a unix socket only (no TCP port), keeps its data under
``var/redis`` (git-ignored) and is stopped together with the web server.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from project.settings import BASE_DIR, EMBEDDED_REDIS_SOCKET, EMBEDDED_REDIS_URL, VAR_DIR

BIND = os.environ.get("BLOBCACHE_BIND", "127.0.0.1:8000")
#: The embedded Redis is a cache like the registry's: bounded, evicting the least recently used
#: keys as the registry's documentation asks (``check --deploy`` warns about anything else).
REDIS_MAXMEMORY = os.environ.get("BLOBCACHE_REDIS_MAXMEMORY", "256mb")

# gthread workers: a connection is handed to a thread only once a request arrives, so idle
# keep-alive connections cost no thread, and a client that trickles its body holds one of the
# threads, not a whole worker. --timeout is the worker heartbeat, not a request limit.
GUNICORN_OPTIONS = (
    "--workers", "2",
    "--worker-class", "gthread",
    "--threads", "8",
    "--keep-alive", "5",
    "--timeout", "30",
    "--graceful-timeout", "10",
    "--access-logfile", "-",
    # gunicorn 27's control socket defaults to ~/.gunicorn/gunicorn.ctl, one per user: two
    # servers would take it from each other. The demo's is its own, beside its other state.
    "--control-socket", str(VAR_DIR / "gunicorn.ctl"),
)


def listen(bind: str) -> socket.socket:
    """The listening socket for ``host:port`` (``[v6]:port`` too), or exit with why not."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
        # As gunicorn does: a restart need not wait for the old connections' TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        sys.exit(
            f"bin/serve: cannot listen on {bind}: {reason}.\n"
            "Another server may be using it: stop it, or choose another address with "
            "BLOBCACHE_BIND=host:port (e.g. BLOBCACHE_BIND=127.0.0.1:8001 bin/serve)."
        )
    return listener


def start_embedded_redis() -> subprocess.Popen[bytes]:
    from blobcache.testing import find_redis_server

    data_dir = EMBEDDED_REDIS_SOCKET.parent
    data_dir.mkdir(parents=True, exist_ok=True)
    EMBEDDED_REDIS_SOCKET.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            find_redis_server(),
            "--port", "0",
            "--unixsocket", str(EMBEDDED_REDIS_SOCKET),
            "--unixsocketperm", "700",
            "--dir", str(data_dir),
            "--dbfilename", "dump.rdb",
            "--save", "60 1",
            "--appendonly", "no",
            "--maxmemory", REDIS_MAXMEMORY,
            "--maxmemory-policy", "allkeys-lru",
            "--logfile", str(data_dir / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while not EMBEDDED_REDIS_SOCKET.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"the embedded redis-server did not start; see {data_dir / 'redis.log'}")
        time.sleep(0.05)
    return process


def prepare_metrics_dir() -> Path:
    """prometheus-client's multiprocess folder for the gunicorn workers, emptied at each start.

    Every worker writes its counters to its own mmap files there and a scrape of /api/metrics
    sums them. Files of the previous run would add its counts to this one's, so they go. A folder
    the caller chose with PROMETHEUS_MULTIPROC_DIR is used as it is (and left alone).
    """
    chosen = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if chosen:
        return Path(chosen)
    path = VAR_DIR / "prometheus"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


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


def banner(password: str) -> str:
    return (
        f"\nblobcache is serving on http://{BIND}/\n"
        f"  API docs (Swagger UI): http://{BIND}/api/docs/\n"
        f"  OpenAPI schema:        http://{BIND}/api/schema/?format=json\n"
        f"  Admin:                 http://{BIND}/admin/\n"
        f"  One-click admin login: {one_click_login_url()}  (works once)\n"
        f"  Log in as: admin / {password}  (HTTP Basic for the API, or the admin login)\n"
        f"  Example: curl -u admin:{password} http://{BIND}/api/repositories\n"
        f"  Redis: {os.environ['REDIS_URL']}  (bin/manage runs commands against it)\n"
        "Press Ctrl-C to stop.\n"
    )


def run_gunicorn(listener: socket.socket) -> int:
    """gunicorn on the socket already bound (``fd://``), until it exits or we are stopped."""
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "project.wsgi:application",
            "--bind", f"fd://{listener.fileno()}", *GUNICORN_OPTIONS,
        ],
        pass_fds=(listener.fileno(),),
    )
    listener.close()  # gunicorn holds it now
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        return server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=15)


def main() -> int:
    listener = listen(BIND)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    redis_process = None
    if not os.environ.get("REDIS_URL"):
        redis_process = start_embedded_redis()
        os.environ["REDIS_URL"] = EMBEDDED_REDIS_URL
        print(f"Started an embedded Redis at {EMBEDDED_REDIS_URL} (data in "
              f"{EMBEDDED_REDIS_SOCKET.parent}).", flush=True)
    try:
        manage("migrate", "--noinput", "-v", "0")
        manage("collectstatic", "--noinput", "-v", "0")
        password = admin_password()
        ensure_admin(password)
        print(banner(password), flush=True)
        prepare_metrics_dir()
        return run_gunicorn(listener)
    finally:
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
