"""The queue's guarantees, each against the suite's real redis-server."""

import multiprocessing
import threading
import time
from datetime import timedelta

import pytest

from django_convoy import (
    InvalidJob,
    JobNotFound,
    PayloadTooLarge,
    RedisFull,
    RedisUnavailable,
    UnknownQueue,
    get_queue,
)
from django_convoy.conf import QueueConfig
from django_convoy.queue import Queue


@pytest.fixture
def queue() -> Queue:
    return get_queue("default")


def test_int_id_is_normalised_to_str(queue):
    result = queue.add_job(1)
    assert (result.id, result.added, result.state) == ("1", True, "queued")
    assert queue.get_job("1").id == "1"


def test_second_add_of_queued_id_reports_queued(queue):
    queue.add_job("truck-7")
    again = queue.add_job("truck-7", payload={"new": True})
    assert (again.added, again.state) == (False, "queued")
    assert queue.get_job("truck-7").payload is None  # the first add's payload stays
    assert queue.stats()["queued"] == 1


def test_add_jobs_returns_results_in_order_in_one_call(queue, redis_client):
    queue.add_job("b")
    before = redis_client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    results = queue.add_jobs(["a", "b", ("c", {"x": 1})])
    after = redis_client.info("commandstats")["cmdstat_evalsha"]["calls"]
    assert [(r.id, r.added, r.state) for r in results] == [
        ("a", True, "queued"),
        ("b", False, "queued"),
        ("c", True, "queued"),
    ]
    assert queue.get_job("c").payload == {"x": 1}
    assert after - before == 1


def _add_many(ids: list[str], barrier) -> int:
    import django

    django.setup()
    from django_convoy import get_queue

    barrier.wait()
    return sum(r.added for r in get_queue("default").add_jobs(ids))


def test_concurrent_producers_leave_exactly_one_job_per_id(queue):
    ids = [f"id-{n}" for n in range(200)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(4)
    with ctx.Pool(4) as pool:
        added = pool.starmap(_add_many, [(ids, barrier)] * 4)
    assert sum(added) == 200
    assert queue.stats()["queued"] == 200


def test_concurrent_threads_adding_one_id_add_it_once(queue):
    results = []
    start = threading.Barrier(8)

    def add():
        start.wait()
        results.extend(queue.add_job("same").added for _ in range(50))

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert queue.stats()["queued"] == 1


@pytest.mark.parametrize(
    "bad_id, message",
    [
        ("", "1 to 1024 bytes"),
        ("x" * 1025, "1 to 1024 bytes"),
        ("é" * 513, "1 to 1024 bytes"),
        (True, "not bool"),
        (1.5, "not float"),
        (None, "not NoneType"),
        (["a"], "not list"),
        ("\ud800", "not valid UTF-8"),
    ],
)
def test_bad_id_is_refused_and_nothing_is_written(queue, redis_client, bad_id, message):
    with pytest.raises(InvalidJob, match=message):
        queue.add_job(bad_id)
    assert redis_client.dbsize() == 0


def test_longest_valid_id_is_accepted(queue):
    assert queue.add_job("x" * 1024).added


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"when": object()}, "not JSON-serialisable"),
        (float("nan"), "not JSON-serialisable"),
        ({1, 2}, "not JSON-serialisable"),
        ({"text": "lone \ud800 surrogate"}, "not JSON-serialisable"),
    ],
)
def test_non_json_payload_is_refused(queue, redis_client, payload, message):
    with pytest.raises(InvalidJob, match=message):
        queue.add_job("a", payload=payload)
    assert redis_client.dbsize() == 0


def test_oversized_payload_is_refused_naming_the_limit(redis_client):
    tiny = get_queue("tiny")
    with pytest.raises(PayloadTooLarge, match=r"tiny.*at most 64 \(MAX_PAYLOAD_BYTES\)"):
        tiny.add_job("a", payload="x" * 100)
    assert redis_client.dbsize() == 0


