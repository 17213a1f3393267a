"""Hand-off: an add gives its job straight to a worker waiting for one, claimed as a claim
would, and nothing of the queue's guarantees changes (one run at a time, nothing lost)."""

import json
import time
from dataclasses import replace

import pytest
import redis

from django_convoy import get_queue
from django_convoy.queue import Queue
from django_convoy.store.keys import inbox_key
from django_convoy.worker import HAND_OFF_WAIT_MS, Worker
from tests.helpers import ThreadedWorker, claims_of, hand_off_request, test_log, wait_until
from tests.jobs import tasks

WAIT_MS = 5000


@pytest.fixture
def fast():
    return get_queue("fast")  # LEASE 1 s


def wait_for_a_job(queue, worker_id: str, wait_ms: int = WAIT_MS, slots: int = 1) -> None:
    """Claim nothing (the queue is empty) and ask to be handed the next ``slots`` jobs."""
    batch = queue.claim(slots, worker_id, wait_ms=wait_ms)
    assert (batch.runs, batch.waiting) == ([], True)


def test_a_claim_that_finds_nothing_asks_to_be_handed_the_next_job(fast, redis_client):
    wait_for_a_job(fast, "w")
    deadline, slots = hand_off_request(fast, "w")
    assert (time.time() < deadline < time.time() + WAIT_MS / 1000 + 1, slots) == (True, 1)
    added = fast.add_job("a", {"p": 1})
    assert (added.added, added.state) == (True, "processing")
    job = fast.get_job("a")
    assert (job.state, job.worker, job.attempts, job.payload) == ("processing", "w", 1, {"p": 1})
    assert 0 < redis_client.pttl(inbox_key(fast.keys, "w")) <= fast.config.lease * 1000
    ((message,),) = [redis_client.lrange(inbox_key(fast.keys, "w"), 0, -1)]
    handed = fast.handed_run(message)
    assert [handed.id, handed.body, handed.attempt, handed.token] == json.loads(message)
    assert (handed.id, handed.attempt) == ("a", 1)
    # Its one free slot is used up; no wake token for the job: the worker's inbox woke it.
    assert hand_off_request(fast, "w") is None
    assert redis_client.llen(fast.keys.wake) == 0
    assert fast.add_job("b").state == "queued"
    assert redis_client.llen(fast.keys.wake) == 1
    assert fast.ack([("a", handed.token)]) == [1]
    assert fast.get_job("a") is None


def test_a_worker_is_handed_as_many_jobs_as_it_has_free_slots(fast, redis_client):
    wait_for_a_job(fast, "w", slots=2)
    assert [fast.add_job(i).state for i in "abc"] == ["processing", "processing", "queued"]
    assert hand_off_request(fast, "w") is None
    batch = fast.claim(2, "w", wait_ms=WAIT_MS)  # the claim loop's next claim: both runs
    assert ([job.id for job in batch.runs], batch.waiting) == (["a", "b"], False)
    assert fast.get_job("c").state == "queued"


def test_a_claim_renews_the_request_for_the_room_it_leaves(fast, redis_client):
    wait_for_a_job(fast, "w", slots=3)
    assert fast.add_job("a").state == "processing"
    assert hand_off_request(fast, "w")[1] == 2
    # The claim loop's next claim, with the 2 slots "a" left free: "a", and a request for 1.
    batch = fast.claim(2, "w", wait_ms=WAIT_MS)
    assert ([job.id for job in batch.runs], batch.waiting) == (["a"], True)
    assert hand_off_request(fast, "w")[1] == 1
    fast.add_job("b")
    assert [job.id for job in fast.claim(3, "w", wait_ms=WAIT_MS).runs] == ["b"]
    assert hand_off_request(fast, "w")[1] == 2


