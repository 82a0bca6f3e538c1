"""Requests/s of the REST API under gunicorn beside a raw one-HMGET DRF view, in the same run.

Run: bin/bench, or `.venv/bin/python benchmarks/bench_api.py [--seconds S] [--rounds N]
[--connections C] [--loader auto|wrk|python]`.

Starts its own redis-server, a throwaway SQLite database with a superuser and its DRF token,
and the demo project under gunicorn (2 workers, keep-alive). Load comes from another process:
``wrk`` when installed, else several Python processes with keep-alive ``http.client``
connections. Measured: ``GET /api/repositories/<name>/blobs/<digest>`` and the baseline
``GET /raw/blobs/<digest>`` (one HMGET), alternating in rounds; the ratio of their medians is
the figure of merit (target >= 0.8). On a busy 2-core machine requests/s swing from round to
round, so the server CPU spent per request (gunicorn workers plus redis-server) is printed too:
other processes cannot distort it. When Debian's ``docker-registry`` is installed, the registry's
own ``HEAD /v2/<name>/blobs/<digest>`` on the same Redis is measured too (with the Python loader:
wrk waits for the body a HEAD never gets). Last, the API request on two more servers, one
counting Prometheus metrics into multiprocess files as ``bin/serve`` runs it, one with
``BLOBCACHE["METRICS"] = False`` (target: on >= 0.95 of off; ``--skip-metrics`` leaves it out).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._redis import throwaway_redis  # noqa: E402

REPOSITORY = "library/alpine"
LAYER = b"blobcache benchmark layer\n" * 64
DIGEST = "sha256:" + hashlib.sha256(LAYER).hexdigest()
WORKERS = 2
THREADS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_http(port: int, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body=body or None, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data, dict(response.getheaders())


# --- load generators ------------------------------------------------------------------------


def _python_client(args: tuple[int, str, str, dict[str, str], float, int]) -> tuple[int, int]:
    port, method, path, headers, seconds, connections = args
    pool = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(connections)]
    done = failed = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for connection in pool:
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status >= 300:
                failed += 1
            done += 1
    for connection in pool:
        connection.close()
    return done, failed


def python_load(port: int, method: str, path: str, headers: dict[str, str], seconds: float,
                connections: int) -> float:
    """Keep-alive connections spread over processes, each sending requests back to back."""
    processes = max(1, min(connections, os.cpu_count() or 2))
    per_process = max(1, connections // processes)
    jobs = [(port, method, path, headers, seconds, per_process)] * processes
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_python_client, jobs)
    elapsed = max(time.perf_counter() - started - 0.3, seconds)  # process start-up excluded
    done = sum(result[0] for result in results)
    failed = sum(result[1] for result in results)
    if failed:
        raise RuntimeError(f"{failed} of {done} requests to {path} failed")
    return done / elapsed


def wrk_load(port: int, method: str, path: str, headers: dict[str, str], seconds: float,
             connections: int, script_dir: Path) -> float:
    script = script_dir / f"{method.lower()}.lua"
    script.write_text(f'wrk.method = "{method}"\n')
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s", "-s", str(script)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw failures on {path}:\n{output}")
    found = re.search(r"Requests/sec:\s*([0-9.]+)", output)
    if not found:
        raise RuntimeError(f"no Requests/sec in wrk output:\n{output}")
    return float(found.group(1))


# --- servers --------------------------------------------------------------------------------


@contextmanager
def gunicorn(env: dict[str, str], work_dir: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("gunicorn")), "project.wsgi:application",
        "--chdir", str(ROOT), "--bind", f"127.0.0.1:{port}",
        "--workers", str(WORKERS), "--worker-class", "gthread", "--threads", str(THREADS),
        "--keep-alive", "75", "--error-logfile", str(work_dir / "gunicorn.log"),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for_http(port, "/api/schema/")
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


class ServerCPU:
    """CPU seconds used by the gunicorn workers and redis-server: a cost per request that other
    processes on a shared machine cannot distort, unlike requests/s."""

    def __init__(self, gunicorn_pid: int, redis_port: int) -> None:
        import psutil
        import redis

        client = redis.Redis(port=redis_port)
        redis_pid = int(client.info("server")["process_id"])
        client.close()
        self.processes = [*psutil.Process(gunicorn_pid).children(), psutil.Process(redis_pid)]

    def seconds(self) -> float:
        total = 0.0
        for process in self.processes:
            times = process.cpu_times()
            total += times.user + times.system
        return total


@contextmanager
def docker_registry(redis_port: int, work_dir: Path) -> Iterator[int | None]:
    binary = shutil.which("docker-registry")
    if binary is None:
        yield None
        return
    port = free_port()
    config = {
        "version": "0.1",
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(work_dir / "registry")},
            "cache": {"blobdescriptor": "redis"},
            "maintenance": {"uploadpurging": {"enabled": False}},
            "redirect": {"disable": True},
        },
        "redis": {
            "addr": f"127.0.0.1:{redis_port}",
            "db": 0,
            "dialtimeout": "1s",
            "readtimeout": "1s",
            "writetimeout": "1s",
            "pool": {"maxidle": 16, "maxactive": 64, "idletimeout": "60s"},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "blobcache-bench"},
        "health": {"storagedriver": {"enabled": False}},
    }
    config_path = work_dir / "registry.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    env = {name: value for name, value in os.environ.items() if not name.startswith("REGISTRY_")}
    process = subprocess.Popen(
        [binary, "serve", str(config_path)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(port, "/v2/")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def push_layer(port: int) -> None:
    """A monolithic upload: the registry itself writes the descriptor into Redis."""
    status, _, headers = request(port, "POST", f"/v2/{REPOSITORY}/blobs/uploads/", {})
    if status != 202:
        raise RuntimeError(f"registry upload start answered {status}")
    location = headers["Location"]
    path = location.split("://", 1)[-1].split("/", 1)[-1]
    separator = "&" if "?" in path else "?"
    status, body, _ = request(
        port, "PUT", f"/{path}{separator}digest={DIGEST}",
        {"Content-Type": "application/octet-stream"}, LAYER,
    )
    if status != 201:
        raise RuntimeError(f"registry upload commit answered {status}: {body[:200]!r}")


def prepare_django(env: dict[str, str]) -> str:
    """Migrate the throwaway database and return a superuser's token."""
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0)
    user = User.objects.create_superuser("bench", "bench@example.com", "bench-pw")
    return str(Token.objects.create(user=user).key)


