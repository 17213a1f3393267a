"""Flow control's limits on a Redis Cluster: the fault suite's flow scenario (tests/faults/flow.py)
with ``GROUP_CONCURRENCY``, ``RATE_LIMIT`` and ``GROUP_RATE_LIMIT`` each on a queue of a
different primary, run by real worker processes (settings.py) whose journal shows what ran.
The claim script holds each limit on its queue's slot and its node's clock, so they hold
exactly there as on one Redis."""

from __future__ import annotations

import json

import pytest

from tests.faults import flow
from tests.faults.cluster import Processes
from tests.faults.queues import FAULT_QUEUES

LIMITS = ("flow-groups", "flow-rate", "flow-group-rate")  # the fault queues whose limits to take
LOADS = {
    "flow-groups": flow.Load(("g1", "g2", "g3"), per_group=6, sleep=0.4),
    "flow-rate": flow.Load(("a", "b", None), per_group=14, sleep=0.02),
    "flow-group-rate": flow.Load(("a", "b", "c"), per_group=10, sleep=0.02),
}
WORKERS = 2  # 8 slots per queue: more than the three groups' caps


@pytest.fixture
def limited(cluster_world, settings, tmp_path):
    """Processes on the Redis Cluster, each queue (one per primary) with one fault queue's
    limits, in this process and in theirs alike; fault queue name -> the queue's name."""
    names = dict(zip(LIMITS, cluster_world.queues, strict=True))
    settings.CONVOY = {
        **settings.CONVOY,
        "QUEUES": {name: FAULT_QUEUES[limit] for limit, name in names.items()},
    }
    started = Processes(
        tmp_path,
        settings.CONVOY["REDIS_URL"],
        settings_module="tests.cluster.settings",
        env={"CONVOY_CLUSTER_SETTING": json.dumps(settings.CONVOY)},
    )
    yield started, names
    started.close()


def test_limits_hold_exactly_on_every_primary(cluster_world, limited):
    processes, names = limited
    primaries = {cluster_world.primary_of(name).port for name in names.values()}
    assert len(primaries) == 3, "the queues must live on every primary"
    queues = {name: cluster_world.queue(name) for name in names.values()}
    loads = {names[limit]: load for limit, load in LOADS.items()}
    # No hand-offs here: a worker on queues in several slots cannot block on one list.
    ids, seconds = flow.run_load(processes, queues, loads, [()] * WORKERS, waiting=0)
    runs = processes.runs()
    found = {limit: flow.figures(queues[name], runs) for limit, name in names.items()}
    flow.report_load(
        f"flow control on a Redis Cluster, {WORKERS} workers", ids, runs, seconds, found
    )
    # Each queue carries its limit here as in the workers (else the checks below would pass
    # for want of anything to check).
    assert "peaks" in found["flow-groups"]
    assert "rate_limit" in found["flow-rate"]
    assert "group_rate_limit" in found["flow-group-rate"]
    for limit, name in names.items():
        flow.assert_limits_held(queues[name], found[limit])
