"""The worker, run in-process: tasks, failures, timeouts, shutdown, heartbeats."""

import hashlib
import logging
import threading
import time

import pytest

from django_convoy import current_job, get_queue
from django_convoy.exceptions import InvalidJob, RedisUnavailable
from django_convoy.queue import Queue
from django_convoy.store import QueueStore
from django_convoy.store.keys import worker_key, workers_registry_key
from django_convoy.worker import Worker
from django_convoy.worker.backoff import Outages
from tests.helpers import ThreadedWorker, job_state, test_log, wait_until
from tests.jobs import tasks


def test_task_enqueue_uses_its_job_id_and_keeps_arguments_in_the_payload():
    result = tasks.record.enqueue("x", sleep=0)
    assert (result.id, result.added, result.state) == ("rec-x", True, "queued")
    job = get_queue("default").get_job("rec-x")
    assert job.task == "tests.jobs.tasks.record"
    assert job.payload == {"args": ["x"], "kwargs": {"sleep": 0}}
    assert not tasks.record.enqueue("x", sleep=1).added


def test_task_without_job_id_derives_one_from_its_arguments():
    first = tasks.add.enqueue(1, 2)
    assert first.id.startswith("tests.jobs.tasks.add:")
    assert not tasks.add.enqueue(1, 2).added
    assert tasks.add.enqueue(2, 1).id != first.id


def test_a_derived_id_does_not_depend_on_how_the_task_is_called():
    """The arguments are bound to the signature first: one call, however it is spelled."""
    first = tasks.add.enqueue(1, 2)
    assert tasks.add.enqueue(a=1, b=2).id == first.id
    assert tasks.add.enqueue(1, b=2).id == first.id
    assert get_queue("default").stats()["queued"] == 1


def test_a_derived_id_is_the_digest_of_the_canonical_json_of_the_bound_arguments():
    """The id's recipe is a contract: a job added before an upgrade must keep its id after."""
    digest = hashlib.sha256(b'{"a":1,"b":[2,{"x":1,"y":2}]}').hexdigest()[:32]
    expected = f"tests.jobs.tasks.add:{digest}"
    assert tasks.add.id_for(1, [2, {"y": 2, "x": 1}]) == expected
    assert tasks.add.id_for(b=[2, {"x": 1, "y": 2}], a=1) == expected


def test_arguments_that_do_not_fit_the_task_are_refused_naming_it():
    with pytest.raises(InvalidJob, match="Task tests.jobs.tasks.add cannot be called"):
        tasks.add.enqueue(1, 2, 3)
    assert get_queue("default").stats()["queued"] == 0


def test_plain_call_runs_in_process():
    assert tasks.add(2, 3) == 5
    assert current_job() is None


def test_using_sets_per_call_options():
    result = tasks.record.using(delay=30, priority=5).enqueue("later")
    assert result.state == "scheduled"
    assert get_queue("default").get_job("rec-later").priority == 5
    with pytest.raises(ValueError, match="if_processing must be one of"):
        tasks.record.using(if_processing="sometimes")


def test_worker_runs_tasks_and_releases_their_ids():
    for key in "abc":
        tasks.record.enqueue(key)
    Worker(["default"], burst=True).run()
    log = test_log()
    assert sorted(entry.split()[1] for entry in log if entry.startswith("end")) == [
        "rec-a",
        "rec-b",
        "rec-c",
    ]
    stats = get_queue("default").stats()
    assert (stats["queued"], stats["processing"], stats["processed_total"]) == (0, 0, 3)
    assert tasks.record.enqueue("a").added


def test_job_sees_its_id_attempt_and_token_and_still_owns_it():
    tasks.slow.enqueue("k", 0.01)
    Worker(["fast"], burst=True).run()
    start, end = test_log()
    _, job_id, token, attempt = start.split()
    assert (job_id, attempt) == ("slow-k", "1") and token.isdigit()
    assert end.endswith("{'owner': True}")


def test_plain_add_job_jobs_go_to_the_queue_processor():
    get_queue("default").add_job("plain-1", payload={"wheels": 4})
    Worker(["default"], burst=True).run()
    (entry,) = test_log()
    assert entry.startswith("plain plain-1 ")
    assert entry.endswith(" 1 {'payload': {'wheels': 4}}")


def test_a_job_id_with_a_newline_is_logged_escaped_so_it_cannot_forge_a_line(caplog):
    get_queue("default").add_job("plain-2\n2026-12-01 00:00:00,000 INFO forged")
    with caplog.at_level(logging.INFO, logger="django_convoy.worker"):
        Worker(["default"], burst=True).run()
    (done,) = [r.getMessage() for r in caplog.records if " done in " in r.getMessage()]
    assert "\n" not in done
    assert done.startswith("default 'plain-2\\n2026-12-01 00:00:00,000 INFO forged' attempt 1")