def test_a_claim_returns_the_runs_handed_to_it_first_within_max_jobs(fast, redis_client):
    wait_for_a_job(fast, "w")
    fast.add_jobs(["a", "b", "c"])
    batch = fast.claim(2, "w")
    assert [(job.id, job.attempt) for job in batch.runs] == [("a", 1), ("b", 1)]
    assert not batch.waiting
    assert not redis_client.exists(inbox_key(fast.keys, "w"))
    assert fast.get_job("c").state == "queued"
    # A claim that wants none still takes what was handed to it: those runs are its already.
    fast.claim(5, "other")  # takes "c": the queue is empty again
    wait_for_a_job(fast, "w")
    fast.add_job("d")
    assert [job.id for job in fast.claim(0, "w").runs] == ["d"]


def test_a_batch_hands_over_its_first_new_job_and_queues_the_rest_in_order(fast, redis_client):
    fast.add_job("known")
    fast.claim(1, "busy")
    wait_for_a_job(fast, "w")
    results = fast.add_jobs(["known", "a", "b", "c"])
    assert [(r.id, r.added, r.state) for r in results] == [
        ("known", False, "processing"),
        ("a", True, "processing"),
        ("b", True, "queued"),
        ("c", True, "queued"),
    ]
    assert fast.get_job("a").worker == "w"
    assert redis_client.llen(fast.keys.wake) == 1
    assert [job.id for job in fast.claim(5, "v").runs] == ["b", "c"]


def test_nothing_is_handed_over_while_paused_behind_waiting_jobs_or_later(fast, redis_client):
    wait_for_a_job(fast, "w")
    assert fast.add_job("later", delay=60).state == "scheduled"
    fast.pause()
    assert fast.add_job("paused").state == "queued"
    fast.resume()
    assert fast.add_job("behind").state == "queued"  # "paused" waits ahead of it
    assert hand_off_request(fast, "w") is not None  # the request still stands
    assert [job.id for job in fast.claim(5, "w").runs] == ["paused", "behind"]


def test_a_paused_queue_takes_no_request(fast):
    fast.pause()
    batch = fast.claim(2, "w", wait_ms=WAIT_MS)
    assert (batch.paused, batch.waiting) == (True, False)


def test_a_lapsed_request_is_handed_nothing(fast, redis_client):
    wait_for_a_job(fast, "w", wait_ms=1)
    time.sleep(0.01)
    assert fast.add_job("a").state == "queued"
    assert not redis_client.exists(fast.keys.idle)  # lapsed requests are swept


def test_a_failed_job_added_again_is_handed_over_with_its_failure_cleared(fast, redis_client):
    fast.add_job("f")
    (run,) = fast.claim(1, "w").runs
    assert fast.fail(run, {"type": "E", "message": "no"}, final=True) == "failed"
    wait_for_a_job(fast, "w")
    assert fast.add_job("f").state == "processing"
    job = fast.get_job("f")
    assert (job.state, job.attempts, job.last_error) == ("processing", 1, None)
    assert redis_client.zscore(fast.keys.failed, "f") is None


def test_a_worker_that_died_waiting_loses_nothing(fast, redis_client):
    wait_for_a_job(fast, "ghost")
    assert fast.add_job("a").state == "processing"
    for job_id, deadline in redis_client.zrange(fast.keys.processing, 0, -1, withscores=True):
        redis_client.zadd(fast.keys.processing, {job_id: deadline - 5000})
    (recovered,) = fast.jam_guard()
    assert (recovered.id, recovered.action, recovered.worker) == ("a", "requeued", "ghost")
    (again,) = fast.claim(1, "w2").runs
    assert (again.id, again.attempt) == ("a", 2)
    # Back from the dead, the ghost's claim does not return the run it was handed: it is w2's.
    assert fast.claim(5, "ghost").runs == []


def test_a_corrupt_inbox_refuses_the_add_and_the_claim_and_writes_nothing(fast, redis_client):
    wait_for_a_job(fast, "w")
    redis_client.set(inbox_key(fast.keys, "w"), "junk")
    with pytest.raises(redis.ResponseError, match="inbox:w is a string, not a list"):
        fast.add_job("a")
    assert fast.get_job("a") is None
    assert hand_off_request(fast, "w") is not None
    with pytest.raises(redis.ResponseError, match="inbox:w is not a list"):
        fast.claim(1, "w")
    redis_client.delete(inbox_key(fast.keys, "w"))
    assert fast.add_job("a").state == "processing"


