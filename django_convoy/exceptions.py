"""Exceptions raised by convoy; each message names the bad value and what would be valid."""

from __future__ import annotations


class ConvoyError(Exception):
    """Base class of every convoy error."""


class UnknownQueue(ConvoyError, LookupError):
    """A queue name that is not configured in ``CONVOY["QUEUES"]``."""


class InvalidJob(ConvoyError, ValueError):
    """An id, payload or option that convoy cannot queue; nothing was written."""


class PayloadTooLarge(InvalidJob):
    """A payload whose JSON is larger than the queue's ``MAX_PAYLOAD_BYTES``."""


class RedisUnavailable(ConvoyError, ConnectionError):
    """Redis could not be reached; the message names host and port, never a password."""


class RedisFull(RedisUnavailable):
    """Redis refused a write because it is full (``maxmemory`` reached, ``noeviction``).

    Nothing was written: adding the same job again once Redis has room is safe. A subclass of
    ``RedisUnavailable`` because it asks the same of its caller: try again later.
    """


class NotReplicated(ConvoyError):
    """An add that fewer than ``WAIT_REPLICAS`` replicas confirmed within ``WAIT_TIMEOUT_MS``.

    The primary has it (adding the same id again is safe), but a failover now could lose it.
    """


class UnknownTask(ConvoyError):
    """A job names a task that no installed app registered with ``@convoy_task``."""


class JobJammed(ConvoyError):
    """A job's worker died or stopped renewing its lease more than ``MAX_JAMS`` times."""


class JobTimeout(ConvoyError, TimeoutError):
    """A job ran longer than its timeout (its task's ``timeout``, else its queue's
    ``JOB_TIMEOUT``); a ``TimeoutError``, so ``retry_on=(TimeoutError,)`` retries it."""


class JobExpired(ConvoyError):
    """A job was not started before its task's ``expires``: it is failed, never run."""


class JobCancelled(ConvoyError):
    """The job was cancelled (``Queue.cancel``): raised by ``current_job().check_cancelled()``
    so that a task stops, and kept as the error of a cancelled job."""


class JobNotFound(ConvoyError, LookupError):
    """An action named a job that is not (or no longer) in the state it needs.

    Raised by ``requeue_failed``, it also carries ``requeued``: the ids it did queue.
    """

    requeued: list[str] = []

    @classmethod
    def not_failed(cls, queue: str, now: dict[str, str], queued: list[str]) -> JobNotFound:
        """A requeue that found the ids of ``now`` not failed (each in the state it gives, ""
        for none), after queueing ``queued``."""
        said = {
            job_id: f"it is {state}" if state else "no job has that id"
            for job_id, state in now.items()
        }
        if len(said) == 1 and not queued:
            job_id, state = next(iter(said.items()))
            error = cls(f"Job {job_id!r} of queue {queue!r} is not failed: {state}.")
        else:
            listed = "; ".join(f"{job_id!r}: {state}" for job_id, state in said.items())
            error = cls(
                f"{len(said)} of the jobs to requeue in queue {queue!r} are not failed "
                f"({listed}); the other {len(queued)} were queued."
            )
        error.requeued = queued
        return error


def clause(exc: BaseException) -> str:
    """``exc``'s message without its closing full stop, to go on inside a longer line.

    Convoy's messages are sentences; one that ends a parenthesis it quotes (``...refused.).``)
    loses both full stops, not just the last."""
    text = str(exc).rstrip(".")
    return text[:-2] + ")" if text.endswith(".)") else text
