"""The reporter: it tells Redis how runs ended, many per script call.

Successes are acked in batches; while there is work, the same call claims as many new runs,
and the finished runs' slots pass straight to them (``Claimer.claim_with_acks``). A batch that
cannot be reported (Redis, or in a cluster its queue's node, is away) waits for its queue's next
try; its slots go on to other runs meanwhile.
"""

from __future__ import annotations

import logging
import queue as stdqueue
import time
from typing import Any

import redis

from ..exceptions import RedisUnavailable
from ..ids import shown
from ..queue import ConvoyQueue
from ..signals import job_finished
from ..store import Run
from .backoff import Backoff
from .claimer import Claimer
from .execution import finished, log_fields
from .state import Outcome, WorkerState

logger = logging.getLogger("django_convoy.worker")

REPORT_BATCH = 500


class Reporter:
    """Report finished runs: the reporter thread's loop."""

    def __init__(self, state: WorkerState, claimer: Claimer):
        self.state = state
        self.claimer = claimer

    def loop(self) -> None:
        """Report outcomes until the last one is in (``None`` on ``done``) and reported."""
        state = self.state
        # Outcomes that could not be reported (Redis, or in a cluster their queue's node, was
        # away) wait for their queue's next try, which backs off per queue: the other queues'
        # outcomes go on being reported meanwhile.
        pending: list[Outcome] = []
        backoffs = {name: Backoff(f"{name}: reporting outcomes") for name in state.queues}
        retry_at = dict.fromkeys(state.queues, 0.0)
        stopping = False
        while not stopping or pending:
            next_try = min((retry_at[o.active.run.queue] for o in pending), default=None)
            wait = None if next_try is None else max(0.0, next_try - time.monotonic())
            if stopping:  # nothing new will come: retry the pending outcomes in their time
                if state.abort.wait(wait or 0.0):
                    return
                new: list[Outcome] = []
            else:
                new, stopping = self._take_outcomes(wait)
            now = time.monotonic()
            batch, held = [], []
            for outcome in pending + new:
                (held if retry_at[outcome.active.run.queue] > now else batch).append(outcome)
            for outcome in held:  # the run is over: its slot goes on while the outcome waits
                state.free_slot(outcome.active)
            if batch:
                tried = {outcome.active.run.queue for outcome in batch}
                try:
                    self.report(batch)
                except RedisUnavailable as exc:
                    if state.abort.is_set():
                        return
                    for outcome in batch:
                        state.free_slot(outcome.active)
                    for name in {outcome.active.run.queue for outcome in batch}:
                        retry_at[name] = time.monotonic() + backoffs[name].next(exc)
                except redis.ResponseError as exc:
                    # Retrying cannot help a script that errors on a corrupt key; the runs'
                    # leases expire and the jam guard takes them back.
                    logger.error(
                        "could not report %d runs (%s); is a convoy key corrupt?", len(batch), exc
                    )
                    for outcome in batch:
                        state.forget(outcome.active)
                    batch.clear()
                for name in tried - {outcome.active.run.queue for outcome in batch}:
                    backoffs[name].reset()
            pending = held + batch  # report left the unreported ones in batch

    def _take_outcomes(self, timeout: float | None) -> tuple[list[Outcome], bool]:
        """Up to REPORT_BATCH finished runs, waiting ``timeout`` seconds for the first (None:
        until one comes); and whether the last came in (the worker is stopping)."""
        taken: list[Outcome] = []
        try:
            item = self.state.done.get(timeout=timeout)
        except stdqueue.Empty:
            return taken, False
        while item is not None:
            taken.append(item)
            if len(taken) == REPORT_BATCH:
                return taken, False
            try:
                item = self.state.done.get_nowait()
            except stdqueue.Empty:
                return taken, False
        return taken, True

    def report(self, batch: list[Outcome]) -> None:
        """Report ``batch``; when Redis is away, leave in it what was not reported, for the
        retry (reporting a run twice would get it refused as stale), and raise."""
        state = self.state
        acks: dict[str, list[Outcome]] = {}
        unreported: list[Outcome] = []
        failure: RedisUnavailable | None = None
        for name in {outcome.active.run.queue for outcome in batch}:
            self.claimer.ahead.observed(
                name, [o.seconds for o in batch if o.active.run.queue == name and o.active.began]
            )
        for outcome in batch:
            active = outcome.active
            if active.abandoned and not active.began:  # handed back unstarted: nothing to tell
                state.forget(active)
            elif active.abandoned:
                logger.warning(
                    "%s %s: outcome not reported, %s (%.1f ms)",
                    active.run.queue,
                    shown(active.run.id),
                    active.abandoned,
                    outcome.seconds * 1000,
                )
                state.forget(active)
            elif outcome.error is None:
                acks.setdefault(active.run.queue, []).append(outcome)
            else:
                try:
                    self._report_failure(outcome)
                except RedisUnavailable as exc:
                    unreported.append(outcome)
                    failure = failure or exc
        for name, outcomes in acks.items():
            try:
                replies, _ = self.claimer.claim_with_acks(
                    state.queues[name], [o.active for o in outcomes]
                )
            except RedisUnavailable as exc:
                unreported += outcomes
                failure = failure or exc
                continue
            self._log_acks(name, outcomes, replies)
        batch[:] = unreported
        if failure is not None:
            raise failure

    def _log_acks(self, name: str, outcomes: list[Outcome], replies: list[int]) -> None:
        runs = [(outcome.active.run, outcome.seconds) for outcome in outcomes]
        done = log_acks(name, runs, replies)
        self.state.forget_all([outcome.active for outcome in outcomes])
        self.state.count(processed=done)
        if job_finished.receivers:  # after the bookkeeping: a slow receiver delays only these
            announce_acks(runs, replies, self.state.id)

    def _report_failure(self, outcome: Outcome) -> None:
        assert outcome.error is not None
        run = outcome.active.run
        verdict = report_failure(
            self.state.queues[run.queue], run, outcome.error, outcome.final, outcome.seconds
        )
        if verdict != "stale":
            self.state.count(failed=verdict != "retry")
        self.state.forget(outcome.active)
        ended = (
            "failed" if verdict == "rerun" else verdict
        )  # a rerun was queued: failed all the same
        finished(run, self.state.id, ended, outcome.seconds, outcome.error)


