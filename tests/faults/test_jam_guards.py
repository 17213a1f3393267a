"""Scenario 9: four ``convoy_jamguard`` processes polling at once over 200 jobs that jam at the
same instant (their ghost worker's leases are moved to the past in one step): exactly 200
recoveries between them, each job queued once, with one jam and its attempt count kept."""

from __future__ import annotations

import re
from collections import Counter

from . import checker
from .cluster import Cluster

JOBS, GUARDS = 200, 4
RECOVERED = re.compile(r"^faults (\S+): requeued", re.MULTILINE)


def test_four_jam_guards_recover_200_jammed_jobs_exactly_once(cluster: Cluster):
    queue = cluster.queue("faults")
    ids = [f"jammed-{i}" for i in range(JOBS)]
    queue.add_jobs(ids)
    assert len(queue.claim(JOBS, "ghost-worker").runs) == JOBS
    guards = [cluster.jamguard("faults", name=f"jamguard{k}", interval=0.05) for k in range(GUARDS)]
    # Each guard has connected (it polls): then every lease ends at once.
    cluster.wait_for(
        lambda: len(queue.client.client_list()) > GUARDS, 60, "all four guards polling"
    )
    seconds, micros = queue.client.time()
    past = seconds * 1000 + micros // 1000 - 1
    queue.client.zadd(queue.keys.processing, dict.fromkeys(ids, past), xx=True)
    cluster.wait_for(lambda: queue.stats()["queued"] == JOBS, 30, "every jammed job queued again")
    cluster.wait_for(
        lambda: sum(len(RECOVERED.findall(g.output())) for g in guards) >= JOBS, 10, "reported"
    )
    cluster.stop_all()

    per_guard = [RECOVERED.findall(guard.output()) for guard in guards]
    recovered = Counter(job_id for found in per_guard for job_id in found)
    jobs = [queue.get_job(job_id) for job_id in ids]
    checker.report(
        f"9 {GUARDS} jam guards at once over {JOBS} jammed jobs",
        recoveries=sum(recovered.values()),
        distinct_ids_recovered=len(recovered),
        recovered_twice=sum(1 for n in recovered.values() if n > 1),
        split_between_guards=[len(found) for found in per_guard],
        queued=queue.stats()["queued"],
        jams_recorded=Counter(job.jams for job in jobs),
    )
    assert sum(recovered.values()) == JOBS and set(recovered) == set(ids)
    assert queue.stats()["queued"] == JOBS
    assert all((job.state, job.jams, job.attempts) == ("queued", 1, 1) for job in jobs), jobs
