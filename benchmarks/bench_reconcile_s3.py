"""blobcache_reconcile against a registry in S3: storage requests per 1,000 entries, and speed.

Run: bin/bench, or `.venv/bin/python benchmarks/bench_reconcile_s3.py [--repositories N]
[--members N] [--extra-blobs N]`.

A throwaway redis-server holds 100,000 cached entries in the registry's layout: 100
repositories of 500 members (membership and repository hash), and the 50,000 global descriptors
of those blobs. moto's S3 server (in this process, its buckets filled directly through moto's
backend, since 200,000 PUTs over HTTP would take longer than the run) holds the registry's tree
under ``/registry``: the data and a ``_layers`` link of every cached blob, plus 100,000 more
blobs that no cache entry names. Then ``manage.py blobcache_reconcile --registry-config``
runs as its own process, end to end (interpreter and Django start-up included), on a config.yml
naming that bucket; every entry is backed, so nothing is cleared.

Target (issue 11): at most 20 storage requests per 1,000 cache entries. Also shown: entries
per second and the command's peak RSS (the listings are spooled to a temporary SQLite file,
so memory does not grow with the bucket).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import port_for
import psutil
import redis
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._redis import throwaway_redis  # noqa: E402
from blobcache.testing import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY  # noqa: E402

BUCKET = "bench-registry"
V2 = "registry/docker/registry/v2/"
MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
TARGET_PER_1000 = 20


def digest(number: int) -> str:
    return f"sha256:{number:064x}"


def fill_redis(port: int, repositories: int, members: int) -> int:
    """The registry's entries; returns how many reconcile examines (repository and global)."""
    client = redis.Redis(port=port)
    with client.pipeline(transaction=False) as pipe:
        for r in range(repositories):
            name = f"bench/repo{r}"
            for m in range(members):
                key_digest = digest(r * members + m + 1)
                pipe.hset(
                    f"blobs::{key_digest}",
                    mapping={"digest": key_digest, "size": m, "mediatype": MEDIA_TYPE},
                )
                pipe.sadd(f"repository::{name}::blobs", key_digest)
                pipe.hset(f"repository::{name}::blobs::{key_digest}", "mediatype", MEDIA_TYPE)
                if len(pipe) >= 3000:
                    pipe.execute()
        pipe.execute()
    client.close()
    return 2 * repositories * members


def fill_bucket(repositories: int, members: int, extra: int) -> int:
    """The registry's tree in moto's backend; returns the number of objects."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(BUCKET, S3_REGION)

    def blob(key_digest: str) -> None:
        encoded = key_digest[7:]
        backend.put_object(BUCKET, f"{V2}blobs/sha256/{encoded[:2]}/{encoded}/data", b"x")

    objects = 0
    for r in range(repositories):
        for m in range(members):
            key_digest = digest(r * members + m + 1)
            blob(key_digest)
            link = f"{V2}repositories/bench/repo{r}/_layers/sha256/{key_digest[7:]}/link"
            backend.put_object(BUCKET, link, key_digest.encode())
            objects += 2
    first_extra = repositories * members + 1
    for n in range(first_extra, first_extra + extra):
        blob(digest(n))
        objects += 1
    return objects


def run_command(
    config: Path, redis_port: int, database: Path
) -> tuple[float, float, float, dict]:
    """Seconds, CPU seconds, peak RSS in MB and the JSON report of one
    ``blobcache_reconcile`` process."""
    environment = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_DB_PATH": str(database),
    }
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable, str(ROOT / "manage.py"), "blobcache_reconcile",
            "--registry-config", str(config), "--no-input", "--format", "json",
        ],
        env=environment,
        cwd=ROOT,
        stdout=out,
        stderr=err,
    )  # fmt: skip
    # The child's ru_maxrss would count the pages it shared with this process (moto's whole
    # bucket) before exec, so the peak is sampled instead.
    peak = 0
    watched = psutil.Process(process.pid)
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        with contextlib.suppress(psutil.Error):
            peak = max(peak, watched.memory_info().rss)
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    out.seek(0)
    err.seek(0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"blobcache_reconcile failed: {err.read().decode()}")
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, cpu, peak / (1 << 20), json.loads(out.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=100)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--extra-blobs", type=int, default=100_000)
    args = parser.parse_args()

    import logging

    from moto.server import ThreadedMotoServer

    # One access-log line per request would drown the results.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    port = int(port_for.select_random())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        with throwaway_redis() as redis_port, tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            entries = fill_redis(redis_port, args.repositories, args.members)
            objects = fill_bucket(args.repositories, args.members, args.extra_blobs)
            print(
                f"data set: {entries:,} cached entries ({args.repositories} repositories of "
                f"{args.members} members, and their global descriptors); {objects:,} objects "
                f"in the bucket ({args.extra_blobs:,} blobs no entry names); "
                f"filled in {time.perf_counter() - started:.1f} s"
            )
            config = Path(folder, "config.yml")
            s3 = {
                "bucket": BUCKET,
                "region": S3_REGION,
                "regionendpoint": f"http://127.0.0.1:{port}",
                "rootdirectory": "/registry",
                "accesskey": S3_ACCESS_KEY,
                "secretkey": S3_SECRET_KEY,
                "secure": False,
            }
            config.write_text(yaml.safe_dump({"version": "0.1", "storage": {"s3": s3}}))
            database = Path(folder, "db.sqlite3")
            subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0"],
                env={**os.environ, "DJANGO_DB_PATH": str(database)},
                cwd=ROOT,
                check=True,
            )
            elapsed, cpu, rss, report = run_command(config, redis_port, database)
    finally:
        server.stop()

    requests = report["storage_requests"]
    per_1000 = requests * 1000 / entries
    verdict = "ok" if per_1000 <= TARGET_PER_1000 else "ABOVE TARGET"
    print(f"cleared: {report['cleared']} (every entry is backed)")
    print(
        f"storage requests: {requests:,} = {per_1000:.2f} per 1,000 entries "
        f"(target <= {TARGET_PER_1000}: {verdict})"
    )
    print(
        f"blobcache_reconcile: {elapsed:.1f} s end to end = {entries / elapsed:,.0f} entries/s; "
        f"peak RSS {rss:.0f} MB (sampled every 50 ms)"
    )
    # moto answers each ListObjectsV2 page by walking and sorting the whole bucket, so the wall
    # time above is mostly the stand-in server's; the command's own CPU time is blobcache's.
    print(
        f"blobcache_reconcile CPU: {cpu:.1f} s (Django start-up included) = "
        f"{entries / cpu:,.0f} entries per CPU second"
    )
    if report["cleared"] != 0:
        raise SystemExit("a backed entry was cleared")


if __name__ == "__main__":
    main()