def log_acks(name: str, runs: list[tuple[Run, float]], replies: list[int]) -> int:
    """Log how the acks of ``runs`` (each with its seconds) went; return how many were done.
    Shared by the reporter and the children of a process pool, which ack their own runs."""
    done = 0
    verbose = logger.isEnabledFor(logging.INFO)
    for (run, seconds), reply in zip(runs, replies, strict=True):
        if reply:
            done += 1
            if verbose:
                logger.info(
                    "%s %s attempt %d done in %.1f ms%s",
                    name,
                    shown(run.id),
                    run.attempt,
                    seconds * 1000,
                    "; rerun queued" if reply == 2 else "",
                    extra=log_fields(run, seconds, "done"),
                )
        else:
            logger.warning(
                "%s %s: ack refused: this run no longer holds the job (its lease "
                "expired and it was taken over, or it was removed; or this same ack "
                "landed before and its reply was lost)",
                name,
                shown(run.id),
                extra=log_fields(run, seconds, "stale"),
            )
    return done


def announce_acks(runs: list[tuple[Run, float]], replies: list[int], worker_id: str) -> None:
    """Send ``job_finished`` for acked runs."""
    for (run, seconds), reply in zip(runs, replies, strict=True):
        finished(run, worker_id, "done" if reply else "stale", seconds)


def report_failure(
    q: ConvoyQueue, run: Run, error: dict[str, Any], final: bool | None, seconds: float
) -> str:
    """Tell Redis that ``run`` failed and log it; return the verdict ('retry', 'failed',
    'rerun' or 'stale'). Raise ``RedisUnavailable`` if Redis is away (nothing was written)."""
    verdict = q.fail(run, error, final=final)
    extra = log_fields(run, seconds, verdict)
    if verdict == "stale":
        logger.warning(
            "%s %s: failure report refused, the job was taken from this run",
            run.queue,
            shown(run.id),
            extra=extra,
        )
    else:
        logger.warning(
            "%s %s attempt %d failed in %.1f ms (%s: %s); %s",
            run.queue,
            shown(run.id),
            run.attempt,
            seconds * 1000,
            error["type"],
            error["message"],
            {"retry": "will retry", "failed": "moved to failed", "rerun": "rerun queued"}[verdict],
            extra=extra,
        )
    return verdict
