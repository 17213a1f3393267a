"""Scenario 1: many producers adding the same ids at once.

Eight producer processes add the same 500 ids, each going through them in random orders of
its own. Phase 1, no worker running: each id is queued exactly once (500 acknowledged adds in
all, 500 queued). Phase 2, two workers running
while the producers go on: an add lands only while its id is released, and each acknowledged
add gives exactly one run; no two runs of an id overlap.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from django_convoy.store.keys import workers_registry_key

from . import checker
from .cluster import PREFIX, Cluster

IDS = 500


def many_producers(cluster: Cluster, producers: int, adds: int, adds2: int, pause2: float) -> None:
    queue = cluster.queue("faults")
    go, then = cluster.root / "go", cluster.root / "then"
    outs = [cluster.root / f"producer{k}.json" for k in range(producers)]
    procs = [
        cluster.producer(
            f"producer{k}",
            *("--out", str(out), "--start", str(go), "--then", str(then)),
            *("--ids", str(IDS), "--adds", str(adds), "--adds2", str(adds2)),
            *("--pause2", str(pause2)),
            *("--payload", json.dumps({"sleep": 0.002})),
        )
        for k, out in enumerate(outs)
    ]
    cluster.wait_for(
        lambda: all(out.with_suffix(".json.ready").exists() for out in outs), 60, "ready"
    )
    go.touch()
    cluster.wait_for(
        lambda: all(out.with_suffix(".json.phase1").exists() for out in outs), 120, "phase 1"
    )
    queued_after_phase1 = queue.stats()["queued"]
    in_redis = checker.states(queue.client, queue.keys)

    for k in range(2):
        cluster.worker("faults", name=f"worker{k}")
    registry = workers_registry_key(PREFIX)
    cluster.wait_for(lambda: queue.client.zcard(registry) == 2, 60, "both workers up")
    then.touch()
    for proc in procs:
        assert proc.wait(180) == 0, proc.output()

    def drained() -> bool:
        stats = queue.stats()
        return stats["queued"] + stats["processing"] + stats["jammed"] == 0

    cluster.wait_for(drained, 120, "every queued job run")
    cluster.stop_all()

    summaries = [json.loads(out.read_text()) for out in outs]
    accepted = [tuple(entry) for s in summaries for entry in s["accepted"]]
    phase1 = [job_id for job_id, phase in accepted if phase == 1]
    runs = cluster.runs()
    started = checker.starts(runs)
    wanted = Counter(job_id for job_id, _ in accepted)
    live, zombie = checker.overlaps(runs)
    left = checker.count_left_behind(queue.client, queue.keys)
    checker.report(
        f"1 many producers ({producers} x {adds + adds2} adds over {IDS} ids)",
        adds=sum(s["adds"] for s in summaries),
        acknowledged_in_phase_1=len(phase1),
        queued_after_phase_1=queued_after_phase1,
        acknowledged_in_phase_2=len(accepted) - len(phase1),
        runs=len(runs),
        runs_not_matching_an_add=sum(((started - wanted) + (wanted - started)).values()),
        live_overlaps=len(live),
        zombie_overlaps=len(zombie),
        producer_errors=sum(len(s["errors"]) for s in summaries),
        left_behind=left,
    )
    assert len(phase1) == len(set(phase1)) == IDS
    assert queued_after_phase1 == IDS
    assert set(in_redis.values()) == {"queued"} and len(in_redis) == IDS
    assert started == wanted  # each acknowledged add ran exactly once
    assert not live and not zombie
    assert all(run.completed for run in runs)
    assert left == 0
    assert not any(s["errors"] for s in summaries)


def test_many_producers_queue_each_id_once_and_its_runs_never_overlap(cluster):
    many_producers(cluster, producers=8, adds=IDS, adds2=250, pause2=0.004)


@pytest.mark.slow
def test_soak_many_producers_5000_adds_each(cluster):
    many_producers(cluster, producers=8, adds=2500, adds2=2500, pause2=0.002)
