"""``ScheduleStore``: the Redis side of the schedules whose jobs go to one queue.

A schedule's state lives under its queue's hash tag (``keys.ScheduleKeys``), so that the tick
script can check and advance the schedule's last tick and add the tick's job to the queue in
one step on one Cluster slot. The script runs through the queue's ``QueueStore.call``, like
every other script of the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..connection import reporting_unavailable
from .keys import schedule_keys
from .queues import QueueStore
from .records import ScheduleState, Tick

NOT_A_TASK_RESULT = 0  # keep_ms of a @convoy_task's tick: no Django result to create


class ScheduleStore:
    """The schedules of one queue: their state, their pauses, and the tick script."""

    def __init__(self, queue: QueueStore):
        self.queue = queue
        self.keys = schedule_keys(queue.key_prefix, queue.name)

    def __repr__(self) -> str:
        return f"<ScheduleStore {self.queue.name}>"

    def tick(
        self,
        name: str,
        ticks: tuple[int, int, int],
        rules: tuple[int, str, str],
        job: tuple[str, str, int, int],
        result: tuple[str, int] | None = None,
    ) -> Tick:
        """Fire one tick of schedule ``name`` (tick.lua): ``ticks`` (tick, previous, next ms;
        tick -1: run now), ``rules`` (late ms, catch_up, overlap), ``job`` (id, body, priority,
        jitter ms), ``result`` (a Django task's result key and how long to keep it)."""
        result_key, keep_ms = result or (self.keys.state, NOT_A_TASK_RESULT)
        args = [name, *ticks, *rules, *job, keep_ms, self.queue.flow_spec]
        return self.queue.call("tick", args, [result_key, *self.keys])

    def states(self, names: Sequence[str]) -> dict[str, ScheduleState]:
        """The state of each of ``names`` (one round trip)."""
        if not names:
            return {}
        with reporting_unavailable(self.queue.client):
            pipe = self.queue.client.pipeline(transaction=False)
            self.queue_states_read(pipe, names)
            records, paused = pipe.execute()
        return read_states(names, records, paused)

    def queue_states_read(self, pipe: Any, names: Sequence[str]) -> None:
        """Queue the reads ``read_states`` decodes on ``pipe`` (for reads over many queues)."""
        pipe.hmget(self.keys.state, *names)
        pipe.smembers(self.keys.paused)

    def redis_now_ms(self) -> int:
        """Redis's clock, in ms (TIME): the clock every tick is compared with."""
        with reporting_unavailable(self.queue.client):
            seconds, micros = self.queue.client.time()
        return seconds * 1000 + micros // 1000

    def pause(self, name: str) -> bool:
        """Pause schedule ``name`` for every scheduler; False if it was paused already."""
        with reporting_unavailable(self.queue.client):
            return bool(self.queue.client.sadd(self.keys.paused, name))

    def resume(self, name: str) -> bool:
        """Let schedule ``name`` fire again; False if it was not paused."""
        with reporting_unavailable(self.queue.client):
            return bool(self.queue.client.srem(self.keys.paused, name))


def read_states(
    names: Sequence[str], records: Sequence[str | None], paused: set[str]
) -> dict[str, ScheduleState]:
    """Each schedule's state from its record and the queue's set of paused schedules."""
    return {
        name: ScheduleState.parse(record, name in paused)
        for name, record in zip(names, records, strict=False)
    }