def populate(redis_port: int) -> None:
    """Without a registry, the descriptor is written the way the registry would write it."""
    from blobcache import Descriptor, get_descriptor_cache

    get_descriptor_cache().repository_scoped(REPOSITORY).put(
        DIGEST, Descriptor(DIGEST, len(LAYER), "application/octet-stream")
    )


def compare_with_registry(
    port: int, registry_port: int, headers: dict[str, str], options: argparse.Namespace
) -> None:
    """The registry's HEAD beside the API's GET, both with the Python loader.

    wrk cannot measure HEAD: its parser waits for the Content-Length bytes a HEAD never gets.
    """
    registry_path = f"/v2/{REPOSITORY}/blobs/{DIGEST}"
    status, _, _ = request(registry_port, "HEAD", registry_path, {})
    if status != 200:
        raise RuntimeError(f"registry HEAD answered {status}")
    api_path = f"/api/repositories/{REPOSITORY}/blobs/{DIGEST}"
    measured: dict[str, list[float]] = {"registry": [], "api": []}
    for _ in range(options.rounds):
        measured["registry"].append(
            python_load(registry_port, "HEAD", registry_path, {}, options.seconds,
                        options.connections)
        )
        measured["api"].append(
            python_load(port, "GET", api_path, headers, options.seconds, options.connections)
        )
    report(f"HEAD {registry_path} (docker-registry, same Redis)", measured["registry"])
    report(f"GET {api_path} (the same Python loader)", measured["api"])


#: Run in a child process with the server's environment: prometheus-client chooses its value
#: class (mmap files or not) when first imported, so the bench process cannot switch modes.
COUNTING_COST = """
import time, django
django.setup()
from blobcache import metrics

class Service:
    repository = None

    @metrics.measured(metrics.STAT, metrics.HIT)
    def stat(self):
        return None

def per_call(calls=100_000):
    service = Service()
    started = time.perf_counter()
    for _ in range(calls):
        service.stat()
    return (time.perf_counter() - started) / calls

best = {}
for state in (True, False, True, False, True, False):
    metrics.switch.on = state
    best[state] = min(best.get(state, 1.0), per_call())
print(f"{(best[True] - best[False]) * 1e6:.2f}")
"""