def test_an_idle_worker_runs_a_new_job_without_claiming_it(monkeypatch, redis_client):
    default = get_queue("default")
    claimed = claims_of(monkeypatch)
    with ThreadedWorker("default", concurrency=2) as worker:
        for n in range(3):
            wait_until(lambda: hand_off_request(default, worker.id))
            result = tasks.record.enqueue(f"h{n}")
            assert (result.added, result.state) == (True, "processing")
            wait_until(lambda n=n: f"end rec-h{n}" in " ".join(test_log()))
        wait_until(lambda: default.stats()["processed_total"] == 3)
    assert not {"rec-h0", "rec-h1", "rec-h2"} & set(claimed)
    assert worker.processed == 3
    assert hand_off_request(default, worker.id) is None  # withdrawn at stop


def test_a_stopping_worker_hands_back_a_run_handed_to_it_meanwhile(redis_client):
    default = get_queue("default")
    worker = Worker(["default"])
    assert default.claim(1, worker.id, wait_ms=WAIT_MS).waiting
    assert default.add_job("late").state == "processing"
    worker.claimer.withdraw()
    job = default.get_job("late")
    assert (job.state, job.worker, job.attempts) == ("queued", None, 0)  # it never started
    assert hand_off_request(default, worker.id) is None
    assert not redis_client.exists(inbox_key(default.keys, worker.id))


@pytest.mark.parametrize(
    ("options", "asks"),
    [({}, True), ({"burst": True}, False), ({"max_jobs": 10}, False)],
    ids=["serving", "burst", "max-jobs"],
)
def test_only_workers_that_block_and_need_no_exact_count_ask(options, asks):
    assert Worker(["default"], **options).claimer.wait_ms() == (HAND_OFF_WAIT_MS if asks else 0)


def test_a_handed_run_gets_the_lease_of_its_worker_not_of_the_adder(fast, redis_client):
    wait_for_a_job(fast, "w")  # "fast": LEASE 1 s, renewed by the worker every 1/3 s
    adder = Queue(replace(fast.config, lease=600.0), fast.key_prefix, fast.client)
    adder.add_job("a")
    (seconds, micros) = redis_client.time()
    lease_left_ms = redis_client.zscore(fast.keys.processing, "a") - (
        seconds * 1000 + micros / 1000
    )
    assert 0 < lease_left_ms <= 1000


def test_a_run_handed_to_a_stopping_worker_goes_back_unstarted(redis_client):
    default = get_queue("default")
    worker = Worker(["default"])
    assert default.claim(1, worker.id, wait_ms=WAIT_MS).waiting
    default.add_job("late")
    message = redis_client.lpop(inbox_key(default.keys, worker.id))
    worker.request_stop()
    worker.claimer._take_handed(default, message)  # what its BLPOP popped as the signal came
    job = default.get_job("late")
    assert (job.state, job.attempts) == ("queued", 0)
    assert worker.state.busy["default"] == 0
    assert [run.attempt for run in default.claim(1, "next").runs] == [1]


def test_orphans_released_take_their_inbox_entries_with_them(fast, redis_client):
    wait_for_a_job(fast, "w")
    fast.add_job("a")
    assert fast.release_orphans("w", []) == ["a"]
    assert not redis_client.exists(inbox_key(fast.keys, "w"))


def test_an_inbox_lives_no_longer_than_its_first_runs_lease(fast, redis_client):
    wait_for_a_job(fast, "w", slots=2)
    fast.add_job("a")
    first = redis_client.pttl(inbox_key(fast.keys, "w"))
    time.sleep(0.05)
    fast.add_job("b")
    assert 0 < redis_client.pttl(inbox_key(fast.keys, "w")) < first


def test_a_mangled_request_is_dropped_not_obeyed(fast, redis_client):
    redis_client.zadd(fast.keys.idle, {"not-a-request": 9e15})
    assert fast.add_job("a").state == "queued"
    assert redis_client.zcard(fast.keys.idle) == 0
