"""Jammed jobs (lease expired) are recovered exactly once, never lost and never looping."""

import threading
import time

import pytest

from django_convoy import get_queue
from tests.helpers import wait_until


@pytest.fixture
def fast():
    return get_queue("fast")  # LEASE 1 s, MAX_JAMS 3


def expire_leases(queue, redis_client):
    """Move every lease deadline into the past, as if a second had gone by without renewals."""
    for job_id, deadline in redis_client.zrange(queue.keys.processing, 0, -1, withscores=True):
        redis_client.zadd(queue.keys.processing, {job_id: deadline - 5000})


def test_expired_lease_counts_as_jammed_not_processing(fast, redis_client):
    fast.add_jobs(["a", "b"])
    fast.claim(2, "w")
    redis_client.zadd(fast.keys.processing, {"a": 1})
    stats = fast.stats()
    assert (stats["processing"], stats["jammed"]) == (1, 1)
    assert fast.get_job("a").state == "jammed"
    assert fast.add_job("a").state == "jammed"


def test_jam_guard_requeues_a_jammed_job_keeping_its_attempts(fast, redis_client):
    fast.add_job("a", payload={"p": 1})
    (run,) = fast.claim(1, "dead-worker").runs
    expire_leases(fast, redis_client)
    (recovered,) = fast.jam_guard()
    assert (recovered.id, recovered.action, recovered.worker) == ("a", "requeued", "dead-worker")
    assert recovered.worker_gone and "gone" in recovered.reason
    job = fast.get_job("a")
    assert (job.state, job.attempts, job.jams, job.payload) == ("queued", 1, 1, {"p": 1})
    assert fast.ack([("a", run.token)]) == [0]  # the dead run's late ack is refused
    (again,) = fast.claim(1, "w2").runs
    assert again.attempt == 2


def test_job_jammed_more_than_max_jams_times_fails(fast, redis_client):
    fast.add_job("poison")
    starts = 0
    while True:
        batch = fast.claim(1, "w").runs
        if not batch:
            break
        starts += 1
        expire_leases(fast, redis_client)
        fast.jam_guard()
    assert starts == fast.config.max_jams + 1
    job = fast.get_job("poison")
    assert job.state == "failed"
    assert job.last_error["type"] == "django_convoy.exceptions.JobJammed"
    assert "MAX_JAMS is 3" in job.last_error["message"]


def test_drop_clears_jammed_jobs_and_releases_their_ids(fast, redis_client):
    fast.add_jobs(["a", "b"])
    fast.claim(2, "w")
    expire_leases(fast, redis_client)
    dropped = fast.jam_guard(drop=True)
    assert sorted((j.id, j.action) for j in dropped) == [("a", "dropped"), ("b", "dropped")]
    assert fast.get_job("a") is None
    assert fast.add_job("a").added


def test_live_lease_is_left_alone(fast):
    fast.add_job("a")
    fast.claim(1, "w")
    assert fast.jam_guard() == []
    assert fast.get_job("a").state == "processing"


def test_worker_alive_but_not_renewing_is_reported_as_lease_expired(fast, redis_client):
    from django_convoy.store.keys import worker_key

    fast.add_job("a")
    fast.claim(1, "stalled")
    now = redis_client.time()[0] * 1000
    redis_client.hset(worker_key(fast.key_prefix, "stalled"), mapping={"beat": now, "every": 60000})
    expire_leases(fast, redis_client)
    (recovered,) = fast.jam_guard()
    assert not recovered.worker_gone and "lease expired" in recovered.reason


def test_many_jam_guards_at_once_recover_each_job_exactly_once(fast, redis_client):
    ids = [f"j{n}" for n in range(200)]
    fast.add_jobs(ids)
    fast.claim(200, "dead")
    expire_leases(fast, redis_client)
    recovered: list = []
    start = threading.Barrier(4)

    def guard():
        queue = get_queue("fast")
        start.wait()
        recovered.extend(queue.jam_guard(limit=7))

    threads = [threading.Thread(target=guard) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(job.id for job in recovered) == sorted(ids)
    assert fast.stats()["queued"] == 200


def test_dry_run_listing_changes_nothing(fast, redis_client):
    fast.add_job("a")
    fast.claim(1, "w")
    expire_leases(fast, redis_client)
    assert [job.id for job in fast.jammed_jobs()] == ["a"]
    assert fast.get_job("a").state == "jammed"


def test_renewal_after_expiry_but_before_recovery_keeps_the_job(fast, redis_client):
    fast.add_job("a")
    (run,) = fast.claim(1, "w").runs
    expire_leases(fast, redis_client)
    assert fast.renew([("a", run.token)]) == [1]
    assert fast.jam_guard() == []
    time.sleep(0.01)
    assert fast.get_job("a").state == "processing"


def test_still_owns_is_false_once_the_lease_passed_though_no_jam_guard_took_the_job(
    fast, redis_client
):
    fast.add_job("a")
    (run,) = fast.claim(1, "w").runs
    assert fast.still_owns("a", run.token)
    expire_leases(fast, redis_client)
    assert not fast.still_owns("a", run.token)  # jammed: a jam guard may take it any moment
    assert fast.renew([("a", run.token)]) == [1]  # renewed before one did: held again
    assert fast.still_owns("a", run.token)
    assert not fast.still_owns("a", str(int(run.token) + 1))


def test_after_a_gap_no_jam_guard_recovers_anything_for_a_lease_while_live_workers_renew(
    fast, redis_client
):
    """A guard that could not reach Redis a moment ago says so: every guard then holds its
    recoveries for one LEASE (1 s here), and a live worker's renewal keeps its run."""
    fast.add_jobs(["live", "dead"])
    runs = {run.id: run for run in fast.claim(2, "w").runs}
    expire_leases(fast, redis_client)  # the outage: every lease passed
    first = fast.jam_guard_round(resumed=True)
    assert first.recovered == [] and first.held_until is not None
    assert fast.jam_guard() == []  # another guard, which saw no gap: held all the same
    live = [("live", runs["live"].token)]
    assert fast.renew(live) == [1]  # the live worker is back, and renews as it goes on
    wait_until(lambda: fast.renew(live) and fast.jam_guard(), timeout=3)  # a lease later
    assert fast.get_job("live").state == "processing"
    assert fast.get_job("dead").state == "queued"  # its worker never came back


def test_a_redis_with_another_run_id_holds_recoveries_as_after_an_outage(fast, redis_client):
    """A restart (with its data kept) or a failover shows in Redis's run id."""
    fast.add_job("a")
    fast.claim(1, "w")
    expire_leases(fast, redis_client)
    assert fast.jam_guard_round().held_until is None  # the first guard notes the run id
    fast.add_job("b")
    fast.claim(1, "w")
    expire_leases(fast, redis_client)
    redis_client.hset(fast.keys.stats, "server", "0" * 40)  # as the server before a restart
    held = fast.jam_guard_round()
    assert held.recovered == [] and held.held_until is not None
