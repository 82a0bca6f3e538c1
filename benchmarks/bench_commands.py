"""blobcache_clear at scale, beside redis-cli doing the same deletion on the same data.

Run: bin/bench, or `.venv/bin/python benchmarks/bench_commands.py [--rounds N]`.

A throwaway redis-server is filled with 1,000,000 keys of the registry's layout (one repository
holding 100,000 members, 999 holding 200, 699,200 global descriptors) plus 1,000 keys of another
app. Each round reloads that data set, then times one process end to end (interpreter and Django
start-up included):
- ``manage.py blobcache_clear --repository bench/big --all`` against
  ``redis-cli --scan --count 1000 --pattern 'repository::bench/big::blobs*' | xargs -n 1000
  redis-cli unlink``;
- ``manage.py blobcache_clear --all`` against the same pipeline over ``blobs::*`` then
  ``repository::*``.
Targets: repository clear >= 100,000 descriptors/s, --all >= 50,000 keys/s, each at
least as fast as redis-cli (ratio >= 1), command peak RSS < 100 MB. Best round of each is shown.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._redis import throwaway_redis  # noqa: E402
from blobcache.testing import find_redis_server, redis_cli_for  # noqa: E402

BIG = "bench/big"
BIG_MEMBERS = 100_000
OTHER_REPOSITORIES = 999
OTHER_MEMBERS = 200
GLOBALS = 699_200
FOREIGN_KEYS = 1_000
LAYOUT_KEYS = GLOBALS + 1 + BIG_MEMBERS + OTHER_REPOSITORIES * (1 + OTHER_MEMBERS)  # = 1,000,000
MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest(number: int) -> str:
    return f"sha256:{number:064x}"


def command(*args: str) -> bytes:
    """One command in the Redis protocol, for ``redis-cli --pipe``."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def write_data_set(path: Path) -> None:
    with path.open("wb") as out:
        for n in range(GLOBALS):
            d = digest(n)
            out.write(
                command("HSET", f"blobs::{d}", "digest", d, "size", str(n), "mediatype", MEDIA_TYPE)
            )
        for start in range(0, BIG_MEMBERS, 1000):
            members = [digest(n) for n in range(start, start + 1000)]
            out.write(command("SADD", f"repository::{BIG}::blobs", *members))
        for n in range(BIG_MEMBERS):
            out.write(
                command("HSET", f"repository::{BIG}::blobs::{digest(n)}", "mediatype", MEDIA_TYPE)
            )
        for r in range(OTHER_REPOSITORIES):
            name = f"bench/app{r}"
            first = BIG_MEMBERS + r * OTHER_MEMBERS
            members = [digest(n) for n in range(first, first + OTHER_MEMBERS)]
            out.write(command("SADD", f"repository::{name}::blobs", *members))
            for member in members:
                out.write(
                    command("HSET", f"repository::{name}::blobs::{member}", "mediatype", MEDIA_TYPE)
                )
        for n in range(FOREIGN_KEYS):
            out.write(command("SET", f":1:django-cache-entry-{n}", "x"))