def test_raising_task_is_failed_with_its_traceback():
    tasks.boom.enqueue("kaput")
    Worker(["default"], burst=True).run()
    queue = get_queue("default")
    (job_id,) = queue.client.zrange(queue.keys.failed, 0, -1)
    error = queue.get_job(job_id).last_error
    assert (error["type"], error["message"]) == ("builtins.ValueError", "kaput")
    assert "raise ValueError(message)" in error["traceback"]
    assert queue.stats()["failed_total"] == 1


def test_failing_task_is_retried_until_it_succeeds():
    tasks.flaky.enqueue("f", failures=2)
    Worker(["retrying"], burst=False, max_jobs=3).run()
    starts = [entry for entry in test_log() if entry.startswith("start")]
    wait_until(lambda: get_queue("retrying").stats()["processed_total"] == 1)
    assert [entry.split()[3] for entry in starts] == ["1", "2", "3"]


@pytest.mark.parametrize(
    "body, message",
    [
        (
            '{"task": "os.system", "payload": {"args": ["echo hacked"], "kwargs": {}}}',
            "names task 'os.system', which is not registered",
        ),
        ("not json at all", "corrupt body"),
        ('{"task": "tests.jobs.tasks.add", "payload": [1, 2]}', "needs 'args'"),
    ],
)
def test_job_the_worker_cannot_run_fails_clearly_and_the_worker_goes_on(
    redis_client, body, message
):
    queue = get_queue("default")
    queue.add_job("hostile")
    redis_client.hset(queue.keys.jobs, "hostile", body)  # no counters: all body
    tasks.record.enqueue("after")
    Worker(["default"], burst=True).run()
    job = queue.get_job("hostile")
    assert job.state == "failed"
    assert message in job.last_error["message"]
    assert job.attempts == 1  # not retried: it could never succeed
    assert any(entry.startswith("end rec-after") for entry in test_log())


def test_job_past_its_timeout_is_failed_and_its_slot_freed():
    queue = get_queue("fast")  # JOB_TIMEOUT 0.5 s, CONCURRENCY 4
    tasks.slow.enqueue("hung", 2.0)
    with ThreadedWorker("fast", concurrency=1) as worker:
        wait_until(lambda: job_state(queue, "slow-hung") == "failed", timeout=5)
        job = queue.get_job("slow-hung")
        assert job.last_error["reason"] == "timeout"
        assert "JOB_TIMEOUT" in job.last_error["message"]
        tasks.slow.enqueue("next", 0.01)  # the one slot is free again while "hung" still runs
        wait_until(lambda: any(e.startswith("end slow-next") for e in test_log()), timeout=5)
        assert not any(e.startswith("end slow-hung") for e in test_log())
        wait_until(lambda: any(e.startswith("end slow-hung") for e in test_log()), timeout=5)
        time.sleep(0.1)
        assert worker.failed == 1
    assert queue.get_job("slow-hung").state == "failed"  # its late return did not ack it
    assert "'owner': False" in next(e for e in test_log() if e.startswith("end slow-hung"))


def test_stop_hands_unfinished_jobs_back_after_the_grace_period():
    queue = get_queue("default")
    tasks.record.enqueue("long", sleep=1.5)
    with ThreadedWorker("default", grace=0.2):
        wait_until(lambda: test_log())
    job = queue.get_job("rec-long")
    assert (job.state, job.jams, job.attempts) == ("queued", 0, 1)  # it started: it counts


def test_stop_lets_a_job_finish_within_the_grace_period():
    tasks.record.enqueue("short", sleep=0.3)
    with ThreadedWorker("default", grace=5):
        wait_until(lambda: test_log())
    assert get_queue("default").get_job("rec-short").state == "done"  # its result is kept
    assert any(entry.startswith("end rec-short") for entry in test_log())


def test_worker_registers_a_heartbeat_and_deregisters_on_exit(redis_client):
    with ThreadedWorker("default") as worker:
        key = worker_key("convoytest", worker.id)
        wait_until(lambda: redis_client.exists(key))
        info = redis_client.hget(key, "info")
        assert '"queues": ["default"]' in info
        assert redis_client.zscore(workers_registry_key("convoytest"), worker.id)
    assert not redis_client.exists(key)


def test_paused_queue_is_not_worked_until_resumed():
    queue = get_queue("default")
    queue.pause()
    tasks.record.enqueue("p")
    with ThreadedWorker("default"):
        time.sleep(0.3)
        assert queue.stats()["queued"] == 1
        queue.resume()
        wait_until(lambda: queue.stats()["processed_total"] == 1)


