"""Huey, set up as its documentation shows, with the same jobs as convoy's W2-io tasks.

Run by ``benchmarks/w2_io.py`` as ``python -m huey.bin.huey_consumer benchmarks.huey_app.huey
-w 4 -k process -q`` on the benchmark's private redis-server (``REDIS_URL``). A plain
``RedisHuey`` with its defaults (blocking BRPOP dequeue, results kept for tasks that return
something: these return None) under a name of its own, so its keys never meet convoy's. No
Django: djhuey's ``@task`` runs the same path per job, and only start-up would differ.
"""

import os

from huey import RedisHuey

from benchmarks.io_job import incr, record_start

NAME = "convoy-bench-huey"

huey = RedisHuey(NAME, url=os.environ["REDIS_URL"])


@huey.task()
def io_incr(n: int) -> None:
    """W2-io and W1-io: one INCR through the job's own client."""
    incr()


@huey.task()
def io_latency(t0: int) -> None:
    """W3-io: record when this job started."""
    record_start(t0)