class Server:
    def __init__(self, port: int, data_set: Path) -> None:
        self.port = port
        self.data_set = data_set
        cli = redis_cli_for(find_redis_server())
        if cli is None:
            raise SystemExit("redis-cli not found: it is both the loader and the baseline")
        self.cli = cli
        self.url = f"redis://127.0.0.1:{port}/0"

    def redis_cli(self, *args: str, stdin: object = None) -> str:
        return subprocess.run(
            [self.cli, "-p", str(self.port), *args],
            stdin=stdin,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def reload(self) -> None:
        self.redis_cli("FLUSHALL")  # the throwaway server's own data, never a shared one
        with self.data_set.open("rb") as stream:
            self.redis_cli("--pipe", stdin=stream)
        size = int(self.redis_cli("DBSIZE"))
        assert size == LAYOUT_KEYS + FOREIGN_KEYS, size

    def dbsize(self) -> int:
        return int(self.redis_cli("DBSIZE"))


def run_measured(
    server: Server, *args: str, as_json: tuple[str, ...] = ("--format", "json")
) -> tuple[float, float, dict[str, object]]:
    """Seconds, peak RSS in MB (``wait4``'s figure for this one child) and the JSON summary."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args, *as_json],
        env={**os.environ, "REDIS_URL": server.url, "DJANGO_SETTINGS_MODULE": "project.settings"},
        cwd=ROOT,
        stdout=out,
        stderr=err,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    if process.returncode != 0:
        raise SystemExit(f"{args} failed ({process.returncode}): {err.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024, json.loads(out.read())


def scanner(server: Server) -> tuple[list[str], str]:
    """The scan half of the baseline: ``redis-cli --scan --count 1000``, or its stand-in.

    ``--count`` came with redis-cli 7.2; Debian 12's is 7.0.15, whose ``--scan`` always asks
    for COUNT 10 (100 times the round trips). Where it is missing, a SCAN loop with COUNT 1000
    in Python (hiredis parser) prints the keys instead; the unlink half stays redis-cli.
    """
    probe = subprocess.run(
        [server.cli, "-p", str(server.port), "--scan", "--count", "1000", "--pattern", "x"],
        capture_output=True,
        check=False,
    )
    if probe.returncode == 0:
        return [server.cli, "-p", str(server.port), "--scan", "--count", "1000"], "redis-cli"
    command = [sys.executable, str(Path(__file__).resolve()), "--scan-keys", str(server.port)]
    return command, "python SCAN COUNT 1000 (redis-cli 7.0 has no --count)"


def scan_keys(port: int, pattern: str) -> None:
    import redis

    client = redis.Redis(port=port)
    out = sys.stdout.buffer
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, match=pattern, count=1000)
        if keys:
            out.write(b"\n".join(keys) + b"\n")
        if cursor == 0:
            break
    out.flush()


def run_pipeline(server: Server, scan: list[str], patterns: list[str]) -> float:
    port = shlex.quote(str(server.port))
    cli = shlex.quote(server.cli)
    script = " && ".join(
        f"{shlex.join(scan)} --pattern {shlex.quote(pattern)}"
        f" | xargs -n 1000 {cli} -p {port} unlink > /dev/null"
        for pattern in patterns
    )
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", script], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only", choices=("repository", "all"), help="Run one of the two comparisons."
    )
    parser.add_argument("--scan-keys", nargs=1, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--pattern", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.scan_keys:
        scan_keys(int(options.scan_keys[0]), options.pattern)
        return

    with tempfile.TemporaryDirectory(prefix="blobcache-bench-data-") as scratch:
        data_set = Path(scratch) / "layout.resp"
        started = time.perf_counter()
        write_data_set(data_set)
        print(
            f"data set: {LAYOUT_KEYS:,} layout keys + {FOREIGN_KEYS:,} foreign keys "
            f"({data_set.stat().st_size / 2**20:.0f} MB of commands, "
            f"{time.perf_counter() - started:.1f} s to write)"
        )
        with throwaway_redis() as port:
            server = Server(port, data_set)
            server.reload()
            scan, scan_name = scanner(server)
            print(f"baseline: {scan_name} | xargs -n 1000 redis-cli unlink")
            startup, startup_rss, _ = run_measured(server, "blobcache_stat", digest(0))
            print(
                f"manage.py start-up and one stat: {startup:.3f} s, peak RSS {startup_rss:.0f} MB"
            )

            results: dict[str, list[tuple[float, float]]] = {
                "repo": [],
                "repo-swept": [],
                "repo-cli": [],
                "all": [],
                "all-cli": [],
            }
            for _ in range(options.rounds):
                if options.only != "all":
                    results["repo"].append(measure_repository(server))
                    results["repo-swept"].append(measure_repository_swept(server))
                    results["repo-cli"].append(
                        measure_pipeline(
                            server,
                            scan,
                            [f"repository::{BIG}::blobs*"],
                            LAYOUT_KEYS + FOREIGN_KEYS - BIG_MEMBERS - 1,
                        )
                    )
                if options.only != "repository":
                    results["all"].append(measure_all(server))
                    results["all-cli"].append(
                        measure_pipeline(server, scan, ["blobs::*", "repository::*"], FOREIGN_KEYS)
                    )
    report(results, options.rounds)


def measure_repository(server: Server) -> tuple[float, float]:
    server.reload()
    seconds, rss, summary = run_measured(
        server, "blobcache_clear", "--repository", BIG, "--all", "--no-input"
    )
    expected = {"cleared": BIG_MEMBERS, "keys_deleted": BIG_MEMBERS + 1, "dry_run": False}
    assert summary == expected, summary
    return seconds, rss


def measure_repository_swept(server: Server) -> tuple[float, float]:
    """The same clear with --sweep: one more SCAN of the whole database for repository hashes
    that have no membership, whose cost grows with the database, not the repository."""
    server.reload()
    seconds, rss, summary = run_measured(
        server, "blobcache_clear", "--repository", BIG, "--all", "--sweep", "--no-input"
    )
    expected = {"cleared": BIG_MEMBERS, "keys_deleted": BIG_MEMBERS + 1, "dry_run": False}
    assert summary == expected, summary
    return seconds, rss


def measure_all(server: Server) -> tuple[float, float]:
    server.reload()
    seconds, rss, summary = run_measured(server, "blobcache_clear", "--all", "--no-input")
    assert summary["keys_deleted"] == LAYOUT_KEYS, summary
    assert server.dbsize() == FOREIGN_KEYS
    return seconds, rss


def measure_pipeline(
    server: Server, scan: list[str], patterns: list[str], left: int
) -> tuple[float, float]:
    server.reload()
    seconds = run_pipeline(server, scan, patterns)
    assert server.dbsize() == left
    return seconds, 0.0


def report(results: dict[str, list[tuple[float, float]]], rounds: int) -> None:
    print(f"rounds: {rounds} (best shown; each process timed end to end)")
    verdicts: dict[str, bool] = {}
    rss: list[float] = []
    comparisons = [
        ("repo", "repository clear", BIG_MEMBERS, "members", "descriptors/s", 100_000),
        ("all", "--all", LAYOUT_KEYS, "keys", "keys/s", 50_000),
    ]
    for name, title, count, what, unit, target in comparisons:
        if not results[name]:
            continue
        seconds, peak = min(results[name])
        baseline = min(results[f"{name}-cli"])[0]
        rate, cli_rate = count / seconds, count / baseline
        rss.append(peak)
        print(
            f"{title} ({count:,} {what}): {seconds:.3f} s = {rate:,.0f} {unit}, peak RSS "
            f"{peak:.0f} MB; redis-cli | xargs: {baseline:.3f} s = {cli_rate:,.0f} {unit}; "
            f"ratio {rate / cli_rate:.2f}"
        )
        verdicts[f"{title} >= {target:,} {unit}"] = rate >= target
        verdicts[f"{title} ratio >= 1"] = rate >= cli_rate
        if name == "repo":
            swept = min(results["repo-swept"])[0]
            print(
                f"  the same with --sweep (one more SCAN of the whole database): "
                f"{swept:.3f} s = {count / swept:,.0f} {unit}; ratio {count / swept / cli_rate:.2f}"
            )
    verdicts["peak RSS < 100 MB"] = max(rss) < 100
    for target_name, met in verdicts.items():
        print(f"  {'met   ' if met else 'MISSED'}  {target_name}")


if __name__ == "__main__":
    main()
