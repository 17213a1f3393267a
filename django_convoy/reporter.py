"""The reporter's part of a ``Worker``: it tells Redis how runs ended, many per script call.

Successes are acked in batches; while there is work, the same call claims as many new runs,
and the finished runs' slots pass straight to them (``ack_claim``). A batch that cannot be
reported (Redis, or in a cluster its queue's node, is away) waits for its queue's next try; its
slots go on to other runs meanwhile.
"""

from __future__ import annotations

import logging
import queue as stdqueue
import threading
import time
from typing import TYPE_CHECKING

import redis

from .exceptions import RedisUnavailable
from .runs import Backoff, Outcome, Run

if TYPE_CHECKING:
    from .queue import Queue
    from .wake import Outages

logger = logging.getLogger("django_convoy.worker")

REPORT_BATCH = 500


class Reporting:
    """The reporter thread's methods; ``Worker`` holds the state they share."""

    queues: dict[str, Queue]
    processed: int
    failed: int
    _done: stdqueue.SimpleQueue[Outcome | None]
    _abort: threading.Event
    _claiming: threading.Lock
    _unsure: set[str]
    _outages: Outages | None
    id: str

    def _report_loop(self) -> None:
        # Outcomes that could not be reported (Redis, or in a cluster their queue's node, was
        # away) wait for their queue's next try, which backs off per queue: the other queues'
        # outcomes go on being reported meanwhile.
        pending: list[Outcome] = []
        backoffs = {name: Backoff(f"{name}: reporting outcomes") for name in self.queues}
        retry_at = dict.fromkeys(self.queues, 0.0)
        stopping = False
        while not stopping or pending:
            next_try = min((retry_at[o.run.job.queue] for o in pending), default=None)
            wait = None if next_try is None else max(0.0, next_try - time.monotonic())
            if stopping:  # nothing new will come: retry the pending outcomes in their time
                if self._abort.wait(wait or 0.0):
                    return
                new: list[Outcome] = []
            else:
                new, stopping = self._take_outcomes(wait)
            now = time.monotonic()
            batch, held = [], []
            for outcome in pending + new:
                (held if retry_at[outcome.run.job.queue] > now else batch).append(outcome)
            for outcome in held:  # the run is over: its slot goes on while the outcome waits
                self._free_slot(outcome.run)
            if batch:
                tried = {outcome.run.job.queue for outcome in batch}
                try:
                    self._report(batch)
                except RedisUnavailable as exc:
                    if self._abort.is_set():
                        return
                    for outcome in batch:
                        self._free_slot(outcome.run)
                    for name in {outcome.run.job.queue for outcome in batch}:
                        retry_at[name] = time.monotonic() + backoffs[name].next(exc)
                except redis.ResponseError as exc:
                    # Retrying cannot help a script that errors on a corrupt key; the runs'
                    # leases expire and the jam guard takes them back.
                    logger.error(
                        "could not report %d runs (%s); is a convoy key corrupt?", len(batch), exc
                    )
                    for outcome in batch:
                        self._forget(outcome.run)
                    batch.clear()
                for name in tried - {outcome.run.job.queue for outcome in batch}:
                    backoffs[name].reset()
            pending = held + batch  # _report left the unreported ones in batch

    def _take_outcomes(self, timeout: float | None) -> tuple[list[Outcome], bool]:
        """Up to REPORT_BATCH finished runs, waiting ``timeout`` seconds for the first (None:
        until one comes); and whether the last came in (the worker is stopping)."""
        taken: list[Outcome] = []
        try:
            item = self._done.get(timeout=timeout)
        except stdqueue.Empty:
            return taken, False
        while item is not None:
            taken.append(item)
            if len(taken) == REPORT_BATCH:
                return taken, False
            try:
                item = self._done.get_nowait()
            except stdqueue.Empty:
                return taken, False
        return taken, True

    def _report(self, batch: list[Outcome]) -> None:
        # When Redis is away, ``batch`` keeps what was not reported, for the retry: reporting
        # a run twice would get it refused as stale. (In a cluster, one node may be away.)
        acks: dict[str, list[Outcome]] = {}
        unreported: list[Outcome] = []
        failure: RedisUnavailable | None = None
        for outcome in batch:
            run = outcome.run
            if run.abandoned:
                logger.warning(
                    "%s %s: result discarded after %.1f ms (%s)",
                    run.job.queue,
                    run.job.id,
                    outcome.seconds * 1000,
                    run.abandoned,
                )
                self._forget(run)
            elif outcome.error is None:
                acks.setdefault(run.job.queue, []).append(outcome)
            else:
                try:
                    self._report_failure(outcome)
                except RedisUnavailable as exc:
                    unreported.append(outcome)
                    failure = failure or exc
        for name, outcomes in acks.items():
            try:
                replies = self._ack(self.queues[name], outcomes)
            except RedisUnavailable as exc:
                unreported += outcomes
                failure = failure or exc
                continue
            for outcome, reply in zip(outcomes, replies, strict=True):
                job = outcome.run.job
                if reply:
                    self.processed += 1
                    logger.info(
                        "%s %s attempt %d done in %.1f ms%s",
                        name,
                        job.id,
                        job.attempt,
                        outcome.seconds * 1000,
                        "; rerun queued" if reply == 2 else "",
                    )
                else:
                    logger.warning(
                        "%s %s: ack refused: this run no longer holds the job (its lease "
                        "expired and it was taken over, or it was removed; or this same ack "
                        "landed before and its reply was lost)",
                        name,
                        job.id,
                    )
                self._forget(outcome.run)
        batch[:] = unreported
        if failure is not None:
            raise failure

    def _ack(self, q: Queue, outcomes: list[Outcome]) -> list[int]:
        """Ack ``outcomes``; while there may be more work, claim as many runs in the same call."""
        finished = [o.run for o in outcomes]
        acks = [(run.job.id, run.job.token) for run in finished]
        with self._claiming:
            wanted = self._claimable(q.name, sum(run.slot_held for run in finished))
            if wanted and not (self._outages is not None and self._outages.skipping(q.name)):
                try:
                    replies, batch = q.ack_and_claim(acks, wanted, self.id, wait_ms=self._wait_ms())
                except RedisUnavailable:
                    self._unsure.add(q.name)  # the claim's runs may be held, unknown to us
                    raise
                self._accept(q, batch, finished)
                return replies
        return q.ack(acks)

    def _report_failure(self, outcome: Outcome) -> None:
        job = outcome.run.job
        verdict = self.queues[job.queue].fail(job, outcome.error, final=outcome.final)
        if verdict == "stale":
            logger.warning(
                "%s %s: failure report refused, the job was taken from this run", job.queue, job.id
            )
        else:
            self.failed += verdict != "retry"
            logger.warning(
                "%s %s attempt %d failed in %.1f ms (%s: %s); %s",
                job.queue,
                job.id,
                job.attempt,
                outcome.seconds * 1000,
                outcome.error["type"],
                outcome.error["message"],
                {"retry": "will retry", "failed": "moved to failed", "rerun": "rerun queued"}[
                    verdict
                ],
            )
        self._forget(outcome.run)

    def _forget(self, run: Run) -> None:
        """The run's outcome is reported (or will never be): free its slot, stop tracking it."""
        self._free_slot(run)
        with self._lock:
            if self._runs.get((run.job.queue, run.job.id)) is run:
                del self._runs[(run.job.queue, run.job.id)]
