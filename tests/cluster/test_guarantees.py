"""The core guarantees, on a Redis Cluster (queues on every primary) and behind Sentinel."""

import multiprocessing
import threading
import time

from django.conf import settings

from django_convoy import connection
from django_convoy.connection.cluster import is_cluster
from django_convoy.dashboard.statistics import get_statistics
from tests.cluster.producers import add_many
from tests.helpers import ThreadedWorker, wait_until


def test_queues_live_on_every_primary(cluster_world):
    primaries = {cluster_world.primary_of(name).port for name in cluster_world.queues}
    assert primaries == set(cluster_world.servers.primary_ports())
    assert len(primaries) == 3


def test_every_key_of_a_queue_is_on_its_primary(cluster_world):
    for name in cluster_world.queues:
        q = cluster_world.queue(name)
        q.add_job("a")
        q.add_job("b", delay=60)
        (run,) = q.claim(1, "w").runs
        q.fail(run, {"type": "E", "message": "m"}, final=True)
        with cluster_world.primary_of(name).client() as node:
            keys = node.keys("*")
        assert keys and all(f"{{{name}}}" in key for key in keys)


def test_concurrent_producers_leave_exactly_one_job_per_id(world):
    ids = [f"id-{n}" for n in range(100)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(3)
    with ctx.Pool(3) as pool:
        added = pool.starmap(add_many, [(settings.CONVOY, ids, barrier)] * 3)
    for name in world.queues:
        assert sum(counts[name] for counts in added) == 100
        assert world.queue(name).stats()["queued"] == 100


def test_threads_adding_one_id_add_it_once(world):
    results, start = [], threading.Barrier(6)

    def add(name):
        start.wait()
        results.extend((name, world.queue(name).add_job("same").added) for _ in range(30))

    threads = [threading.Thread(target=add, args=(name,)) for name in world.queues * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in world.queues:
        assert [added for queue, added in results if queue == name].count(True) == 1


def test_single_delegation_with_fencing_and_release(world):
    for name in world.queues:
        q = world.queue(name)
        q.add_job("a")
        (run,) = q.claim(5, "w1").runs
        assert q.claim(5, "w2").runs == []
        assert q.add_job("a").state == "processing"
        assert q.ack([("a", "999999")]) == [0]
        assert q.renew([("a", "999999")]) == [0]
        assert q.ack([("a", run.token)]) == [1]
        assert q.get_job("a") is None
        assert q.add_job("a").added  # released: it may be queued again


def test_jam_guard_recovers_each_jammed_job_exactly_once(world):
    for name in world.queues:
        world.queue(name).add_jobs([f"j{n}" for n in range(20)])
        assert len(world.queue(name).claim(20, "dead-worker").runs) == 20
    time.sleep(1.1)  # LEASE 1 s
    recovered, start = [], threading.Barrier(6)

    def guard(name):
        start.wait()
        recovered.extend((name, job.id) for job in world.queue(name).jam_guard())

    threads = [threading.Thread(target=guard, args=(name,)) for name in world.queues * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(recovered) == sorted((name, f"j{n}") for name in world.queues for n in range(20))
    for name in world.queues:
        assert world.queue(name).stats()["queued"] == 20


def test_rerun_adds_during_a_run_coalesce_into_one_rerun(world):
    for name in world.queues:
        q = world.queue(name)
        q.add_job("a", payload=0)
        (run,) = q.claim(1, "w").runs
        for n in range(1, 6):
            assert q.add_job("a", payload=n, if_processing="rerun").state == "processing"
        assert q.ack([("a", run.token)]) == [2]
        job = q.get_job("a")
        assert (job.state, job.payload) == ("queued", 5)


def test_pause_and_resume_run_on_the_queues_slot(world):
    for name in world.queues:
        q = world.queue(name)
        q.pause()
        q.add_job("a")
        assert q.claim(1, "w").paused
        q.resume()
        assert [job.id for job in q.claim(1, "w").runs] == ["a"]


def test_a_worker_serves_queues_on_every_primary_and_times_out_overlong_runs(world):
    for name in world.queues:
        world.queue(name).add_jobs([f"quick-{n}" for n in range(30)])
        world.queue(name).add_job("slow", payload={"sleep": 1.5})  # JOB_TIMEOUT 1 s
    with ThreadedWorker(*world.queues) as worker:
        wait_until(
            lambda: all(
                world.queue(name).stats()["processed_total"] == 30
                and world.queue(name).stats()["failed_total"] == 1
                for name in world.queues
            ),
            timeout=20,
        )
        assert (worker.claimer.waiters is not None) == is_cluster(connection.get_client())
    for name in world.queues:
        slow = world.queue(name).get_job("slow")
        assert (slow.state, slow.last_error["reason"]) == ("failed", "timeout")
    assert not world.runs.overlapping()


def test_an_idle_worker_wakes_for_a_job_on_any_primary_within_milliseconds(world):
    latencies = {}
    with ThreadedWorker(*world.queues):
        time.sleep(0.3)  # idle: blocked on every queue's wake list
        for name in world.queues:
            for n in range(5):
                before = len(world.runs.runs)
                added = time.monotonic()
                world.queue(name).add_job(f"wake-{n}")
                wait_until(lambda b=before: len(world.runs.runs) > b, timeout=5, interval=0.001)
                latencies.setdefault(name, []).append(world.runs.runs[-1][3] - added)
                time.sleep(0.05)
    # Woken by the add's token, not found by the 1 s idle poll (a median near 0.5 s).
    every = sorted(value for values in latencies.values() for value in values)
    print(f"\n{world.kind}: add to start {1000 * every[len(every) // 2]:.1f} ms median")
    assert every[len(every) // 2] < 0.1, latencies


def test_no_queue_starves_while_another_is_flooded(world):
    flooded, *others = world.queues
    # 400 jobs of 10 ms, two at a time: about 2 s of work, whatever the worker's own speed.
    world.queue(flooded).add_jobs([(f"flood-{n}", {"sleep": 0.01}) for n in range(400)])
    with ThreadedWorker(*world.queues, concurrency=2):
        wait_until(lambda: world.queue(flooded).stats()["processed_total"] >= 10)
        for name in others:
            world.queue(name).add_job("small")
        wait_until(
            lambda: all(world.queue(name).stats()["processed_total"] == 1 for name in others),
            timeout=5,
        )
        assert world.queue(flooded).stats()["queued"] > 0  # still draining the flood


def test_statistics_gather_every_queue_from_every_node(world):
    for n, name in enumerate(world.queues):
        world.queue(name).add_jobs([f"s{i}" for i in range(n + 1)])
    with ThreadedWorker(world.queues[0], max_jobs=1) as worker:
        wait_until(lambda: worker.processed == 1)
    stats = get_statistics()
    by_name = {queue.name: queue for queue in stats.queues}
    assert [by_name[name].queued for name in world.queues] == [0, 2, 3]
    assert by_name[world.queues[0]].processed_total == 1
    assert stats.workers == []  # the worker deregistered as it stopped