def test_one_bad_entry_in_a_batch_writes_nothing(queue, redis_client):
    with pytest.raises(InvalidJob):
        queue.add_jobs(["good", ("bad", object())])
    with pytest.raises(InvalidJob):
        queue.add_jobs(["good", ""])
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"if_processing": "replace"}, "if_processing must be one of"),
        ({"delay": -1}, "delay must be a number of seconds >= 0"),
        ({"delay": "5"}, "delay must be a number"),
        ({"delay": 1e15}, r"at most 315360000 \(ten years\)"),  # a timestamp as a delay
        ({"delay": float("inf")}, "delay must be a number of seconds"),
        ({"delay": float("nan")}, "delay must be a number of seconds"),
        ({"delay": timedelta(seconds=-1)}, "delay must be a number of seconds"),
        ({"priority": 101}, "priority must be an int from -100 to 100"),
        ({"priority": 1.5}, "priority must be an int"),
    ],
)
def test_bad_option_is_refused(queue, redis_client, options, message):
    with pytest.raises(InvalidJob, match=message):
        queue.add_job("a", **options)
    assert redis_client.dbsize() == 0


def test_unknown_queue_error_lists_the_configured_queues():
    with pytest.raises(
        UnknownQueue, match=r"No queue 'nope' in CONVOY\['QUEUES'\]; configured queues: .*default"
    ):
        get_queue("nope")


def test_unreachable_redis_names_host_and_port_but_not_the_password():
    client = __import__("redis").Redis.from_url("redis://user:s3cret@127.0.0.1:1/0")
    queue = Queue(QueueConfig(name="default"), "convoytest", client)
    with pytest.raises(RedisUnavailable) as error:
        queue.add_job("a")
    assert "127.0.0.1:1" in str(error.value)
    assert "s3cret" not in str(error.value)


def test_an_add_to_a_full_redis_raises_redis_full_and_writes_nothing(queue, redis_client):
    redis_client.set("filler", "x" * 2_000_000)
    redis_client.config_set("maxmemory", redis_client.info("memory")["used_memory"] - 1_000_000)
    try:
        with pytest.raises(RedisFull, match=r"Redis at 127\.0\.0\.1:\d+ is full") as error:
            queue.add_jobs(["a", "b"])
        with pytest.raises(RedisFull):
            queue.pause()  # a plain command too
    finally:
        redis_client.config_set("maxmemory", 0)
    assert isinstance(error.value, RedisUnavailable)  # try again later, as when unreachable
    assert redis_client.keys("convoytest:*") == []


def test_all_keys_of_a_queue_share_its_hash_tag(queue, redis_client):
    queue.add_job("a", payload=1)
    queue.add_job("b", delay=60)
    job = queue.claim(1, "w").runs[0]
    queue.fail(job, {"type": "E", "message": "m"}, final=True)
    assert all("{default}" in key for key in redis_client.keys("*"))


def test_delayed_job_is_scheduled_and_not_claimed_before_due(queue):
    result = queue.add_job("later", delay=30)
    assert (result.added, result.state) == (True, "scheduled")
    job = queue.get_job("later")
    assert job.state == "scheduled"
    assert 29 <= (job.due_at - job.enqueued_at).total_seconds() <= 30.01
    assert queue.claim(10, "w").runs == []
    assert queue.claim(10, "w").next_due_ms is not None


def test_due_scheduled_job_is_promoted_by_a_claim(queue):
    queue.add_job("soon", delay=0.05)
    time.sleep(0.1)
    assert [job.id for job in queue.claim(1, "w").runs] == ["soon"]


def test_higher_priority_runs_first_and_equals_keep_fifo_order(queue):
    queue.add_job("low-1", priority=-5)
    queue.add_job("mid-1")
    queue.add_job("high", priority=10)
    queue.add_job("mid-2")
    queue.add_job("low-2", priority=-5)
    claimed = [job.id for job in queue.claim(5, "w").runs]
    assert claimed == ["high", "mid-1", "mid-2", "low-1", "low-2"]


def test_get_job_of_unknown_id_is_none(queue):
    assert queue.get_job("ghost") is None


