"""The demo project's settings with the benchmark's URL conf (the raw baseline view added)."""

from project.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.api_bench_urls"
DEBUG = False
# Every request is logged at WARNING or above only when it fails; keep the workers quiet.
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}
