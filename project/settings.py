"""Settings of the demo host project: everything comes from the environment.

``REDIS_URL`` names the registry's Redis (the database the registry's
``storage.cache.blobdescriptor: redis`` writes to). ``bin/serve`` starts an embedded Redis on a
unix socket under ``var/redis`` when the variable is unset, and without ``REDIS_URL`` every other
entry point (``manage.py``, ``bin/manage``) uses that socket too: never a default
``127.0.0.1:6379``, which on a developer's machine is usually some other application's Redis.
"""

import os
from pathlib import Path

from redis.backoff import ExponentialBackoff
from redis.retry import Retry

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BLOBCACHE_VAR_DIR", BASE_DIR / "var"))
# SQLite creates its database file but not the folder: `manage.py migrate` on a fresh clone.
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "blobcache-demo-insecure-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"] + [
    host for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if host
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "blobcache",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", VAR_DIR / "db.sqlite3"),
    }
}

#: Where bin/serve's embedded redis-server listens (it removes the socket when it stops).
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis" / "redis.sock"
EMBEDDED_REDIS_URL = f"unix://{EMBEDDED_REDIS_SOCKET}?db=0"
#: None when neither is there: manage.py then refuses the commands that need Redis.
REDIS_URL = os.environ.get("REDIS_URL") or (
    EMBEDDED_REDIS_URL if EMBEDDED_REDIS_SOCKET.exists() else None
)

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        # Unconfigured, the embedded socket's path: an error names it, and nothing else is hit.
        "LOCATION": REDIS_URL or EMBEDDED_REDIS_URL,
        "OPTIONS": {
            # A frozen or unreachable Redis must fail a request fast (503), not hang it:
            # at most two attempts of 0.5 s each, so every call answers within about 1 s.
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            "CONNECTION_POOL_KWARGS": {
                "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
                # Pinned so that reply shapes do not change with redis-py's default (RESP3 in 8.x).
                "protocol": 2,
            },
        },
    }
}

BLOBCACHE = {
    "CACHE_ALIAS": "default",
    # The registry's storage.filesystem.rootdirectory (reconciliation) and the secret its
    # notification endpoint sends (the receiver is off without one).
    "STORAGE_ROOT": os.environ.get("BLOBCACHE_STORAGE_ROOT") or None,
    "NOTIFICATIONS_SECRET": os.environ.get("BLOBCACHE_NOTIFICATIONS_SECRET") or None,
    # /api/metrics: a Prometheus bearer token from the environment, and users holding
    # blobcache.view_descriptor (the admin, with HTTP Basic).
    "METRICS_TOKEN": os.environ.get("BLOBCACHE_METRICS_TOKEN") or None,
    "METRICS_ALLOW_USERS": True,
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "blobcache",
    "DESCRIPTION": "The distribution registry's Redis blob descriptor cache, managed over HTTP.",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "WARNING")},
}
