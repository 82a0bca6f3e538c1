"""Cache manager ops/s on standalone, Sentinel and Cluster, in the same run, with ratios.

Run: bin/bench, or `.venv/bin/python benchmarks/bench_topologies.py [--seconds S] [--rounds N]`.
Each topology is started here (blobcache.testing) and configured the way a portal would:
django-redis for standalone and Sentinel, blobcache's cluster_client for Cluster.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from django.test import override_settings  # noqa: E402

from benchmarks.bench_cache import rate  # noqa: E402
from blobcache import Descriptor, get_descriptor_cache  # noqa: E402
from blobcache.testing import (  # noqa: E402
    django_settings_for,
    start_cluster,
    start_sentinel,
    start_standalone,
)

DIGEST = "sha256:" + "ab" * 32
REPOSITORY = "library/alpine"


def measure(settings: dict[str, object], seconds: float) -> dict[str, float]:
    with override_settings(**settings):
        cache = get_descriptor_cache()
        scoped = cache.repository_scoped(REPOSITORY)
        descriptor = Descriptor(DIGEST, 1234, "application/octet-stream")
        scoped.set_descriptor(DIGEST, descriptor)
        return {
            "global stat": rate(lambda: cache.stat(DIGEST), seconds),
            "repository stat": rate(lambda: scoped.stat(DIGEST), seconds),
            "repository set_descriptor": rate(
                lambda: scoped.set_descriptor(DIGEST, descriptor), seconds
            ),
            "repository set+clear": rate(
                lambda: (scoped.set_descriptor(DIGEST, descriptor), scoped.clear(DIGEST)),
                seconds,
            ),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="measuring time per operation and topology, over all rounds")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds; each measures every topology in turn, so that a noisy "
                             "spell of the machine falls on all three alike")
    options = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="blobcache-bench-") as data_dir, ExitStack() as stack:
        running = {}
        for kind, start in (("standalone", start_standalone), ("sentinel", start_sentinel),
                            ("cluster", start_cluster)):
            topology = start(Path(data_dir) / kind)
            stack.callback(topology.stop)
            running[kind] = topology
        for _ in range(options.rounds):
            for kind, topology in running.items():
                rates = measure(django_settings_for(topology), options.seconds / options.rounds)
                best = results.setdefault(kind, {})
                for name, value in rates.items():
                    best[name] = max(best.get(name, 0.0), value)
    print(f"{'operation (ops/s)':<28}{'standalone':>12}{'sentinel':>12}{'cluster':>12}"
          f"{'sent./std':>11}{'clus./std':>11}")
    for name, base in results["standalone"].items():
        sentinel, cluster = results["sentinel"][name], results["cluster"][name]
        print(f"{name:<28}{base:>12,.0f}{sentinel:>12,.0f}{cluster:>12,.0f}"
              f"{sentinel / base:>11.2f}{cluster / base:>11.2f}")
    print("(best of the rounds per topology; set+clear counts pairs: one set_descriptor and one"
          " clear each)")


if __name__ == "__main__":
    main()
