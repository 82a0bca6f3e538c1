"""The demo project's settings with the benchmark's URL conf (the raw baseline view added)."""

import os

from project.settings import *  # noqa: F403
from project.settings import BLOBCACHE

# bench_api.py compares the API with and without blobcache's Prometheus counting.
BLOBCACHE = {**BLOBCACHE, "METRICS": os.environ.get("BLOBCACHE_BENCH_METRICS", "1") == "1"}

ROOT_URLCONF = "benchmarks.api_bench_urls"
DEBUG = False
# Every request is logged at WARNING or above only when it fails; keep the workers quiet.
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}