def test_idle_worker_wakes_on_a_new_job_without_polling(redis_client):
    with ThreadedWorker("default"):
        time.sleep(0.2)
        before = redis_client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        time.sleep(1.0)
        idle_calls = redis_client.info("commandstats")["cmdstat_evalsha"]["calls"] - before
        started = time.monotonic()
        tasks.record.enqueue("wake")
        wait_until(lambda: test_log(), interval=0.001)
        latency = time.monotonic() - started
    assert idle_calls <= 3  # one claim per idle block of a second, not a polling loop
    assert latency < 0.5


def test_worker_with_a_full_queue_and_an_idle_one_claims_as_soon_as_a_slot_frees():
    for key in "abcd":
        tasks.crashy.enqueue(key, 0.05)
    started = time.monotonic()
    with ThreadedWorker("crashy", "default", concurrency=1):
        wait_until(lambda: get_queue("crashy").stats()["processed_total"] == 4, timeout=10)
        elapsed = time.monotonic() - started
    # Blocking on the idle queue's wake list for its full second per job would take >= 3 s.
    assert elapsed < 2.0


def test_a_dead_workers_record_outlives_its_heartbeats(redis_client):
    with ThreadedWorker("default") as worker:
        key = worker_key("convoytest", worker.id)
        wait_until(lambda: redis_client.exists(key))
        assert redis_client.ttl(key) > 600


def test_a_queue_never_runs_more_than_its_concurrency_while_finished_slots_pass_on():
    """Slots pass from finished runs to the ones claimed with their acks: never one too many."""
    for i in range(30):
        tasks.record.enqueue(f"c{i}", 0.01)
        tasks.crashy.enqueue(f"c{i}", 0.01)
    Worker(["default", "crashy"], concurrency=2, burst=True).run()
    running = {"rec": 0, "crashy": 0}
    most = dict.fromkeys(running, 0)
    for entry in test_log():
        event, job_id = entry.split()[:2]
        queue = job_id.split("-")[0]
        running[queue] += 1 if event == "start" else -1
        most[queue] = max(most[queue], running[queue])
    assert most == {"rec": 2, "crashy": 2}
    assert running == {"rec": 0, "crashy": 0}
    assert get_queue("default").stats()["processed_total"] == 30


def test_a_busy_worker_claims_with_its_acks_in_one_round_trip(monkeypatch):
    """One script call per job at concurrency 1: each ack brings the next run along."""
    calls = {"claim": 0, "ack": 0, "ack_and_claim": 0}
    for name in calls:
        real = getattr(Queue, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(Queue, name, counted)
    for i in range(20):
        tasks.record.enqueue(f"r{i}")
    Worker(["default"], concurrency=1, burst=True).run()
    assert get_queue("default").stats()["processed_total"] == 20
    assert calls["ack_and_claim"] >= 19
    assert calls["claim"] + calls["ack"] <= 4  # the first claim, the last ack, the empty look


def test_max_jobs_is_exact_while_the_claim_loop_and_the_reporter_both_claim():
    """Failures free slots for the claim loop while the reporter claims with its acks."""
    for i in range(100):
        tasks.record.enqueue(f"m{i}", 0.001)
        tasks.boom.enqueue(f"m{i}")
    queue = get_queue("default")
    for _ in range(5):
        worker = Worker(["default"], concurrency=8, max_jobs=20, jam_guard=False)
        worker.run()
        stats = queue.stats()
        assert worker.state.claimed == 20
        assert stats["processing"] == 0  # each claimed run was reported (or handed back)


def test_a_queue_whose_node_is_away_does_not_stop_the_others(monkeypatch):
    """On a Redis Cluster: a finished run that cannot be reported gives its slot back."""
    away = threading.Event()
    real_call = QueueStore.call

    def call(self, script, *args, **kwargs):
        if self.name == "crashy" and away.is_set():
            raise RedisUnavailable("crashy's node is away (simulated)")
        return real_call(self, script, *args, **kwargs)

    monkeypatch.setattr(QueueStore, "call", call)
    tasks.crashy.enqueue("stuck", 0.3)
    for i in range(400):
        tasks.record.enqueue(f"k{i}", 0.002)
    worker = Worker(["default", "crashy"], concurrency=2, jam_guard=False)
    # as when the queues live on several cluster nodes
    worker.claimer.outages = worker.keeper.outages = Outages()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: any(e.startswith("start crashy-stuck") for e in test_log()))
        away.set()  # crashy-stuck finishes while its node is away
        time.sleep(0.5)
        before = len(test_log())
        wait_until(lambda: len(test_log()) > before + 100, timeout=10)  # default goes on
        away.clear()
        wait_until(lambda: get_queue("crashy").stats()["processed_total"] == 1, timeout=20)
    finally:
        worker.request_stop()
        thread.join(30)
    assert get_queue("default").stats()["processed_total"] > 100


