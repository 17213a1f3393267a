"""Settings for ``benchmarks/cluster_scaling.py``: the benchmarks' own, pointed at a private
Redis Cluster or Sentinel group (``REDIS_URL``), with the queues that benchmark spreads over
the primaries (``CONVOY_BENCH_QUEUES``) and its ``WAIT_REPLICAS`` (``CONVOY_BENCH_WAIT``)."""

import os

from benchmarks.settings import *  # noqa: F403

CONVOY = {
    **CONVOY,  # noqa: F405
    "QUEUES": {
        **CONVOY["QUEUES"],  # noqa: F405
        **{name: {} for name in os.environ.get("CONVOY_BENCH_QUEUES", "").split(",") if name},
    },
    "WAIT_REPLICAS": int(os.environ.get("CONVOY_BENCH_WAIT", "0")),
}
