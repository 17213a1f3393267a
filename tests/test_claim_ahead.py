"""A threads worker claims ahead of its slots while its queue's jobs are short (worker/ahead.py),
and hands back the runs claimed ahead of jobs that turn out long."""

import time

from django_convoy import get_queue
from django_convoy.queue import Queue
from django_convoy.store import QueueStore
from django_convoy.worker import Worker
from django_convoy.worker.ahead import HAND_BACK_AFTER_SECONDS
from tests.helpers import ThreadedWorker, job_state, test_log, wait_until
from tests.jobs import tasks


def test_short_jobs_in_a_deep_queue_are_claimed_ahead(
    monkeypatch,
):
    claimed: list[int] = []
    real = Queue.ack_and_claim

    def counting(self, *args, **kwargs):
        acks, batch = real(self, *args, **kwargs)
        claimed.append(len(batch.runs))
        return acks, batch

    monkeypatch.setattr(Queue, "ack_and_claim", counting)
    for i in range(60):
        tasks.add.enqueue(i, 1)
    Worker(["default"], concurrency=2, burst=True).run()
    assert max(claimed) > 2  # more than the slots its acks freed: ahead
    stats = get_queue("default").stats()
    assert (stats["processed_total"], stats["failed_total"], stats["queued"]) == (60, 0, 0)


def test_runs_claimed_ahead_of_a_long_job_go_back_to_the_queue_unstarted(monkeypatch):
    handed: list[tuple[str, bool]] = []
    real = QueueStore.handback

    def recording(self, fences, *, started=True):
        handed.extend((job_id, started) for job_id, _ in fences)
        return real(self, fences, started=started)

    monkeypatch.setattr(QueueStore, "handback", recording)
    for i in range(30):
        tasks.add.enqueue(i, 1)
    tasks.record.enqueue("long", 1.5)
    behind = [tasks.add.enqueue(i, 2).id for i in range(5)]
    queue = get_queue("default")
    with ThreadedWorker("default", concurrency=1):
        wait_until(lambda: any(e.startswith("start rec-long") for e in test_log()), timeout=10)
        time.sleep(HAND_BACK_AFTER_SECONDS + 0.4)  # past the hand-back, and the keeper's look
        # Only the long job is held: the run claimed ahead of it is queued again, unstarted,
        # with its attempt given back.
        assert queue.stats()["processing"] == 1
        assert (behind[0], False) in handed  # it was claimed ahead, and went back unstarted
        assert job_state(queue, behind[0]) == "queued"
        assert queue.get_job(behind[0]).attempts == 0
        wait_until(lambda: queue.stats()["processed_total"] == 36, timeout=15)
    assert queue.stats()["failed_total"] == 0


def test_a_worker_with_max_jobs_never_claims_ahead(monkeypatch):
    asked: list[int] = []
    real = Queue.ack_and_claim

    def recording(self, runs, max_jobs, *args, **kwargs):
        asked.append(max_jobs)
        return real(self, runs, max_jobs, *args, **kwargs)

    monkeypatch.setattr(Queue, "ack_and_claim", recording)
    for i in range(40):
        tasks.add.enqueue(i, 3)
    worker = Worker(["default"], concurrency=2, max_jobs=30, jam_guard=False)
    worker.run()
    assert asked and max(asked) <= 2
    assert worker.state.claimed == 30


def test_a_claim_only_ahead_of_busy_slots_does_not_ask_to_be_handed_jobs():
    """A job handed to a worker whose slots all run would wait there while another idles."""
    worker = Worker(["default"], concurrency=1)
    state, claimer, queue = worker.state, worker.claimer, get_queue("default")
    claimer.ahead.short["default"] = claimer.ahead.deep["default"] = True
    state.busy["default"] = 1  # its one slot runs a job: the claim is only ahead
    claimer._claim_round()  # the queue is empty
    assert queue.client.zcard(queue.keys.idle) == 0
    assert "default" not in state.waiting
    state.busy["default"] = 0  # a free slot: a claim that finds nothing asks
    claimer._claim_round()
    assert queue.client.zcard(queue.keys.idle) == 1
    claimer.withdraw()


def test_a_worker_of_several_queues_never_claims_ahead():
    """Its executors serve every queue: a run claimed ahead of one could start on an executor
    another left idle, past its queue's concurrency."""
    worker = Worker(["default", "crashy"], concurrency=1)
    worker.claimer.ahead.short = dict.fromkeys(["default", "crashy"], True)
    worker.claimer.ahead.deep = dict.fromkeys(["default", "crashy"], True)
    assert worker.claimer.ahead.extra("default") == worker.claimer.ahead.extra("crashy") == 0
    assert Worker(["default"], concurrency=4).claimer.ahead.most == {"default": 4}


def test_runs_claimed_ahead_not_begun_go_back_unstarted_when_the_worker_stops():
    """Those within its slots run (a stopping worker lets its runs finish in the grace)."""
    ids = [tasks.add.enqueue(i, 4).id for i in range(4)]
    worker = Worker(["default"], concurrency=1)  # not running: nothing begins its runs
    claimer, queue = worker.claimer, get_queue("default")
    claimer.ahead.short["default"] = claimer.ahead.deep["default"] = True
    claimer._claim_round()
    assert queue.stats()["processing"] == 2  # its slot's run and one ahead
    claimer.hand_back_waiting(time.monotonic(), every=True)
    stats = queue.stats()
    assert (stats["processing"], stats["queued"]) == (1, 3)
    assert worker.state.busy["default"] == 1
    assert [job_state(queue, job_id) for job_id in ids[:2]] == ["processing", "queued"]
    assert queue.get_job(ids[1]).attempts == 0


def test_a_run_that_lost_its_lease_before_it_began_takes_no_executor_of_its_own():
    """Its executor skips it and goes on: a fresh one would be one executor too many."""
    worker = Worker(["default"], concurrency=1)
    tasks.add.enqueue(1, 5)
    worker.claimer._claim_round()
    (active,) = worker.state.runs.values()
    assert worker.state.abandon(active, "lease lost")
    worker.executors.replace(active)
    assert worker.executors.started == 0
    worker.claimer.hand_back_unstarted(get_queue("default"), [active.run])