def test_an_executor_error_outside_the_job_fails_the_run_and_frees_its_slot(monkeypatch):
    """A pool that cannot start a child must not leave the run held and its slot taken."""
    from django_convoy.worker import executors as worker_module

    real_execute = worker_module.execute
    calls = []

    def failing_once(job, worker_id, **options):
        calls.append(job.id)
        if len(calls) == 1:
            raise OSError("cannot start a child process (simulated)")
        return real_execute(job, worker_id, **options)

    monkeypatch.setattr(worker_module, "execute", failing_once)
    tasks.record.enqueue("first")
    tasks.record.enqueue("second")
    worker = Worker(["default"], concurrency=1, burst=True)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "the worker's one slot was never freed"
    queue = get_queue("default")
    assert queue.stats()["processing"] == 0
    first = queue.get_job("rec-first")  # failed with reason crash (MAX_ATTEMPTS 1), not held
    assert first.state == "failed" and first.last_error["reason"] == "crash", first
    assert "cannot start a child process" in first.last_error["message"]
    assert any(entry.startswith("end rec-second") for entry in test_log())


def test_runs_a_lost_reply_claimed_are_queued_again_at_once_not_a_lease_later(monkeypatch, caplog):
    """The ack that claimed them ran, its reply was lost: the worker never learned their
    tokens. It looks for such runs before its next claim instead of leaving them jammed."""
    real = Queue.ack_and_claim
    lost: list[str] = []

    def losing_its_reply(self, runs, max_jobs, worker_id, **options):
        acks, batch = real(self, runs, max_jobs, worker_id, **options)
        if not lost and batch.runs:
            lost.extend(job.id for job in batch.runs)
            raise RedisUnavailable("the reply was lost (simulated)")
        return acks, batch

    monkeypatch.setattr(Queue, "ack_and_claim", losing_its_reply)
    for i in range(4):
        tasks.record.enqueue(f"o{i}")
    worker = Worker(["default"], concurrency=1, burst=True)
    started = time.monotonic()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive()
    assert lost
    assert time.monotonic() - started < get_queue("default").config.lease  # no jam guard wait
    stats = get_queue("default").stats()
    assert (stats["processed_total"], stats["processing"], stats["queued"]) == (4, 0, 0)
    starts = [entry.split()[1] for entry in test_log() if entry.startswith("start")]
    assert sorted(starts) == [f"rec-o{i}" for i in range(4)]  # each ran once
    # As many as that claim took (more than the one slot, when it claimed ahead: ahead.py).
    assert f"queued again {len(lost)} runs whose claim's reply was lost: {', '.join(lost)}" in (
        caplog.text
    )


@pytest.mark.parametrize("source", ["url", "django-redis cache", "options asking for retries"])
def test_convoys_client_never_sends_a_command_twice(monkeypatch, settings, source):
    """A claim sent again after its reply was lost would claim twice, and a BLPOP sent again
    would lose the run it popped: the error must reach the worker, which then releases the
    runs held for it that it never heard of before its next claim."""
    import redis

    from django_convoy import connection

    if source == "options asking for retries":
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        settings.CONVOY = {**settings.CONVOY, "REDIS_OPTIONS": {"retry": Retry(NoBackoff(), 3)}}
    elif source != "url":
        url = settings.CONVOY["REDIS_URL"]
        settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url}}
        convoy = {key: value for key, value in settings.CONVOY.items() if key != "REDIS_URL"}
        settings.CONVOY = {**convoy, "CONNECTION": "default"}
    client = Worker(["default"]).client
    assert client is connection.get_client()
    client.ping()
    reads = []

    def reply_lost(self, *args, **kwargs):
        reads.append(self)
        raise redis.ConnectionError("the reply was lost (simulated)")

    monkeypatch.setattr(redis.connection.AbstractConnection, "read_response", reply_lost)
    with pytest.raises(redis.ConnectionError):
        client.blpop(["nothing"], timeout=0.01)
    assert len(reads) == 1


def test_a_worker_thread_that_dies_stops_the_worker_instead_of_heartbeating(
    monkeypatch, redis_client
):
    """A reporter that died used to leave a worker that sent heartbeats and acked nothing:
    any part's unexpected death now stops the whole worker, which says why and deregisters."""
    from django_convoy.worker import WorkerCrashed
    from django_convoy.worker.reporter import Reporter

    def broken(self, batch):
        raise RuntimeError("a bug in the reporter")

    monkeypatch.setattr(Reporter, "report", broken)
    tasks.record.enqueue("x", 0)
    worker = Worker(["default"], jam_guard=False)
    crashed = []

    def run():
        try:
            worker.run()
        except WorkerCrashed as exc:
            crashed.append(str(exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert crashed and "convoy-reporter died: RuntimeError('a bug in the reporter')" in crashed[0]
    assert redis_client.zcard(workers_registry_key("convoytest")) == 0
