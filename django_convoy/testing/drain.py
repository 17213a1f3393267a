"""Run the queued jobs of a queue here and now, one at a time, the way a worker runs them.

A test adds jobs through the real API (``enqueue()``, ``add_job``, a Django task), drains, and
asserts on what happened. Each job goes through the worker's own steps, against Redis: the
claim script (which promotes due scheduled jobs first), ``execute`` (which finds the job's code
and runs it with ``current_job()`` set, as in a worker), then the ack or fail script. So unique
ids, dedupe, retries and failed jobs behave as in production. What needs a worker's threads is
left out: no lease is renewed and no ``JOB_TIMEOUT`` is enforced, since the job runs in the
caller's thread until it returns. And as Django's test client does around a request, a drain
leaves out the connection clean-up that ``execute`` does around each job, so that the caller's
database connection, and a ``TestCase``'s transaction on it, survive it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

# Convoy's internals that a worker uses to run one job, imported in this one place.
from django_convoy import get_queue
from django_convoy.conf import get_config
from django_convoy.worker.execution import execute, finished


@dataclass(frozen=True)
class DrainResult:
    """The job ids whose runs :func:`drain` ended, each tuple in the order the runs ended.

    ``processed``: acked. ``failed``: failed for good (moved to failed, or a rerun asked for
    meanwhile was queued instead). ``retried``: scheduled again for a retry (``MAX_ATTEMPTS``);
    the retry runs in this drain if it came due before the queue ran dry, and then its id shows
    twice. ``errors``: each failed or retried id's latest error, as ``"type: message"``.
    """

    processed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    retried: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)

    def __add__(self, other: DrainResult) -> DrainResult:
        return DrainResult(
            self.processed + other.processed,
            self.failed + other.failed,
            self.retried + other.retried,
            {**self.errors, **other.errors},
        )

    def __bool__(self) -> bool:
        """Whether any run ended."""
        return bool(self.processed or self.failed or self.retried)


def drain(queue_name: str, *, max_jobs: int | None = None) -> DrainResult:
    """Run the jobs queued on ``queue_name`` in this thread until none is queued.

    Jobs that the jobs add to this queue run too. ``max_jobs`` stops after that many runs (a
    job that queues itself again would otherwise keep the drain going). A paused queue hands
    out nothing, as it does to workers, and scheduled jobs that are not due yet stay scheduled.
    """
    if max_jobs is not None and (isinstance(max_jobs, bool) or max_jobs < 0):
        raise ValueError(f"max_jobs must be None or an int >= 0, not {max_jobs!r}.")
    queue = get_queue(queue_name)
    worker_id = f"drain.{socket.gethostname()}.{os.getpid()}.{os.urandom(3).hex()}"
    processed: list[str] = []
    failed: list[str] = []
    retried: list[str] = []
    errors: dict[str, str] = {}
    ran = 0
    while max_jobs is None or ran < max_jobs:
        batch = queue.claim(1, worker_id)
        if not batch.runs:
            break
        for run in batch.runs:
            ran += 1
            error, final, seconds = execute(run, worker_id, close_connections=False)
            if error is None:
                acked = queue.ack([(run.id, run.token)])[0]  # 0: the job was removed meanwhile
                finished(run, worker_id, "done" if acked else "stale", seconds)
                if acked:
                    processed.append(run.id)
                continue
            verdict = queue.fail(run, error, final=final)
            finished(run, worker_id, "failed" if verdict == "rerun" else verdict, seconds, error)
            if verdict == "stale":
                continue
            (retried if verdict == "retry" else failed).append(run.id)
            errors[run.id] = f"{error['type']}: {error['message']}"
    return DrainResult(tuple(processed), tuple(failed), tuple(retried), errors)


def drain_all(*, max_jobs: int | None = None) -> dict[str, DrainResult]:
    """Drain every configured queue, again and again until a round runs nothing.

    Return each queue's result, by name. Repeating the rounds lets a job on one queue add jobs
    to another. ``max_jobs`` bounds the runs of each queue over all the rounds.
    """
    results = {name: DrainResult() for name in get_config().queues}
    while True:
        ran = False
        for name in results:
            left = None if max_jobs is None else max_jobs - _runs(results[name])
            if left == 0:
                continue
            result = drain(name, max_jobs=left)
            results[name] += result
            ran = ran or bool(result)
        if not ran:
            return results


def _runs(result: DrainResult) -> int:
    return len(result.processed) + len(result.failed) + len(result.retried)
