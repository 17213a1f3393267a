"""The keeper: what keeps a worker's runs alive and honest in Redis.

Every keep interval (LEASE / 3) it renews the leases of the runs the worker holds and sends a
heartbeat; it fails runs past JOB_TIMEOUT as they fall due, and runs the jam guard of the
worker's queues every third interval. One queue's node being away (in a cluster) or one refused
script must not stop the others' renewals: a lapsed lease means the same job on two workers.
While Redis is unreachable it retries at least every LEASE / 6, so that its renewals land
within the lease the jam guards hold recoveries for once Redis is back (``contact.py``).
A run whose lease was lost is given up at once: its child is killed (``--pool processes``) or
its thread retired, and its slot goes to a fresh executor. With threads, it also hands back the
runs claimed ahead that wait for an executor too long (``ahead.py``).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable

import redis

from ..exceptions import JobTimeout, RedisUnavailable
from ..ids import shown
from ..store import policy_of
from .backoff import BACKOFF_CAP, BACKOFF_FIRST, Backoff, Outages
from .contact import ContactWatch
from .execution import error_record, finished, log_fields
from .state import ActiveRun, WorkerState

logger = logging.getLogger("django_convoy.worker")


class Keeper:
    """Renew, beat, time out and guard: the keeper thread's loop."""

    def __init__(
        self,
        state: WorkerState,
        give_up: Callable[[ActiveRun], None],
        outages: Outages | None,
        run_jam_guard: bool,
        still_running: Callable[[ActiveRun], bool] | None = None,
        hand_back_waiting: Callable[[float], float | None] | None = None,
    ):
        self.state = state
        # Kills a run's child, or retires its thread (a thread cannot be stopped).
        self._replace = give_up
        # --pool processes: whether a child runs a run still (its view here may be a little old).
        self._still_running = still_running
        # Threads: hands back runs claimed ahead that wait too long; when to look again.
        self._hand_back_waiting = hand_back_waiting
        self.outages = outages
        self.run_jam_guard = run_jam_guard
        # Scripts Redis refuses on a queue (a corrupt key): logged when that begins, once a
        # minute, and when it ends, not on every try; the other queues go on.
        self.renewals_refused, self.guard_refused = Outages(), Outages()
        self.fleet = next(iter(state.queues.values())).store.fleet
        lease = min(q.config.lease for q in state.queues.values())
        self.interval = max(0.05, lease / 3)
        self.contact = ContactWatch(state.queues, lease)
        self._held_until: dict[str, object] = {}  # the hold last logged, per queue
        self.stop = threading.Event()  # set by the worker once its runs are handed back
        self._wake = threading.Event()
        self._due = 0.0  # monotonic: when the keeper next wakes by itself

    def wake_by(self, deadline: float) -> None:
        """Make sure the keeper looks again no later than ``deadline`` (monotonic)."""
        if deadline < self._due:
            self._wake.set()

    def close(self) -> None:
        """End the loop (after its current step)."""
        self.stop.set()
        self._wake.set()

    def loop(self) -> None:
        """Keep until ``close()``."""
        state = self.state
        next_keep = 0.0
        next_jam_guard = time.monotonic() + self.interval * 3
        cap = min(BACKOFF_CAP, self.interval / 2)
        backoff = Backoff("renewing leases and the heartbeat", min(BACKOFF_FIRST, cap), cap)
        while not self.stop.is_set():
            self._due = math.inf  # busy: a wake_by() meanwhile sets _wake, not lost
            now = time.monotonic()
            self._time_out_overdue(now)
            waiting_due = self._hand_back_waiting(now) if self._hand_back_waiting else None
            if now >= next_keep:
                try:
                    with self.contact.call():
                        self._renew_and_beat()
                    if self.run_jam_guard and now >= next_jam_guard and not state.stop.is_set():
                        self._jam_guard()
                        next_jam_guard = now + self.interval * 3
                    backoff.reset()
                    next_keep = now + self.interval
                except (RedisUnavailable, redis.ResponseError) as exc:
                    # Redis away, or the heartbeat refused (out of memory?): a dead keeper
                    # would let every lease lapse, so it waits and tries again.
                    backoff.wait(self.stop, exc)
                    continue
            with state.lock:
                deadlines = [
                    a.deadline
                    for a in state.runs.values()
                    if a.deadline is not None and a.executing and not a.abandoned
                ]
            self._due = min([next_keep, *deadlines, *([waiting_due] if waiting_due else [])])
            self._wake.wait(max(0.0, self._due - time.monotonic()))
            self._wake.clear()

    def _time_out_overdue(self, now: float) -> None:
        with self.state.lock:
            overdue = [
                a
                for a in self.state.runs.values()
                if a.executing and not a.abandoned and a.deadline is not None and a.deadline <= now
            ]
        for active in overdue:
            if not self.state.abandon(active, "timed out"):
                continue  # it finished meanwhile: its outcome stands
            run, q = active.run, self.state.queues[active.run.queue]
            whose = (
                "its task's timeout" if policy_of(run.body).timeout is not None else "JOB_TIMEOUT"
            )
            timeout = JobTimeout(f"Job {run.id!r} ran longer than {whose} ({active.timeout} s)")
            error = error_record(run, timeout, "timeout", self.state.id)
            error["traceback"] = ""
            try:
                verdict = q.fail(run, error, final=q.is_final(run, timeout))
            except RedisUnavailable as exc:
                verdict = f"not recorded ({exc})"
            self.state.count(failed=verdict in ("failed", "rerun"))
            ended = "failed" if verdict == "rerun" else verdict
            logger.warning(
                "%s %s attempt %d timed out after %s s; %s",
                q.name,
                shown(run.id),
                run.attempt,
                active.timeout,
                verdict,
                extra=log_fields(run, time.monotonic() - active.started, ended),
            )
            if ended in ("retry", "failed", "stale"):
                finished(run, self.state.id, ended, time.monotonic() - active.started, error)
            self._give_up(active)

    def _give_up(self, active: ActiveRun) -> None:
        """Stop spending a slot on a run whose outcome no longer counts."""
        self._replace(active)
        self.state.free_slot(active)

    def _renew_and_beat(self) -> None:
        held = self.state.held()
        for name, actives in held.items():
            try:
                replies = self.state.queues[name].renew([a.fence for a in actives])
            except RedisUnavailable as exc:
                if self.outages is None:
                    raise
                self.contact.gap()
                self.outages.failed(name, exc, f"renewing {len(actives)} leases")
                continue  # the other queues' leases must not lapse meanwhile
            except redis.ResponseError as exc:  # a corrupt key
                self.renewals_refused.failed(name, exc, "renewing leases")
                continue
            self.renewals_refused.recovered(name)
            for active, renewed in zip(actives, replies, strict=True):
                # A run that already ended has its ack on the way, or made already by its
                # child, which may have landed first: the ack, not this refusal, says how it
                # went.
                if renewed or (self._still_running and not self._still_running(active)):
                    continue
                if not self.state.abandon(active, "its job was taken from it"):
                    continue
                logger.warning(
                    "%s %s: lease lost, the job was taken from this run (cancelled, or "
                    "recovered after its lease lapsed); %s",
                    name,
                    shown(active.run.id),
                    "its child is killed" if active.child else "its outcome will not count",
                )
                self._give_up(active)
        try:
            self._heartbeat(held)
        except RedisUnavailable as exc:
            if self.outages is None:
                raise
            self.contact.gap()
            self.outages.failed("{workers}", exc, "the heartbeat")
        else:
            if self.outages is not None:
                self.outages.recovered("{workers}")

    def _heartbeat(self, held: dict[str, list[ActiveRun]]) -> None:
        state = self.state
        info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(state.queues),
            "concurrency": state.slots,
            "processed": state.processed,
            "failed": state.failed,
            "stopping": state.stop.is_set(),
            "current": [
                {
                    "queue": a.run.queue,
                    "id": a.run.id,
                    "attempt": a.run.attempt,
                    "running_for": round(time.monotonic() - a.started, 3),
                }
                for actives in held.values()
                for a in actives
                if a.executing
            ],
        }
        self.fleet.heartbeat(state.id, info, int(self.interval * 1000))

    def _jam_guard(self) -> None:
        for q in self.state.queues.values():
            try:
                sent_ms = self.contact.reckoned_ms(q.name, q.store.clock_ms)
                resumed = self.contact.owed(q.name)
                with self.contact.call():
                    guarded = q.jam_guard_round(resumed=resumed, sent_ms=sent_ms)
                    self.contact.saw(q.name, guarded.redis_ms)
                    if resumed:
                        self.contact.told(q.name)
            except RedisUnavailable as exc:
                if self.outages is None:
                    raise
                self.outages.failed(q.name, exc, "the jam guard")
                continue
            except redis.ResponseError as exc:
                self.guard_refused.failed(q.name, exc, "the jam guard")
                continue
            self.guard_refused.recovered(q.name)
            if guarded.held_until and guarded.held_until != self._held_until.get(q.name):
                logger.warning(
                    "%s: Redis is back from an outage: the jam guard recovers nothing until %s "
                    "(live workers renew their leases first)",
                    q.name,
                    f"{guarded.held_until:%H:%M:%S} UTC",
                )
            self._held_until[q.name] = guarded.held_until
            for job in guarded.recovered:
                logger.warning(
                    "%s %s: jammed, %s; %s", q.name, shown(job.id), job.reason, job.action
                )

    def deregister(self) -> None:
        """Leave the workers registry (a clean stop)."""
        self.fleet.deregister(self.state.id)
