"""Scenario 11b: flow control against the model of scenario 11 (``test_model.py``).

The same random operations, on a queue with ``GROUP_CONCURRENCY`` 1 and a ``RATE_LIMIT``,
whose jobs carry a group key (or none). A rule empties the rate limit's bucket by hand (its
state moved in Redis, never slept for) and another refills it. Each claim must hand out what
the limits allow, no more and no fewer: every group's jobs in its own queue order, no group
over its cap, nothing while the bucket is empty; and a job is handed to a waiting worker only
when it could have been claimed. After every step Redis's group bookkeeping must agree with
the model: each group's lane is its queued jobs in order, each group is in the ring or parked
exactly while it has queued jobs, and its score in ``groups`` is its processing runs.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, multiple, rule

from django_convoy.limits import RateLimit
from django_convoy.queue import Queue

from .test_model import CONFIG, IDS, PAYLOADS, PRIORITIES, QueueModel, Run, run_state_machine

FLOW_CONFIG = replace(
    CONFIG,
    group_concurrency=1,
    rate_limit=RateLimit(1, 3_600_000, 10**6),  # a bucket no test empties but by hand
)
GROUPS = st.sampled_from([None, "g1", "g2"])
EMPTY_FOR_AGES_MS = 2 * 10**6 * 3_600_000


class FlowModel(QueueModel):
    def __init__(self) -> None:
        super().__init__()
        self.queue = Queue(FLOW_CONFIG, "convoyflow", self.client)
        self.group_of: dict[str, str | None] = {}  # of each id's current job
        self.throttled = False

    def _busy(self, group: str) -> int:
        return sum(
            1
            for i, e in self.entries.items()
            if e.state == "processing" and self.group_of.get(i) == group
        )

    def _queued_of(self, group: str | None) -> list[str]:
        return self._in_queue_order(
            i for i, e in self.entries.items() if e.state == "queued" and self.group_of[i] == group
        )

    # -- rules ----------------------------------------------------------------------------------

    @rule(
        job_id=IDS,
        payload=PAYLOADS,
        priority=PRIORITIES,
        group=GROUPS,
        if_processing=st.sampled_from(["ignore", "rerun"]),
        delayed=st.booleans(),
    )
    def add_grouped(self, job_id, payload, priority, group, if_processing, delayed):
        state = self._state(job_id)
        fresh = state in (None, "failed")
        queued = any(e.state == "queued" for e in self.entries.values())
        may_start = not self.throttled and (group is None or self._busy(group) < 1)
        result = self.queue.add_job(
            job_id,
            payload,
            if_processing=if_processing,
            delay=1000 if delayed else 0,
            priority=priority,
            group=group,
        )
        if fresh:
            self.group_of[job_id] = group
        if fresh and self.slots and not delayed and not queued and may_start:
            placeholder = f"handed-{self._next()}"
            self._fresh(job_id, payload, priority)
            entry = self.entries[job_id]
            entry.state, entry.attempts, entry.token = "processing", 1, placeholder
            self.inbox.append((job_id, placeholder))
            self.slots -= 1
            assert (result.added, result.state) == (True, "processing")
            return
        if fresh:
            self._fresh(job_id, payload, priority)
            if delayed:
                self.entries[job_id].state = "scheduled"
            assert (result.added, result.state) == (True, self.entries[job_id].state)
            return
        if state in ("processing", "jammed") and if_processing == "rerun":
            self.entries[job_id].rerun = (priority, payload)
        assert (result.added, result.state) == (False, state)

    @rule(jobs=st.lists(st.tuples(IDS, PRIORITIES, GROUPS), min_size=2, max_size=4))
    def add_several(self, jobs):
        """Backlogs, so that claims meet several groups and a group's cap."""
        for job_id, priority, group in jobs:
            self.add_grouped(job_id, 0, priority, group, "ignore", False)

    @rule()
    def empty_the_bucket(self):
        now_ms = int(self.client.time()[0]) * 1000
        self.client.hset(self.queue.keys.flow, "tat", now_ms + EMPTY_FOR_AGES_MS)
        self.throttled = True

    @rule()
    def refill_the_bucket(self):
        self.client.hdel(self.queue.keys.flow, "tat")
        self.throttled = False

    # The plain add of the base model would add ungrouped jobs only; add_grouped covers it.
    add = None

    @rule(target=QueueModel.runs, n=st.integers(0, 3), wait=st.booleans())
    def claim(self, n, wait):
        for job_id in self._by_id_bytes(
            [i for i, e in self.entries.items() if e.state == "scheduled" and e.due]
        ):
            entry = self.entries[job_id]
            entry.due = False
            self._requeue(entry)
        handed = [i for i, token in self.inbox if self._owns(Run(i, token, 1))]
        self.inbox = []
        batch = self.queue.claim(n, "model-worker", wait_ms=60_000 if wait else 0)
        ids = [job.id for job in batch.runs]
        assert ids[: len(handed)] == handed
        room = max(0, n - len(handed))
        heads = {None: self._queued_of(None)}
        for group in ("g1", "g2"):
            heads[group] = self._queued_of(group)[: max(0, 1 - self._busy(group))]
        claimable = 0 if self.throttled else sum(map(len, heads.values()))
        taken = ids[len(handed) :]
        assert len(taken) == min(room, claimable), (taken, heads)
        for group, head in heads.items():
            mine = [i for i in taken if self.group_of[i] == group]
            assert mine == head[: len(mine)], (group, mine, head)
        for job_id in taken:
            self.entries[job_id].attempts += 1
        left = any(e.state == "queued" for i, e in self.entries.items() if i not in taken)
        room -= len(taken)
        self.slots = room if wait and room > 0 and not left else 0
        assert batch.waiting == bool(self.slots)
        claimed = []
        for job in batch.runs:
            entry = self.entries[job.id]
            entry.state, entry.token, entry.expired = "processing", job.token, False
            assert job.attempt == entry.attempts
            claimed.append(Run(job.id, job.token, job.attempt))
        return multiple(*claimed)

    # -- invariants -----------------------------------------------------------------------------

    def check_queue_order(self) -> None:
        keys, client = self.queue.keys, self.client
        assert client.zrange(keys.queued, 0, -1) == self._queued_of(None)
        grouped = [i for g in ("g1", "g2") for i in self._queued_of(g)]
        assert client.zrange(keys.grouped, 0, -1) == self._in_queue_order(grouped)

    @invariant()
    def groups_agree_with_the_model(self):
        keys, client = self.queue.keys, self.client
        live = {i: self.group_of[i] for i in self.entries if self.group_of.get(i)}
        assert client.hgetall(keys.group) == live
        lanes = [member.split("\0") for member in client.zrange(keys.lanes, 0, -1)]
        ring, parked = set(client.zrange(keys.ring, 0, -1)), set(client.zrange(keys.parked, 0, -1))
        assert not ring & parked
        groups = dict(client.zrange(keys.groups, 0, -1, withscores=True))
        for group in ("g1", "g2"):
            queued, busy = self._queued_of(group), self._busy(group)
            assert [lane[2] for lane in lanes if lane[0] == group] == queued
            assert (group in ring | parked) == bool(queued)
            assert groups.get(group) == (busy if queued or busy else None)


def test_flow_control_matches_its_model_under_random_operations(model_client):
    FlowModel.client = model_client
    run_state_machine(FlowModel, max_examples=50, steps=40)


@pytest.mark.slow
def test_soak_flow_control_matches_its_model(model_client):
    FlowModel.client = model_client
    run_state_machine(FlowModel, max_examples=500, steps=60)
