"""Scenario 10: rerun coalescing under load. While one run of an id is held, four producer
processes send 1,000 ``if_processing="rerun"`` adds of it between them. They must collapse into
exactly one more run, carrying the newest payload: the last add Redis executed, which is the
last add of one of the producers."""

from __future__ import annotations

import json

from . import checker
from .cluster import Cluster

PRODUCERS, ADDS = 4, 250


def test_1000_rerun_adds_during_a_run_give_one_more_run_with_the_newest_payload(
    cluster: Cluster,
):
    queue = cluster.queue("faults")
    release, go = cluster.root / "release", cluster.root / "go"
    queue.add_job("coalesce", {"hold": str(release), "tag": "original"})
    cluster.worker("faults")
    cluster.wait_for(cluster.runs, 60, "the original run started")
    outs = [cluster.root / f"rerunner{k}.json" for k in range(PRODUCERS)]
    producers = [
        cluster.producer(
            out.stem,
            *("--out", str(out), "--start", str(go), "--id", "coalesce"),
            *("--adds", str(ADDS), "--if-processing", "rerun"),
        )
        for out in outs
    ]
    cluster.wait_for(
        lambda: all(out.with_suffix(".json.ready").exists() for out in outs), 60, "ready"
    )
    go.touch()
    for producer in producers:
        assert producer.wait(120) == 0, producer.output()
    pending = queue.client.hget(queue.keys.rerun, "coalesce")
    newest = json.loads(pending.split("|", 1)[1])["payload"]["tag"]
    still_running = queue.get_job("coalesce").state
    release.touch()
    cluster.wait_for(
        lambda: queue.stats()["processed_total"] == 2 and queue.get_job("coalesce") is None,
        30,
        "the original run and one rerun done",
    )
    cluster.stop_all()

    summaries = [json.loads(out.read_text()) for out in outs]
    runs = cluster.runs()
    checker.report(
        f"10 rerun coalescing ({PRODUCERS} x {ADDS} rerun adds during one run)",
        adds=sum(s["adds"] for s in summaries),
        adds_that_queued_a_new_job=sum(len(s["accepted"]) for s in summaries),
        state_while_adding=still_running,
        runs=len(runs),
        tags_run=[run.tag for run in runs],
        newest_payload_pending=newest,
        errors=sum(len(s["errors"]) for s in summaries),
    )
    assert still_running == "processing"
    assert not any(s["accepted"] for s in summaries)
    assert [run.tag for run in runs] == ["original", newest]
    assert newest.endswith(f"-1-{ADDS - 1}")  # the last add of one of the producers
    assert all(run.completed for run in runs)
    assert checker.count_left_behind(queue.client, queue.keys) == 0
