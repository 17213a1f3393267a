"""Scenario 11: the queue against a simple model, by stateful property-based testing.

Hypothesis drives one Queue (on a redis-server of this module's own) through random adds,
claims (some asking to be handed the next job, which the next add then does), acks, failures,
renewals, hand-backs, deletions, lease expiries and due times (moved in Redis, never slept for)
and jam-guard rounds, and after every step checks that Redis agrees with
a plain-Python model: each id in at most one state, ``body``/``meta`` present exactly for ids in
a state, a ``run`` exactly for processing ids, pending reruns where the model has them, the
queue's order, attempts and jams, the counts of ``stats()`` and the state ``get_job`` reports.
Stale tokens (of runs that ended or were taken over) are replayed on purpose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from django_convoy.conf import QueueConfig
from django_convoy.exceptions import JobNotFound
from django_convoy.queue import Queue
from django_convoy.store import Run as StoreRun
from django_convoy.store.keys import inbox_key
from django_convoy.store.records import RunRecord

from . import checker

CONFIG = QueueConfig(
    name="model",
    lease=60.0,  # expiry is moved by hand, never waited for
    max_attempts=2,
    retry_backoff=100.0,  # a retry is due in the future until a rule makes it due
    max_jams=1,
)
IDS = st.sampled_from(["a", "b", "c|1", "{d}", "é"])  # separators, hash-tag braces, UTF-8
PAYLOADS = st.integers(0, 9)
PRIORITIES = st.sampled_from([-1, 0, 1])


@dataclass
class Entry:
    """What the model knows of one id that is in a state."""

    state: str  # queued | scheduled | processing | failed
    payload: Any
    priority: int
    order: int = 0  # FIFO position among equal priorities while queued
    attempts: int = 0
    jams: int = 0
    token: str | None = None  # while processing
    expired: bool = False  # processing with its lease deadline moved to the past
    due: bool = False  # scheduled with its due time moved to the past
    rerun: tuple[int, Any] | None = None  # (priority, payload) of a pending rerun


@dataclass(frozen=True)
class Run:
    """A token a claim handed out, current or long stale."""

    id: str
    token: str
    attempt: int


class QueueModel(RuleBasedStateMachine):
    client: redis.Redis  # set by the test before the machine runs
    runs = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        self.client.flushall()  # this module started the server: it may flush it
        self.queue = Queue(CONFIG, "convoyhyp", self.client)
        self.entries: dict[str, Entry] = {}
        self.counter = 0
        self.slots = 0  # how many jobs the worker's standing request may still be handed
        self.inbox: list[tuple[str, str]] = []  # (id, placeholder token) of runs handed to it

    # -- model helpers --------------------------------------------------------------------------

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def _state(self, job_id: str) -> str | None:
        entry = self.entries.get(job_id)
        if entry is None:
            return None
        return "jammed" if entry.state == "processing" and entry.expired else entry.state

    def _fresh(self, job_id: str, payload: Any, priority: int) -> None:
        self.entries[job_id] = Entry("queued", payload, priority, order=self._next())

    def _requeue(self, entry: Entry) -> None:
        entry.state, entry.order, entry.token, entry.expired = "queued", self._next(), None, False

    def _owns(self, run: Run) -> bool:
        entry = self.entries.get(run.id)
        return entry is not None and entry.state == "processing" and entry.token == run.token

    def _final_failure(self, job_id: str) -> str:
        entry = self.entries[job_id]
        if entry.rerun:
            priority, payload = entry.rerun
            self._fresh(job_id, payload, priority)
            return "rerun"
        entry.state, entry.token, entry.expired = "failed", None, False
        return "failed"

    def _by_id_bytes(self, ids: list[str]) -> list[str]:
        return sorted(ids, key=lambda i: i.encode())  # Redis orders equal scores by bytes

    # -- rules ----------------------------------------------------------------------------------

    @rule(
        job_id=IDS,
        payload=PAYLOADS,
        priority=PRIORITIES,
        if_processing=st.sampled_from(["ignore", "rerun"]),
        delayed=st.booleans(),
    )
    def add(self, job_id, payload, priority, if_processing, delayed):
        state = self._state(job_id)
        result = self.queue.add_job(
            job_id,
            payload,
            if_processing=if_processing,
            delay=1000 if delayed else 0,
            priority=priority,
        )
        queued = any(e.state == "queued" for e in self.entries.values())
        if state in (None, "failed") and self.slots and not delayed and not queued:
            # Handed to the waiting worker; its token is learnt when the worker's claim returns it.
            placeholder = f"handed-{self._next()}"
            self.entries[job_id] = Entry("processing", payload, priority, attempts=1)
            self.entries[job_id].token = placeholder
            self.inbox.append((job_id, placeholder))
            self.slots -= 1
            assert (result.added, result.state) == (True, "processing")
            return
        if state in (None, "failed"):
            self._fresh(job_id, payload, priority)
            if delayed:
                self.entries[job_id].state = "scheduled"
            assert (result.added, result.state) == (True, self.entries[job_id].state)
            return
        if state in ("processing", "jammed") and if_processing == "rerun":
            self.entries[job_id].rerun = (priority, payload)
        assert (result.added, result.state) == (False, state)

    @rule(target=runs, n=st.integers(0, 3), wait=st.booleans())
    def claim(self, n, wait):
        for job_id in self._by_id_bytes(
            [i for i, e in self.entries.items() if e.state == "scheduled" and e.due]
        ):
            entry = self.entries[job_id]
            entry.due = False
            self._requeue(entry)
        waiting = sorted(
            (i for i, e in self.entries.items() if e.state == "queued"),
            key=lambda i: (-self.entries[i].priority, self.entries[i].order),
        )
        # Runs handed to the worker come first, unless they were taken back meanwhile.
        handed = [i for i, token in self.inbox if self._owns(Run(i, token, 1))]
        self.inbox = []
        batch = self.queue.claim(n, "model-worker", wait_ms=60_000 if wait else 0)
        room = n - len(handed)
        popped = waiting[: max(0, room)]
        assert [job.id for job in batch.runs] == handed + popped
        room -= len(popped)  # > 0: the queue ran dry with slots to spare
        self.slots = room if wait and room > 0 else 0
        assert batch.waiting == bool(self.slots)
        claimed = []
        for job in batch.runs:
            entry = self.entries[job.id]
            if job.id not in handed:
                entry.attempts += 1
            entry.state, entry.token, entry.expired = "processing", job.token, False
            assert job.attempt == entry.attempts
            assert json.loads(job.body) == {"payload": entry.payload}
            claimed.append(Run(job.id, job.token, job.attempt))
        return multiple(*claimed)  # runs stay in the bundle: stale tokens get replayed

    @rule(run=runs)
    def ack(self, run):
        (reply,) = self.queue.ack([(run.id, run.token)])
        if not self._owns(run):
            assert reply == 0
        elif self.entries[run.id].rerun:
            assert reply == 2
            self._final_failure(run.id)  # the same as a final end with a rerun: a fresh run
        else:
            assert reply == 1
            del self.entries[run.id]

    @rule(run=runs, final=st.booleans())
    def fail(self, run, final):
        job = StoreRun(CONFIG.name, run.id, "", run.attempt, run.token)
        error = {"type": "ModelError", "message": "model", "traceback": ""}
        verdict = self.queue.fail(job, error, final=final)
        if not self._owns(run):
            assert verdict == "stale"
        elif final:
            assert verdict == self._final_failure(run.id)
        else:
            assert verdict == "retry"
            entry = self.entries[run.id]
            entry.state, entry.token, entry.expired, entry.due = "scheduled", None, False, False

    @rule(run=runs)
    def renew(self, run):
        (reply,) = self.queue.renew([(run.id, run.token)])
        assert reply == int(self._owns(run))
        if reply:
            self.entries[run.id].expired = False

    @rule(run=runs, started=st.booleans())
    def handback(self, run, started):
        (reply,) = self.queue.handback([(run.id, run.token)], started=started)
        assert reply == int(self._owns(run))
        if reply:
            if not started:  # nothing of it ran: the attempt is given back
                self.entries[run.id].attempts -= 1
            self._requeue(self.entries[run.id])

    @precondition(lambda self: any(e.state == "processing" for e in self.entries.values()))
    @rule(data=st.data())
    def expire(self, data):
        job_id = data.draw(
            st.sampled_from(sorted(i for i, e in self.entries.items() if e.state == "processing"))
        )
        self.client.zadd(self.queue.keys.processing, {job_id: 1}, xx=True)
        self.entries[job_id].expired = True

    @precondition(lambda self: any(e.state == "scheduled" for e in self.entries.values()))
    @rule(data=st.data())
    def make_due(self, data):
        job_id = data.draw(
            st.sampled_from(sorted(i for i, e in self.entries.items() if e.state == "scheduled"))
        )
        self.client.zadd(self.queue.keys.scheduled, {job_id: 1}, xx=True)
        self.entries[job_id].due = True

    @rule()
    def jam_guard(self):
        expected = []
        for job_id in self._by_id_bytes(
            [i for i, e in self.entries.items() if e.state == "processing" and e.expired]
        ):
            entry = self.entries[job_id]
            entry.jams += 1
            if entry.jams > CONFIG.max_jams:
                expected.append((job_id, self._final_failure(job_id)))
            else:
                self._requeue(entry)
                expected.append((job_id, "requeued"))
        assert [(job.id, job.action) for job in self.queue.jam_guard()] == expected

    @rule(job_id=IDS)
    def delete(self, job_id):
        state = self._state(job_id)
        if state in ("queued", "scheduled", "failed"):
            assert self.queue.delete_job(job_id) == state
            del self.entries[job_id]
        else:
            with pytest.raises(JobNotFound):
                self.queue.delete_job(job_id)

    @rule(job_id=IDS)
    def release_jammed(self, job_id):
        if self._state(job_id) == "jammed":
            assert self.queue.release_jammed(job_id) == "jammed"
            del self.entries[job_id]
        else:
            with pytest.raises(JobNotFound):
                self.queue.release_jammed(job_id)

    @rule(job_id=IDS)
    def requeue_failed(self, job_id):
        entry = self.entries.get(job_id)
        if entry is not None and entry.state == "failed":
            assert self.queue.requeue_failed([job_id]) == [job_id]
            self._fresh(job_id, entry.payload, entry.priority)
        else:
            with pytest.raises(JobNotFound, match="is not failed"):
                self.queue.requeue_failed([job_id])

    @rule()
    def purge(self):
        waiting = [i for i, e in self.entries.items() if e.state in ("queued", "scheduled")]
        assert self.queue.purge() == len(waiting)
        for job_id in waiting:
            del self.entries[job_id]

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def redis_agrees_with_the_model(self):
        keys, client = self.queue.keys, self.client
        held = checker.states(client, keys)  # raises if an id is in two states
        assert held == {i: e.state for i, e in self.entries.items()}
        assert set(client.hkeys(keys.jobs)) == set(held)
        assert set(client.hkeys(keys.errors)) <= set(held)
        assert set(client.hkeys(keys.run)) == {i for i, s in held.items() if s == "processing"}
        assert set(client.hkeys(keys.rerun)) == {i for i, e in self.entries.items() if e.rerun}
        self.check_queue_order()
        for job_id, entry in self.entries.items():
            _, attempts, jams, priority, body = client.hget(keys.jobs, job_id).split("|", 4)
            run = RunRecord.parse(client.hget(keys.run, job_id) or "")
            # A claim writes its attempt on the run only: the record counts the runs that ended.
            attempts = max(int(attempts), run.attempt or 0)
            assert (int(attempts), int(jams), int(priority)) == (
                entry.attempts,
                entry.jams,
                entry.priority,
            ), job_id
            assert json.loads(body) == {"payload": entry.payload}
            if entry.rerun:
                priority, body = client.hget(keys.rerun, job_id).split("|", 1)
                assert (int(priority), json.loads(body)["payload"]) == entry.rerun
        score = client.zscore(keys.idle, f"{int(CONFIG.lease * 1000)}|model-worker")
        assert (0 if score is None else int(score % 1000)) == self.slots
        handed = client.lrange(inbox_key(keys, "model-worker"), 0, -1)
        assert [json.loads(message)[0] for message in handed] == [i for i, _ in self.inbox]
        stats = self.queue.stats()
        for state in ("queued", "processing", "jammed", "scheduled", "failed"):
            count = sum(1 for i in self.entries if self._state(i) == state)
            assert stats[state] == count, (state, stats)

    def check_queue_order(self) -> None:
        assert self.client.zrange(self.queue.keys.queued, 0, -1) == self._in_queue_order(
            i for i, e in self.entries.items() if e.state == "queued"
        )

    def _in_queue_order(self, ids: Any) -> list[str]:
        return sorted(ids, key=lambda i: (-self.entries[i].priority, self.entries[i].order))

    @invariant()
    def get_job_reports_the_model_state(self):
        for job_id in ("a", "c|1", "é"):
            job = self.queue.get_job(job_id)
            assert (job.state if job else None) == self._state(job_id)


def test_queue_matches_its_model_under_random_operations(model_client):
    QueueModel.client = model_client
    run_state_machine(QueueModel, max_examples=60, steps=40)


@pytest.mark.slow
def test_soak_queue_matches_its_model(model_client):
    QueueModel.client = model_client
    run_state_machine(QueueModel, max_examples=600, steps=60)


def run_state_machine(machine: type, *, max_examples: int, steps: int) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    checker.report(
        "11 stateful model test (hypothesis)",
        examples=max_examples,
        steps_per_example=steps,
        invariant_violations=0,
    )