def test_claim_moves_job_to_processing_with_a_lease_and_token(queue):
    queue.add_job("a", payload={"n": 1})
    (run,) = queue.claim(1, "worker-1").runs
    job = queue.get_job("a")
    assert (job.state, job.attempts, job.worker) == ("processing", 1, "worker-1")
    assert 9.9 <= (job.lease_deadline - job.started_at).total_seconds() <= 10.0
    assert run.attempt == 1 and run.token
    assert queue.add_job("a").state == "processing"
    assert queue.stats()["processing"] == 1


def test_ack_releases_the_id_so_it_can_be_queued_again(queue):
    queue.add_job("a")
    (run,) = queue.claim(1, "w").runs
    assert queue.ack([(run.id, run.token)]) == [1]
    assert queue.get_job("a") is None
    assert queue.add_job("a").added
    assert queue.stats()["processed_total"] == 1


def test_ack_or_fail_with_a_stale_token_is_refused(queue):
    queue.add_job("a")
    (run,) = queue.claim(1, "w").runs
    assert queue.ack([("a", "999999")]) == [0]
    stale = type(run)(run.queue, run.id, run.body, run.attempt, "999999")
    assert queue.fail(stale, {"type": "E", "message": "late"}) == "stale"
    assert queue.renew([("a", "999999")]) == [0]
    assert queue.get_job("a").state == "processing"


def test_final_failure_keeps_the_error_and_releases_the_id(queue):
    queue.add_job("a", payload=[1])
    (run,) = queue.claim(1, "w").runs
    error = {"type": "builtins.ValueError", "message": "bad", "traceback": "Traceback..."}
    assert queue.fail(run, error) == "failed"
    job = queue.get_job("a")
    ran_ms = job.last_error.pop("ran_ms")  # the run's duration, by Redis's clock
    assert (job.state, job.last_error, job.payload) == ("failed", error, [1])
    assert 0 <= ran_ms < 5000
    assert job.failed_at is not None
    assert queue.stats()["failed_total"] == 1
    again = queue.add_job("a", payload=[2])
    assert (again.added, again.state) == (True, "queued")
    fresh = queue.get_job("a")
    assert (fresh.last_error, fresh.attempts, fresh.payload) == (None, 0, [2])
    assert queue.stats()["failed"] == 0


def test_failure_with_attempts_left_is_retried_after_a_backoff():
    queue = get_queue("retrying")  # MAX_ATTEMPTS 3, RETRY_BACKOFF 0.05 s
    queue.add_job("a")
    (run,) = queue.claim(1, "w").runs
    assert queue.fail(run, {"type": "E", "message": "try again"}) == "retry"
    job = queue.get_job("a")
    assert job.state == "scheduled" and job.last_error["message"] == "try again"
    time.sleep(0.06)
    (second,) = queue.claim(1, "w").runs
    assert second.attempt == 2
    assert queue.fail(second, {"type": "E", "message": "again"}) == "retry"
    time.sleep(0.11)
    (third,) = queue.claim(1, "w").runs
    assert third.attempt == 3
    assert queue.fail(third, {"type": "E", "message": "last"}) == "failed"


def test_renewal_extends_the_lease(queue):
    queue.add_job("a")
    (run,) = queue.claim(1, "w").runs
    first = queue.get_job("a").lease_deadline
    time.sleep(0.02)
    assert queue.renew([("a", run.token)]) == [1]
    assert queue.get_job("a").lease_deadline > first


def test_rerun_adds_during_a_run_collapse_into_one_rerun_with_the_newest_payload(queue):
    queue.add_job("a", payload=0)
    (run,) = queue.claim(1, "w").runs
    for n in range(1, 6):
        result = queue.add_job("a", payload=n, if_processing="rerun")
        assert (result.added, result.state) == (False, "processing")
    assert queue.stats()["queued"] == 0
    assert queue.get_job("a").rerun_pending
    assert queue.ack([("a", run.token)]) == [2]
    job = queue.get_job("a")
    assert (job.state, job.payload, job.attempts) == ("queued", 5, 0)
    (rerun,) = queue.claim(1, "w").runs
    assert queue.ack([("a", rerun.token)]) == [1]
    assert queue.get_job("a") is None


