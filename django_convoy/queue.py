"""``Queue``: the Python face of one configured queue; every state change is one Lua script."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from . import connection, replication
from .conf import QueueConfig, get_config
from .exceptions import InvalidJob, JobNotFound, PayloadTooLarge, UnknownQueue
from .health import worker_alive
from .job import (
    AddResult,
    ClaimedJob,
    DataMarks,
    Job,
    RecoveredJob,
    decode_body,
    encode_body,
    from_ms,
)
from .keys import error_log_key, queue_keys, worker_key
from .scripts import scripts_for

IF_PROCESSING = ("ignore", "rerun")
MAX_ID_BYTES = 1024
ERROR_LOG_KEEP = 1000
ERROR_LOG_TTL_SECONDS = 7 * 24 * 3600
RETRY_BACKOFF_CAP = 3600.0
BATCH = 1000


def get_queue(name: str) -> Queue:
    """Return the configured queue called ``name``."""
    config = get_config()
    try:
        queue_config = config.queues[name]
    except (KeyError, TypeError):
        raise UnknownQueue(
            f"No queue {name!r} in CONVOY['QUEUES']; configured queues: "
            f"{', '.join(sorted(config.queues))}."
        ) from None
    return Queue(queue_config, config.key_prefix, connection.get_client())


def normalise_id(job_id: Any) -> str:
    """Return a job id as the string convoy stores; raise InvalidJob for anything else."""
    if isinstance(job_id, bool) or not isinstance(job_id, str | int):
        raise InvalidJob(f"A job id must be a str or an int, not {type(job_id).__name__}.")
    if isinstance(job_id, int) and abs(job_id) >= 10**MAX_ID_BYTES:
        raise InvalidJob(
            f"A job id must be 1 to {MAX_ID_BYTES} bytes of UTF-8; this int is longer."
        )
    text = str(job_id)
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if not 1 <= size <= MAX_ID_BYTES:
        raise InvalidJob(f"A job id must be 1 to {MAX_ID_BYTES} bytes of UTF-8, not {size}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidJob(f"Job id {text!r} is not valid UTF-8: {exc.reason}.") from None
    return text


# One encoder for every payload: json.dumps with options other than its defaults builds a new
# JSONEncoder on each call, a visible share of an add's client time.
PAYLOAD_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_payload(payload: Any, limit: int, queue: str) -> str:
    """Serialise a payload to compact JSON, enforcing the queue's size limit."""
    try:
        text = PAYLOAD_ENCODER.encode(payload)
    except (TypeError, ValueError) as exc:
        raise InvalidJob(f"The payload is not JSON-serialisable: {exc}.") from None
    except RecursionError:
        raise InvalidJob("The payload is nested too deeply to serialise as JSON.") from None
    size = len(text.encode("utf-8"))
    if size > limit:
        raise PayloadTooLarge(
            f"The payload is {size} bytes of JSON; queue {queue!r} accepts at most {limit} "
            "(MAX_PAYLOAD_BYTES)."
        )
    return text


def check_add_options(if_processing: str, delay: float, priority: int) -> None:
    """Raise InvalidJob for an option add_job cannot honour."""
    if if_processing not in IF_PROCESSING:
        raise InvalidJob(f"if_processing must be one of {IF_PROCESSING}, not {if_processing!r}.")
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
        raise InvalidJob(f"delay must be a number of seconds >= 0, not {delay!r}.")
    if isinstance(priority, bool) or not isinstance(priority, int) or not -100 <= priority <= 100:
        raise InvalidJob(f"priority must be an int from -100 to 100, not {priority!r}.")


def retry_delay(attempt: int, backoff: float) -> float:
    """Seconds before retry number ``attempt``: doubled per attempt, jittered, at most an hour."""
    ceiling = min(RETRY_BACKOFF_CAP, backoff * 2 ** min(attempt - 1, 32))
    return ceiling * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class ClaimBatch:
    """What one claim returned: the runs, and when the next scheduled job is due."""

    jobs: list[ClaimedJob]
    now_ms: int
    next_due_ms: int | None
    paused: bool
    marks: DataMarks
    waiting: bool  # the worker's request to be handed jobs stands (claim's wait_ms)


