"""The keeper's part of a ``Worker``: what keeps its runs alive and honest in Redis.

Every keep interval (LEASE / 3) it renews the leases of the runs the worker holds and sends a
heartbeat; it fails runs past JOB_TIMEOUT as they fall due, and runs the jam guard of the
worker's queues every third interval. One queue's node being away (in a cluster) or one refused
script must not stop the others' renewals: a lapsed lease means the same job on two workers.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

import redis

from . import connection
from .exceptions import JobTimeout, RedisUnavailable
from .execution import error_record
from .keys import worker_key, workers_registry_key
from .runs import Backoff, Run

if TYPE_CHECKING:
    from .queue import Queue
    from .wake import Outages

logger = logging.getLogger("django_convoy.worker")

WORKER_RECORD_TTL_SECONDS = 3600


class Keeping:
    """The keeper thread's methods; ``Worker`` holds the state they share."""

    id: str
    client: redis.Redis
    key_prefix: str
    queues: dict[str, Queue]
    slots: dict[str, int]
    processed: int
    failed: int
    keep_interval: float
    run_jam_guard: bool
    _lock: threading.Lock
    _runs: dict[tuple[str, str], Run]
    _retired: set[threading.Thread]
    _stop: threading.Event
    _keeper_stop: threading.Event
    _keeper_wake: threading.Event
    _keeper_due: float
    _outages: Outages | None

    def _keep_loop(self) -> None:
        next_keep = 0.0
        next_jam_guard = time.monotonic() + self.keep_interval * 3
        backoff = Backoff("renewing leases and the heartbeat")
        while not self._keeper_stop.is_set():
            now = time.monotonic()
            self._time_out_overdue(now)
            if now >= next_keep:
                try:
                    self._renew_and_beat()
                    if self.run_jam_guard and now >= next_jam_guard and not self._stop.is_set():
                        self._jam_guard()
                        next_jam_guard = now + self.keep_interval * 3
                    backoff.reset()
                    next_keep = now + self.keep_interval
                except (RedisUnavailable, redis.ResponseError) as exc:
                    # Redis away, or the heartbeat refused (out of memory?): a dead keeper
                    # would let every lease lapse, so it waits and tries again.
                    backoff.wait(self._keeper_stop, exc)
                    continue
            with self._lock:
                deadlines = [
                    r.deadline
                    for r in self._runs.values()
                    if r.deadline is not None and r.executing and not r.abandoned
                ]
            self._keeper_due = min([next_keep, *deadlines])
            self._keeper_wake.wait(max(0.0, self._keeper_due - time.monotonic()))
            self._keeper_wake.clear()

    def _time_out_overdue(self, now: float) -> None:
        with self._lock:
            overdue = [
                r
                for r in self._runs.values()
                if r.executing and not r.abandoned and r.deadline is not None and r.deadline <= now
            ]
        for run in overdue:
            with self._lock:  # it may have finished since: then its outcome stands
                if not run.executing or run.abandoned:
                    continue
                run.abandoned = "timed out"
            job, q = run.job, self.queues[run.job.queue]
            error = error_record(
                job,
                JobTimeout(
                    f"Job {job.id!r} ran longer than JOB_TIMEOUT ({q.config.job_timeout} s)"
                ),
                "timeout",
                self.id,
            )
            error["traceback"] = ""
            try:
                verdict = q.fail(job, error)
            except RedisUnavailable as exc:
                verdict = f"not recorded ({exc})"
            self.failed += verdict in ("failed", "rerun")
            logger.warning(
                "%s %s attempt %d timed out after %s s; %s",
                q.name,
                job.id,
                job.attempt,
                q.config.job_timeout,
                verdict,
            )
            if run.child is not None:
                run.child.kill()  # its executor starts a fresh child and carries on
            else:
                # A thread cannot be stopped: it exits once the job returns, and a fresh
                # thread takes its slot meanwhile.
                with self._lock:
                    if run.thread is not None:
                        self._retired.add(run.thread)
                self._start_executor()
            self._free_slot(run)

    def _renew_and_beat(self) -> None:
        with self._lock:
            held: dict[str, list[Run]] = {}
            for run in self._runs.values():
                if not run.abandoned:
                    held.setdefault(run.job.queue, []).append(run)
        for name, runs in held.items():
            try:
                replies = self.queues[name].renew([(r.job.id, r.job.token) for r in runs])
            except RedisUnavailable as exc:
                if self._outages is None:
                    raise
                self._outages.failed(name, exc, f"renewing {len(runs)} leases")
                continue  # the other queues' leases must not lapse meanwhile
            except redis.ResponseError as exc:  # out of memory, a corrupt key: the same
                logger.error("%s: Redis refused to renew %d leases (%s)", name, len(runs), exc)
                continue
            for run, renewed in zip(runs, replies, strict=True):
                # A run that already ended has its ack on the way, which may have landed
                # first: the ack's reply, not this refusal, says how it went.
                if not renewed and not run.abandoned and run.executing:
                    run.abandoned = "lease lost: the job was taken over"
                    logger.warning(
                        "%s %s: lease lost, the job was taken from this run; its "
                        "outcome will be discarded",
                        name,
                        run.job.id,
                    )
        try:
            self._heartbeat(held)
        except RedisUnavailable as exc:
            if self._outages is None:
                raise
            self._outages.failed("{workers}", exc, "the heartbeat")
        else:
            if self._outages is not None:
                self._outages.recovered("{workers}")

    def _heartbeat(self, held: dict[str, list[Run]]) -> None:
        info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(self.queues),
            "concurrency": self.slots,
            "processed": self.processed,
            "failed": self.failed,
            "stopping": self._stop.is_set(),
            "current": [
                {
                    "queue": r.job.queue,
                    "id": r.job.id,
                    "attempt": r.job.attempt,
                    "running_for": round(time.monotonic() - r.started, 3),
                }
                for runs in held.values()
                for r in runs
                if r.executing
            ],
        }
        # Kept as long as the registry remembers the worker, so that a dead worker's host, pid
        # and counts stay visible; whether it is alive is read from its beat (health.py).
        ttl = WORKER_RECORD_TTL_SECONDS
        with connection.reporting_unavailable(self.client):
            next(iter(self.queues.values())).scripts.heartbeat(
                keys=[workers_registry_key(self.key_prefix), worker_key(self.key_prefix, self.id)],
                args=[self.id, ttl, json.dumps(info), int(self.keep_interval * 1000)],
                client=self.client,
            )

    def _jam_guard(self) -> None:
        for q in self.queues.values():
            try:
                recovered = q.jam_guard()
            except RedisUnavailable as exc:
                if self._outages is None:
                    raise
                self._outages.failed(q.name, exc, "the jam guard")
                continue
            except redis.ResponseError as exc:
                logger.error("%s: Redis refused the jam guard (%s)", q.name, exc)
                continue
            for job in recovered:
                logger.warning("%s %s: jammed, %s; %s", q.name, job.id, job.reason, job.action)

    def _deregister(self) -> None:
        with connection.reporting_unavailable(self.client):
            # Not a MULTI: on a Redis Cluster, a plain pipeline of one slot's keys is safe.
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(workers_registry_key(self.key_prefix), self.id)
            pipe.delete(worker_key(self.key_prefix, self.id))
            pipe.execute()
