"""Scenario 2: crash at every step of a job's life, at an exact point, never by timing.

A hook in the worker's client layer (``hooks.py``) counts convoy's script calls and, at the
first call of one script, kills the worker (SIGKILL) or drops the connection, either before the
request reached Redis or after Redis executed it and before the reply came back. The steps are
the Redis writes of a run: claim -> (the job's code) -> renew -> ack_claim (the ack, claiming
the next run with it) or fail; the jam guard's recovery; the hand-back of a stopping worker.
Every case must end the same way: the job done exactly once as far as Redis is concerned, its
id released, nothing held or left behind.

All cases run at once, each in a Redis database of its own with its own workers; each test
then checks one case.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import checker
from .cluster import Cluster
from .queues import STEP_QUEUES


@dataclass(frozen=True)
class Case:
    step: str  # the script whose call is hit, or "run" (the job's own code crashes)
    when: str = ""  # before | after (Redis executed the call)
    action: str = "kill"  # kill | drop

    @property
    def name(self) -> str:
        return "-".join(filter(None, (self.step, self.when, self.action)))

    @property
    def plan(self) -> str:
        return f"{self.step}:1:{self.when}:{self.action}" if self.step != "run" else ""

    def payload(self, release: Path) -> dict:
        return {
            "run": {"sleep": 0.1, "crash": "once"},
            "renew": {"sleep": 0.8},  # outlives a keep interval (LEASE / 3): renewed once
            "fail": {"sleep": 0.05, "fail": "once"},
            # Runs until its first worker is gone: the SIGTERM finds it running.
            "handback": {"hold": str(release), "hold_max": 30},
        }.get(self.step, {"sleep": 0.1})

    @property
    def takes_worker_down(self) -> bool:
        return self.action == "kill" or self.step == "handback"


STEPS = ("claim", "renew", "ack_claim", "fail", "jam_guard", "handback")
CASES = [Case("run")] + [
    Case(step, when, action)
    for step in STEPS
    for when in ("before", "after")
    for action in ("kill", "drop")
]


@dataclass
class Result:
    fired: int
    starts: int
    stats: dict
    job: object
    left: dict
    live_overlaps: int
    logs: str


def run_all(cluster: Cluster) -> dict[Case, Result]:
    """Run every case at once, each on a queue of its own, in two phases.

    Phase 1: a worker per case with its fault plan. Phase 2, once every worker that was
    meant to go down is gone: one clean worker for those cases' queues. No worker ever sees
    another case's queue, so each interleaving stays exactly the one its plan makes.
    """
    queues = dict(zip(CASES, STEP_QUEUES, strict=False))
    for case, name in queues.items():
        queue = cluster.queue(name)
        queue.add_job(f"job-{case.name}", case.payload(cluster.root / "release"))
        if case.step == "jam_guard":  # a run whose worker is gone: a ghost's, past its lease
            queue.claim(1, "ghost-worker")
            queue.client.zadd(queue.keys.processing, {f"job-{case.name}": 1}, xx=True)
    first = {
        case: cluster.worker(
            name,
            name=f"w1-{case.name}",
            options=("--grace", "0"),
            **({"CONVOY_FAULT_PLAN": case.plan} if case.plan else {}),
        )
        for case, name in queues.items()
    }
    down = [case for case in CASES if case.takes_worker_down]
    stopping = {case for case in CASES if case.step == "handback"}

    def all_down() -> bool:
        started = {run.id for run in cluster.runs()}
        for case in list(stopping):
            if f"job-{case.name}" in started:
                first[case].signal(signal.SIGTERM)  # hand back the running job
                stopping.discard(case)
        return not stopping and not any(first[case].alive for case in down)

    cluster.wait_for(all_down, 60, "every worker meant to go down is gone")
    (cluster.root / "release").touch()
    second = cluster.worker(*(queues[case] for case in down), name="w2")
    finished: set[Case] = set()

    def all_done() -> bool:
        for case, name in queues.items():
            queue = cluster.queue(name)
            if case not in finished and queue.stats()["processed_total"] >= 1:
                if queue.get_job(f"job-{case.name}") is None:
                    finished.add(case)
        return len(finished) == len(CASES)

    try:
        cluster.wait_for(all_done, 60, "every case's job done and released")
    finally:
        cluster.stop_all()
    runs, fired = cluster.runs(), cluster.faults_fired()
    results = {}
    for case, name in queues.items():
        queue, job_id = cluster.queue(name), f"job-{case.name}"
        own = [run for run in runs if run.id == job_id]
        results[case] = Result(
            fired=sum(1 for f in fired if f["pid"] == first[case].pid),
            starts=len(own),
            stats=queue.stats(),
            job=queue.get_job(job_id),
            left=checker.left_behind(queue.client, queue.keys),
            live_overlaps=len(checker.overlaps(own)[0]),
            logs=first[case].output() + second.output(),
        )
    return results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("crash-steps"))
    began = time.monotonic()
    try:
        outcome = run_all(cluster)
    finally:
        cluster.close()
    checker.report(
        f"2 crash at every step ({len(CASES)} cases at once, one queue and worker each)",
        wall_seconds=round(time.monotonic() - began, 1),
        worker_processes=len(cluster.procs),
        **{
            case.name: f"fault fired {r.fired if case.plan else '-'}, starts {r.starts}, "
            f"processed {r.stats['processed_total']}, left behind {sum(map(len, r.left.values()))}"
            f", live overlaps {r.live_overlaps}"
            for case, r in outcome.items()
        },
    )
    return outcome


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_crash_at_step_ends_with_the_job_done_once_and_its_id_released(results, case):
    result = results[case]
    if case.plan:
        assert result.fired == 1, "the fault was never reached"
    assert result.stats["processed_total"] == 1, result.logs
    assert result.stats["failed_total"] == 0, result.logs
    assert result.job is None
    assert result.left == {}
    assert result.live_overlaps == 0
    states = ("queued", "processing", "jammed", "scheduled", "failed")
    assert {k: v for k, v in result.stats.items() if k in states} == {
        "queued": 0,
        "processing": 0,
        "jammed": 0,
        "scheduled": 0,
        "failed": 0,
    }