def counting_cost(env: dict[str, str]) -> float:
    """Microseconds one counted cache operation adds (best of three, so noise only lowers it
    towards the true cost rather than inflating it)."""
    output = subprocess.run(
        [sys.executable, "-c", COUNTING_COST], env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, check=True,
    ).stdout
    return float(output.strip())


def compare_metrics_on_off(
    env: dict[str, str], work_dir: Path, path: str, headers: dict[str, str],
    load: Callable[[int, str, str, dict[str, str]], float], options: argparse.Namespace,
) -> None:
    """The same API request on two servers: counting into prometheus-client's multiprocess
    files (as bin/serve runs it) and with ``BLOBCACHE["METRICS"] = False``."""
    metrics_dir = work_dir / "prometheus"
    metrics_dir.mkdir()
    on_env = {**env, "BLOBCACHE_BENCH_METRICS": "1", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    off_env = {**env, "BLOBCACHE_BENCH_METRICS": "0"}
    off_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    rates: dict[str, list[float]] = {"on": [], "off": []}
    costs: dict[str, list[float]] = {"on": [], "off": []}
    with gunicorn(on_env, work_dir) as (on_port, on_pid), \
            gunicorn(off_env, work_dir) as (off_port, off_pid):
        servers = {"on": (on_port, on_pid), "off": (off_port, off_pid)}
        for port, _ in servers.values():
            load(port, "GET", path, headers)  # warm-up
        redis_port = int(env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        cpu = {name: ServerCPU(pid, redis_port) for name, (_, pid) in servers.items()}
        for round_number in range(options.rounds):
            order = ["on", "off"] if round_number % 2 == 0 else ["off", "on"]
            for name in order:
                before = cpu[name].seconds()
                rates[name].append(load(servers[name][0], "GET", path, headers))
                requests = rates[name][-1] * options.seconds
                costs[name].append((cpu[name].seconds() - before) / requests)
    files = sorted(item.name for item in metrics_dir.iterdir())
    report(f"GET {path} (metrics on, multiprocess files: {', '.join(files)})", rates["on"])
    report(f"GET {path} (metrics off)", rates["off"])
    ratios = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    on_cost = statistics.median(costs["on"]) * 1e6
    off_cost = statistics.median(costs["off"]) * 1e6
    print(f"ratio metrics on / off: {statistics.median(ratios):.2f} (median of the rounds' "
          f"ratios {', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.95); server CPU per "
          f"request {on_cost:.0f} us on, {off_cost:.0f} us off: capacity ratio "
          f"{off_cost / on_cost:.2f}")
    # The request above is one cache operation: what counting it costs, measured alone, beside
    # the whole request's CPU (immune to the load of other processes, unlike requests/s).
    cost = counting_cost(on_env)
    print(f"counting one operation into multiprocess files: {cost:.1f} us, against "
          f"{off_cost:.0f} us of server CPU per request: ratio {off_cost / (off_cost + cost):.3f}")


def report(label: str, rates: list[float]) -> None:
    rounds = ", ".join(f"{rate:,.0f}" for rate in rates)
    print(f"{label:<100}{statistics.median(rates):>9,.0f} req/s (median; rounds {rounds})")

# --- listings beside the registry: a registry-like HMGET's latency while listings loop ---------

LISTING_KEYS = 300_000
LISTING_PATH = "/api/repositories?page_size=1000"


def fill_listing_database(redis_port: int) -> str:
    """300,000 global hashes and 3 repositories: the keyspace a repository listing must SCAN
    past. Returns the digest the HMGET probe reads."""
    import redis

    client = redis.Redis(port=redis_port)
    probe = ""
    for start in range(0, LISTING_KEYS, 5000):
        pipeline = client.pipeline(transaction=False)
        for n in range(start, min(start + 5000, LISTING_KEYS)):
            digest = "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()
            pipeline.hset(f"blobs::{digest}", mapping={
                "digest": digest, "size": n, "mediatype": "application/octet-stream"})
            probe = probe or digest
        pipeline.execute()
    for n in range(3):
        client.sadd(f"repository::team/app{n}::blobs", probe)
        client.hset(f"repository::team/app{n}::blobs::{probe}", "mediatype",
                    "application/octet-stream")
    client.close()
    return probe


def _hmget_probe(args: tuple[int, str, float]) -> list[float]:
    """What the registry does per blob request, about 1,000 times a second; latencies in s."""
    import redis

    port, digest, seconds = args
    client = redis.Redis(port=port)
    client.ping()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while (started := time.perf_counter()) < deadline:
        client.hmget(f"blobs::{digest}", "digest", "size", "mediatype")
        latencies.append(time.perf_counter() - started)
        time.sleep(0.001)
    client.close()
    return latencies


def _looping_client(args: tuple[int, dict[str, str], float, str, int]) -> int:
    """Sends ``path`` again and again on one keep-alive connection, following ``next`` links
    of a listing (and starting over at its end); returns the number of requests."""
    port, headers, seconds, start, expected = args
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    done = 0
    path = start
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != expected:
            raise RuntimeError(f"{path} answered {response.status}: {body[:200]!r}")
        following = json.loads(body).get("next")
        path = following.split(f":{port}", 1)[1] if following else start
        done += 1
    connection.close()
    return done


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


#: The same stack with no Redis call at all: page_size is refused before Redis is asked.
CONTROL_PATH = "/api/repositories?page_size=1001"
#: name -> (path the two clients loop on, its status), None: the HMGET alone.
LISTING_LOADS: dict[str, tuple[str, int] | None] = {
    "alone": None,
    "control": (CONTROL_PATH, 400),
    "listing": (LISTING_PATH, 200),
}


def listing_impact(env: dict[str, str], headers: dict[str, str], work_dir: Path,
                   options: argparse.Namespace) -> None:
    """The HMGET's p99 with two listing clients looping against the same without them, in
    rotating rounds; target: within 2x. The control load runs the same Django stack but never
    reaches Redis: on a machine with few cores, the clients and workers take CPU from the
    probe and redis-server, and that share of the slowdown is not the listing's Redis cost."""
    import redis

    with throwaway_redis() as redis_port:
        digest = fill_listing_database(redis_port)
        listing_env = {**env, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
        with gunicorn(listing_env, work_dir) as (port, _):
            status, body, _ = request(port, "GET", LISTING_PATH, headers)
            if status != 200:
                raise RuntimeError(f"{LISTING_PATH} answered {status}: {body[:300]!r}")
            stats = redis.Redis(port=redis_port)
            latencies: dict[str, list[float]] = {name: [] for name in LISTING_LOADS}
            requests: dict[str, int] = {name: 0 for name in LISTING_LOADS}
            stats.config_resetstat()
            names = list(LISTING_LOADS)
            context = multiprocessing.get_context("spawn")
            with context.Pool(3) as pool:
                for round_number in range(options.listing_rounds):
                    shift = round_number % len(names)
                    for name in names[shift:] + names[:shift]:
                        load = LISTING_LOADS[name]
                        clients = [
                            pool.apply_async(_looping_client, ((
                                port, headers, options.listing_seconds + 1, *load),))
                            for _ in range(2 if load else 0)
                        ]
                        time.sleep(0.5 if load else 0)  # the clients are under way
                        latencies[name] += pool.apply(
                            _hmget_probe, ((redis_port, digest, options.listing_seconds),))
                        requests[name] += sum(client.get() for client in clients)
            scan = stats.info("commandstats").get("cmdstat_scan", {})
            stats.close()
    p99 = {name: percentile(values, 0.99) * 1e3 for name, values in latencies.items()}
    print(f"HMGET beside {LISTING_KEYS:,} keys, {options.listing_rounds} rounds of "
          f"{options.listing_seconds:g} s per load:")
    labels = {
        "alone": "alone",
        "control": f"2 clients looping GET {CONTROL_PATH} (400, no Redis call)",
        "listing": f"2 clients looping GET {LISTING_PATH} (walking every page)",
    }
    for name, values in latencies.items():
        print(f"  {labels[name]:<80} p50 {percentile(values, 0.5) * 1e3:5.2f} ms, p99 "
              f"{p99[name]:5.2f} ms ({len(values):,} calls, {requests[name]:,} requests)")
    if scan and requests["listing"]:
        print(f"  SCAN: {int(scan['calls']) / requests['listing']:.1f} calls per listing "
              f"request, {float(scan['usec_per_call']):.0f} us each on average")
    print(f"ratio of the p99s, with listings / alone: {p99['listing'] / p99['alone']:.2f} "
          f"(target <= 2); with listings / control load: {p99['listing'] / p99['control']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one measurement")
    parser.add_argument("--rounds", type=int, default=7, help="measurements per endpoint")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--skip-metrics", action="store_true",
                        help="leave out the metrics on/off comparison")
    parser.add_argument("--listing-seconds", type=float, default=5.0,
                        help="length of one HMGET measurement beside the listings")
    parser.add_argument("--listing-rounds", type=int, default=4,
                        help="HMGET measurements with and without listings each")
    parser.add_argument("--only-listing", action="store_true",
                        help="measure only the HMGET beside the listings")
    options = parser.parse_args()
    loader = options.loader
    if loader == "auto":
        loader = "wrk" if shutil.which("wrk") else "python"

    with (
        tempfile.TemporaryDirectory(prefix="blobcache-bench-api-") as tmp,
        throwaway_redis() as redis_port,
    ):
        work_dir = Path(tmp)
        (work_dir / "static").mkdir()  # WhiteNoise's STATIC_ROOT; nothing is served from it
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "benchmarks.api_bench_settings",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "DJANGO_DB_PATH": str(work_dir / "db.sqlite3"),
            "BLOBCACHE_VAR_DIR": str(work_dir),
        }
        token = prepare_django(env)
        headers = {"Authorization": f"Token {token}"}
        if options.only_listing:
            listing_impact(env, headers, work_dir, options)
            return

        def load(port: int, method: str, path: str, extra: dict[str, str]) -> float:
            if loader == "wrk":
                return wrk_load(port, method, path, extra, options.seconds, options.connections,
                                work_dir)
            return python_load(port, method, path, extra, options.seconds, options.connections)

        with docker_registry(redis_port, work_dir) as registry_port:
            if registry_port is not None:
                push_layer(registry_port)
            else:
                populate(redis_port)
            api_path = f"/api/repositories/{REPOSITORY}/blobs/{DIGEST}"
            raw_path = f"/raw/blobs/{DIGEST}"
            with gunicorn(env, work_dir) as (port, gunicorn_pid):
                for path in (api_path, raw_path):
                    status, body, _ = request(port, "GET", path, headers)
                    if status != 200:
                        raise RuntimeError(f"{path} answered {status}: {body[:300]!r}")
                print(f"redis-server 127.0.0.1:{redis_port}; gunicorn {WORKERS} workers "
                      f"(gthread, {THREADS} threads) on 127.0.0.1:{port}; loader {loader}, "
                      f"{options.connections} keep-alive connections, {options.rounds} rounds "
                      f"of {options.seconds:g} s")
                print(f"descriptor: {body.decode()}")
                load(port, "GET", api_path, headers)  # warm-up: imports, pools, scripts
                load(port, "GET", raw_path, headers)
                cpu = ServerCPU(gunicorn_pid, redis_port)
                api_rates: list[float] = []
                raw_rates: list[float] = []
                cpu_costs: dict[str, list[float]] = {api_path: [], raw_path: []}
                for round_number in range(options.rounds):
                    # Back to back, in alternating order, so that drift (heat, other load on the
                    # machine) hits both alike; each round gives one ratio.
                    order = [(api_path, api_rates), (raw_path, raw_rates)]
                    for path, rates in order if round_number % 2 == 0 else order[::-1]:
                        before = cpu.seconds()
                        rates.append(load(port, "GET", path, headers))
                        requests = rates[-1] * options.seconds
                        cpu_costs[path].append((cpu.seconds() - before) / requests)
                report("GET " + api_path, api_rates)
                report(f"GET {raw_path} (one raw HMGET, same server)", raw_rates)
                ratios = [api / raw for api, raw in zip(api_rates, raw_rates, strict=True)]
                print(f"ratio API / raw HMGET view: {statistics.median(ratios):.2f} (median of "
                      f"the rounds' ratios {', '.join(f'{r:.2f}' for r in ratios)}; "
                      "target >= 0.8)")
                api_cost = statistics.median(cpu_costs[api_path]) * 1e6
                raw_cost = statistics.median(cpu_costs[raw_path]) * 1e6
                print(f"server CPU per request (gunicorn workers + redis-server, median): API "
                      f"{api_cost:.0f} us, raw HMGET view {raw_cost:.0f} us; capacity ratio "
                      f"{raw_cost / api_cost:.2f}")
                if registry_port is not None:
                    compare_with_registry(port, registry_port, headers, options)
                else:
                    print("docker-registry is not installed: no registry figure")
            if not options.skip_metrics:
                compare_metrics_on_off(env, work_dir, api_path, headers, load, options)
        listing_impact(env, headers, work_dir, options)

if __name__ == "__main__":
    main()