def test_an_add_says_whether_it_asked_for_a_rerun(queue):
    """``rerun`` is the sign that ``if_processing="rerun"`` worked: a rerun is pending."""
    assert not queue.add_job("a", if_processing="rerun").rerun  # queued: nothing to rerun
    queue.claim(1, "w")
    assert queue.add_job("a", if_processing="rerun").rerun
    assert not queue.add_job("a").rerun  # "ignore": nothing asked
    assert not queue.add_job("b", if_processing="rerun").rerun


def test_a_delay_may_be_a_timedelta(queue):
    queue.add_job("a", delay=timedelta(seconds=30))
    job = queue.get_job("a")
    assert job.state == "scheduled"
    assert 29 <= (job.due_at - job.enqueued_at).total_seconds() <= 30.01


def test_a_due_time_in_exponent_notation_does_not_stop_a_claim(queue, redis_client):
    """Redis prints a score of 1e18 (a due time written before delays were bounded, or by
    hand) as "1e+18": the claim's reply must still parse, or the worker would stop."""
    redis_client.zadd(queue.keys.scheduled, {"far": 1e18})
    queue.add_job("now")
    batch = queue.claim(1, "w")
    assert [run.id for run in batch.runs] == ["now"]
    assert batch.next_due_ms == 10**18


def test_the_longest_delay_reads_back_as_a_due_time(queue):
    queue.add_job("far", delay=315360000)
    assert queue.get_job("far").due_at.year >= 2035


def test_add_of_processing_id_without_rerun_changes_nothing(queue):
    queue.add_job("a", payload=0)
    (run,) = queue.claim(1, "w").runs
    assert queue.add_job("a", payload=1).state == "processing"
    assert queue.ack([("a", run.token)]) == [1]
    assert queue.get_job("a") is None


def test_rerun_requested_before_a_final_failure_still_runs(queue):
    queue.add_job("a", payload=0)
    (run,) = queue.claim(1, "w").runs
    queue.add_job("a", payload=1, if_processing="rerun")
    assert queue.fail(run, {"type": "E", "message": "m"}) == "rerun"
    job = queue.get_job("a")
    assert (job.state, job.payload) == ("queued", 1)


def test_purge_removes_waiting_jobs_and_releases_their_ids(queue):
    queue.add_jobs(["a", "b", "c"])
    queue.add_job("later", delay=60)
    (running,) = queue.claim(1, "w").runs
    assert queue.purge() == 3
    stats = queue.stats()
    assert (stats["queued"], stats["scheduled"], stats["processing"]) == (0, 0, 1)
    assert queue.add_job("later").added
    assert queue.get_job(running.id).state == "processing"


def test_paused_queue_accepts_jobs_but_hands_none_out(queue):
    queue.pause()
    assert queue.is_paused()
    assert queue.add_job("a").added
    batch = queue.claim(5, "w")
    assert batch.paused and batch.runs == []
    queue.resume()
    assert not queue.is_paused()
    assert [job.id for job in queue.claim(5, "w").runs] == ["a"]


def test_delete_job_refuses_a_processing_job(queue):

    queue.add_jobs(["a", "b"])
    queue.claim(1, "w")
    with pytest.raises(JobNotFound, match="'a'.*it is processing"):
        queue.delete_job("a")
    assert queue.delete_job("b") == "queued"
    with pytest.raises(JobNotFound, match="no job has that id"):
        queue.delete_job("b")


def test_requeue_failed_gives_a_fresh_run(queue):
    queue.add_jobs([("a", {"k": 1}), "b"])
    for run in queue.claim(2, "w").runs:
        queue.fail(run, {"type": "E", "message": "m"}, final=True)
    assert queue.requeue_failed(["a"]) == ["a"]
    job = queue.get_job("a")
    assert (job.state, job.payload, job.attempts) == ("queued", {"k": 1}, 0)
    assert queue.requeue_failed() == ["b"]
    assert queue.stats()["failed"] == 0
    assert queue.requeue_failed() == []  # none failed: nothing to do, no error


def test_requeue_failed_of_a_job_that_is_not_failed_raises_naming_it(queue):
    queue.add_job("a")
    with pytest.raises(JobNotFound, match=r"^Job 'a' of queue 'default' is not failed: it is qu"):
        queue.requeue_failed(["a"])
    with pytest.raises(JobNotFound, match="'ghost' of queue 'default' is not failed: no job has"):
        queue.requeue_failed(["ghost"])