class Queue:
    """One named queue. Cheap to create; holds no state beyond its settings and keys."""

    def __init__(self, config: QueueConfig, key_prefix: str, client: redis.Redis):
        self.name = config.name
        self.config = config
        self.key_prefix = key_prefix
        self.keys = queue_keys(key_prefix, config.name)
        self.client = client
        self.scripts = scripts_for(client)

    def __repr__(self) -> str:
        return f"<Queue {self.name}>"

    def _run(
        self, script: Any, args: Sequence[Any], extra_keys: Sequence[str] = (), client: Any = None
    ) -> Any:
        with connection.reporting_unavailable(self.client):
            if client is None and (wait := replication.wait_for(self.scripts, script)):
                keys = (*self.keys, *extra_keys)
                return replication.run_and_wait(self.client, self.scripts, script, keys, args, wait)
            return script(keys=(*self.keys, *extra_keys), args=args, client=client or self.client)

    # -- publishing -------------------------------------------------------------------------

    def add_job(
        self,
        job_id: str | int,
        payload: Any = None,
        *,
        if_processing: str = "ignore",
        delay: float = 0,
        priority: int = 0,
    ) -> AddResult:
        """Queue ``job_id`` unless it is already queued, scheduled or processing."""
        payload_json = encode_payload(payload, self.config.max_payload_bytes, self.name)
        return self.add_encoded(
            None,
            ((job_id, payload_json),),
            if_processing=if_processing,
            delay=delay,
            priority=priority,
        )[0]

    def add_jobs(
        self,
        jobs: Iterable[Any],
        *,
        if_processing: str = "ignore",
        delay: float = 0,
        priority: int = 0,
    ) -> list[AddResult]:
        """Add many jobs in one round trip; each is an id or an ``(id, payload)`` pair."""
        entries = []
        for job in jobs:
            job_id, payload = job if isinstance(job, tuple) else (job, None)
            entries.append(
                (job_id, encode_payload(payload, self.config.max_payload_bytes, self.name))
            )
        return self.add_encoded(
            None, entries, if_processing=if_processing, delay=delay, priority=priority
        )

    def add_encoded(
        self,
        task: str | None,
        entries: Sequence[tuple[Any, str]],
        *,
        if_processing: str = "ignore",
        delay: float = 0,
        priority: int = 0,
    ) -> list[AddResult]:
        """Add (id, payload JSON) entries for ``task``: validated first, then one script call
        per ``BATCH`` entries."""
        check_add_options(if_processing, delay, priority)
        ids = [normalise_id(job_id) for job_id, _ in entries]
        pairs: list[str] = []
        for job_id, (_, payload_json) in zip(ids, entries, strict=True):
            pairs += (job_id, encode_body(task, payload_json))
        options = [if_processing, int(delay * 1000), priority]
        results: list[AddResult] = []
        for start in range(0, len(pairs), 2 * BATCH):
            chunk = pairs if len(pairs) <= 2 * BATCH else pairs[start : start + 2 * BATCH]
            reply = self._run(self.scripts.add, options + chunk)
            offset = len(results)
            for i in range(0, len(reply), 2):
                results.append(AddResult(ids[offset + i // 2], bool(reply[i]), reply[i + 1]))
        return results

    # -- reading ----------------------------------------------------------------------------

    def get_job(self, job_id: str | int) -> Job | None:
        """Return a snapshot of the job with this id, or None if no job has it."""
        job_id = normalise_id(job_id)
        reply = self._run(self.scripts.inspect, [job_id])
        if not reply[1]:
            return None
        _, state, score, body, counters, run, error, rerun = reply
        try:
            task, payload = decode_body(body)
        except ValueError:
            task, payload = None, body
        enqueued, attempts, jams, priority = (counters.split("|") + ["0"] * 4)[:4]
        token, started, worker = (run.split("|", 2) + ["", "", ""])[:3] if run else ("", "", "")
        try:
            last_error = json.loads(error) if error else None
        except ValueError:
            last_error = {"type": "unknown", "message": error, "traceback": ""}
        return Job(
            id=job_id,
            payload=payload,
            state=state,
            attempts=_int(attempts),
            enqueued_at=from_ms(enqueued),
            started_at=from_ms(started),
            worker=worker or None,
            last_error=last_error,
            queue=self.name,
            task=task,
            priority=_int(priority),
            jams=_int(jams),
            state_since_or_until=None if state == "queued" else from_ms(score),
            rerun_pending=bool(rerun),
        )

    def stats(self) -> dict[str, int]:
        """Return the counts of each state and the totals, split at Redis's now."""
        reply = self._run(self.scripts.stats, [])
        names = (
            "queued",
            "processing",
            "jammed",
            "scheduled",
            "failed",
            "processed_total",
            "failed_total",
        )
        return dict(zip(names, (int(v) for v in reply[1:8]), strict=True))

    def is_paused(self) -> bool:
        """Whether workers are told not to claim from this queue."""
        with connection.reporting_unavailable(self.client):
            return bool(self.client.exists(self.keys.paused))

    # -- operating --------------------------------------------------------------------------

    def jam_guard(self, *, drop: bool = False, limit: int = BATCH) -> list[RecoveredJob]:
        """Recover every jammed job now (or drop them, releasing their ids); return them."""
        recovered: list[RecoveredJob] = []
        while True:
            reply = self._run(
                self.scripts.jamguard,
                [
                    "drop" if drop else "recover",
                    self.config.max_jams,
                    limit,
                    int(self.config.failed_ttl * 1000),
                    ERROR_LOG_KEEP,
                    ERROR_LOG_TTL_SECONDS,
                ],
                extra_keys=[self._error_log_key()],
            )
            rows = [reply[i : i + 7] for i in range(0, len(reply), 7)]
            alive = self._workers_alive([row[2] for row in rows])
            recovered += (
                RecoveredJob(
                    id=row[0],
                    queue=self.name,
                    action=row[1],
                    worker=row[2],
                    started_at=from_ms(row[3]),
                    lease_expired_at=from_ms(row[4]),
                    attempts=int(row[5]),
                    jams=int(row[6]),
                    worker_gone=not alive.get(row[2], False),
                )
                for row in rows
            )
            if len(rows) < limit:
                return recovered

    def jammed_jobs(self, limit: int = BATCH) -> list[Job]:
        """List jammed jobs without changing anything (the jam guard's dry run)."""
        with connection.reporting_unavailable(self.client):
            now_s, now_us = self.client.time()
            now_ms = now_s * 1000 + now_us // 1000
            ids = self.client.zrangebyscore(
                self.keys.processing, "-inf", f"({now_ms}", start=0, num=limit
            )
        return [job for job in map(self.get_job, ids) if job is not None]

    def purge(self) -> int:
        """Remove every waiting (queued and scheduled) job, releasing their ids; return how many."""
        total = 0
        while removed := self._run(self.scripts.purge, [BATCH]):
            total += removed
        return total

    def delete_job(self, job_id: str | int) -> str:
        """Delete a queued, scheduled or failed job; return the state it was in."""
        return self._remove(job_id, "queued,scheduled,failed")

    def release_jammed(self, job_id: str | int) -> str:
        """Drop one jammed job, releasing its id (what ``--drop`` does for all of them)."""
        return self._remove(job_id, "jammed")

    def _remove(self, job_id: str | int, allowed: str) -> str:
        job_id = normalise_id(job_id)
        outcome, state = self._run(self.scripts.remove, [job_id, allowed])
        if outcome != "removed":
            now = f"it is {state}" if state else "no job has that id"
            raise JobNotFound(
                f"Job {job_id!r} of queue {self.name!r} is not "
                f"{allowed.replace(',', ' or ')}: {now}."
            )
        return state

    def requeue_failed(self, job_ids: Iterable[str | int] | None = None) -> list[str]:
        """Give failed jobs (these, or all of them) a fresh run; return the ids queued."""
        if job_ids is not None:
            ids = [normalise_id(job_id) for job_id in job_ids]
            return [
                job_id
                for start in range(0, len(ids), BATCH)
                for job_id in self._run(self.scripts.requeue, [BATCH, *ids[start : start + BATCH]])
            ]
        queued: list[str] = []
        while batch := self._run(self.scripts.requeue, [BATCH]):
            queued += batch
        return queued

    def pause(self) -> None:
        """Stop workers claiming from this queue; adds are still accepted."""
        with connection.reporting_unavailable(self.client):
            self.client.set(self.keys.paused, "1")

    def resume(self) -> None:
        """Let workers claim from this queue again."""
        self._run(self.scripts.resume, [])

    # -- used by workers --------------------------------------------------------------------

    def claim(self, max_jobs: int, worker_id: str, *, wait_ms: int = 0) -> ClaimBatch:
        """Promote due scheduled jobs, then take up to ``max_jobs`` runs for ``worker_id``,
        after any handed to it while it waited. ``wait_ms``: if the queue runs dry first,
        ``worker_id`` will block on this queue's wake list and its inbox
        (:func:`~django_convoy.keys.inbox_key`), and asks for that long to be handed the jobs
        added meanwhile, as many as the room left."""
        return self._claim_batch(
            self._run(self.scripts.claim, self._claim_args(max_jobs, worker_id, wait_ms))
        )

    def ack_and_claim(
        self, runs: Sequence[tuple[str, str]], max_jobs: int, worker_id: str, *, wait_ms: int = 0
    ) -> tuple[list[int], ClaimBatch]:
        """``ack(runs)`` and ``claim(max_jobs, worker_id, wait_ms=...)`` in one round trip."""
        args = [
            *self._claim_args(max_jobs, worker_id, wait_ms),
            *(part for run in runs for part in run),
        ]
        acks, claimed = self._run(self.scripts.ack_claim, args)
        return acks, self._claim_batch(claimed)

    def _claim_args(self, max_jobs: int, worker_id: str, wait_ms: int) -> list[Any]:
        return [max_jobs, worker_id, int(self.config.lease * 1000), BATCH, wait_ms]

    def _claim_batch(self, reply: list[Any]) -> ClaimBatch:
        jobs = [
            ClaimedJob(self.name, reply[i], reply[i + 1], int(reply[i + 2]), str(reply[i + 3]))
            for i in range(6, len(reply), 4)
        ]
        next_due = int(reply[1])
        return ClaimBatch(
            jobs,
            int(reply[0]),
            None if next_due < 0 else next_due,
            bool(reply[2]),
            DataMarks(int(reply[3]), reply[4]),
            bool(reply[5]),
        )

    def handed_run(self, message: str) -> ClaimedJob:
        """The run in a message of this queue's inbox of a worker (see ``claim``'s wait_ms)."""
        job_id, body, attempt, token = json.loads(message)
        return ClaimedJob(self.name, job_id, body, int(attempt), str(token))

    def data_marks(self) -> DataMarks:
        """Read the queue's sequence counter and birth time (see ``health.DataMarkWatch``)."""
        with connection.reporting_unavailable(self.client):
            pipe = self.client.pipeline(transaction=False)
            pipe.get(self.keys.seq)
            pipe.hget(self.keys.stats, "born")
            sequence, born = pipe.execute()
        return DataMarks(int(sequence or 0), born or "")

    def ack(self, runs: Sequence[tuple[str, str]]) -> list[int]:
        """End successful runs; per run 1 released, 2 rerun queued, 0 refused (stale)."""
        return self._run(self.scripts.ack, [part for run in runs for part in run])

    def fail(self, run: ClaimedJob, error: dict[str, Any], *, final: bool | None = None) -> str:
        """End a failed run: 'retry', 'failed', 'rerun', or 'stale' when it was taken meanwhile."""
        if final is None:
            final = run.attempt >= self.config.max_attempts
        delay_ms = -1 if final else int(retry_delay(run.attempt, self.config.retry_backoff) * 1000)
        return self._run(
            self.scripts.fail,
            [
                run.id,
                run.token,
                json.dumps(error),
                delay_ms,
                int(self.config.failed_ttl * 1000),
                ERROR_LOG_KEEP,
                ERROR_LOG_TTL_SECONDS,
            ],
            extra_keys=[self._error_log_key()],
        )

    def renew(self, runs: Sequence[tuple[str, str]]) -> list[int]:
        """Extend the leases of runs; per run 1 renewed, 0 refused (taken meanwhile)."""
        args = [int(self.config.lease * 1000), *(part for run in runs for part in run)]
        return self._run(self.scripts.renew, args)

    def handback(self, runs: Sequence[tuple[str, str]], *, started: bool = True) -> list[int]:
        """Queue unfinished runs again (worker shutdown); per run 1 queued, 0 refused.
        ``started=False``: none of them began, so each gives its attempt back."""
        args = ["started" if started else "unstarted", *(part for run in runs for part in run)]
        return self._run(self.scripts.handback, args)

    def release_orphans(self, worker_id: str, known_tokens: Iterable[str]) -> list[str]:
        """Queue again the runs held for ``worker_id`` whose tokens it does not know (a claim
        whose reply was lost); return their ids."""
        return self._run(self.scripts.release_orphans, [worker_id, *known_tokens])

    def still_owns(self, job_id: str, token: str) -> bool:
        """Whether the run with ``token`` still holds ``job_id``."""
        with connection.reporting_unavailable(self.client):
            run = self.client.hget(self.keys.run, job_id)
        return run is not None and run.split("|", 1)[0] == token

    def _error_log_key(self) -> str:
        return error_log_key(self.key_prefix, self.name, time.strftime("%Y-%m-%d", time.gmtime()))

    def _workers_alive(self, worker_ids: Iterable[str]) -> dict[str, bool]:
        """Which of these workers still send heartbeats."""
        ids = sorted(set(filter(None, worker_ids)))
        if not ids:
            return {}
        with connection.reporting_unavailable(self.client):
            pipe = self.client.pipeline(transaction=False)
            pipe.time()
            for worker_id in ids:
                pipe.hmget(worker_key(self.key_prefix, worker_id), "beat", "every")
            (seconds, micros), *beats = pipe.execute()
        now_ms = seconds * 1000 + micros // 1000
        return {
            worker_id: worker_alive(now_ms, beat, every)
            for worker_id, (beat, every) in zip(ids, beats, strict=True)
        }


def _int(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0