def test_requeue_failed_queues_the_failed_ids_then_names_the_others(queue):
    queue.add_jobs(["a", "b"])
    for run in queue.claim(2, "w").runs:
        queue.fail(run, {"type": "E", "message": "m"}, final=True)
    queue.add_job("c")
    with pytest.raises(JobNotFound) as raised:
        queue.requeue_failed(["a", "c", "ghost", "b", "a"])
    assert str(raised.value) == (
        "2 of the jobs to requeue in queue 'default' are not failed ('c': it is queued; "
        "'ghost': no job has that id); the other 2 were queued."
    )
    assert raised.value.requeued == ["a", "b"]
    assert queue.stats()["queued"] == 3


def test_failed_records_older_than_failed_ttl_are_dropped(settings):
    convoy = {
        **settings.CONVOY,
        "QUEUES": {**settings.CONVOY["QUEUES"], "brief": {"FAILED_TTL": 0.05}},
    }
    settings.CONVOY = convoy
    queue = get_queue("brief")
    queue.add_jobs(["old", "new"])
    old, new = queue.claim(2, "w").runs
    queue.fail(old, {"type": "E", "message": "m"})
    time.sleep(0.1)
    queue.fail(new, {"type": "E", "message": "m"})
    assert queue.get_job("old") is None  # dropped with its body, meta and error
    assert queue.get_job("new").state == "failed"
    assert queue.add_job("old").added


def test_errors_go_to_a_per_day_error_log_with_a_ttl(queue, redis_client):
    queue.add_job("a")
    (run,) = queue.claim(1, "w").runs
    queue.fail(run, {"type": "E", "message": "logged", "id": "a"})
    (key,) = redis_client.keys("convoytest:{default}:errorlog:*")
    assert key.endswith(time.strftime("%Y-%m-%d", time.gmtime()))
    assert '"message": "logged"' in redis_client.lindex(key, 0)
    assert 6 * 86400 < redis_client.ttl(key) <= 7 * 86400


def test_retry_delay_doubles_per_attempt_with_jitter_and_is_capped_at_an_hour():
    from django_convoy.retries import retry_delay

    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        delays = [retry_delay(attempt, 2.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered, so retries of many jobs do not line up
    assert all(1800 <= retry_delay(60, 1.0) <= 3600 for _ in range(50))


def test_ack_and_claim_ends_runs_and_claims_the_next_in_one_call(queue):
    queue.add_jobs(["a", "b", "c"])
    first = queue.claim(2, "w").runs
    stale = ("c", "999999")
    acks, batch = queue.ack_and_claim([(r.id, r.token) for r in first] + [stale], 3, "w")
    assert acks == [1, 1, 0]  # a refused ack does not stop the claim
    assert [(r.id, r.attempt) for r in batch.runs] == [("c", 1)]
    assert queue.get_job("a") is None and queue.get_job("c").state == "processing"
    acks, batch = queue.ack_and_claim([("c", batch.runs[0].token)], 1, "w")
    assert (acks, batch.runs, queue.stats()["processed_total"]) == ([1], [], 3)


def test_ack_and_claim_of_a_paused_queue_acks_and_claims_nothing(queue):
    queue.add_jobs(["a", "b"])
    (run,) = queue.claim(1, "w").runs
    queue.pause()
    acks, batch = queue.ack_and_claim([(run.id, run.token)], 1, "w")
    assert (acks, batch.runs, batch.paused) == ([1], [], True)
    assert queue.get_job("b").state == "queued"


def test_release_orphans_queues_again_only_this_workers_runs_it_does_not_know(queue):
    queue.add_jobs(["known", "orphan", "other"])
    known, orphan = queue.claim(2, "w1").runs
    queue.claim(1, "w2")
    assert queue.release_orphans("w1", [known.token]) == [orphan.id]
    states = {i: queue.get_job(i).state for i in ("known", "orphan", "other")}
    assert states == {"known": "processing", "orphan": "queued", "other": "processing"}
    assert queue.get_job("orphan").jams == 0
    assert queue.release_orphans("w1", [known.token]) == []
