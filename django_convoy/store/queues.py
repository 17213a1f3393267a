"""``QueueStore``: the one owner of a queue's data in Redis.

Every script call of a queue goes through ``QueueStore.call`` (and pipelines through
``QueueStore.pipelined``): it names the queue's keys, turns connection errors into
``RedisUnavailable``, waits for replicas after a write when ``WAIT_REPLICAS`` asks, and decodes
the reply with the script's decoder. Callers above it (``Queue``, the worker, the dashboard, the
Tasks backend) see records, never raw replies or key names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis

from ..connection import reporting_unavailable
from . import replication, scripts
from .fleet import Fleet
from .keys import (
    error_log_key,
    inbox_key,
    job_result_key,
    progress_key,
    queue_keys,
    task_result_key,
)
from .records import (
    ClaimBatch,
    DataMarks,
    JamGuardRound,
    Job,
    Progress,
    RecoveredJob,
    Run,
    from_ms,
    to_int,
)
from .replies import handed_run
from .scripts import SPECS, ScriptSpec, scripts_for, unflagging

ERROR_LOG_KEEP = 1000
ERROR_LOG_TTL_SECONDS = 7 * 24 * 3600
BATCH = 1000  # entries per script call, for the calls that loop over many


class QueueStore:
    """The Redis side of one queue: its keys and its scripts."""

    def __init__(self, name: str, key_prefix: str, client: redis.Redis, flow_spec: str = ""):
        self.name = name
        self.flow_spec = flow_spec  # the queue's limits, as the scripts read them (limits.py)
        self.key_prefix = key_prefix
        self.client = client
        self.keys = queue_keys(key_prefix, name)
        self._scripts = scripts_for(client).by_name
        self.fleet = Fleet(key_prefix, client)

    def __repr__(self) -> str:
        return f"<QueueStore {self.name}>"

    # -- the one way scripts run --------------------------------------------------------------

    def call(self, name: str, args: Sequence[Any], extra_keys: Sequence[str] = ()) -> Any:
        """Run script ``name`` over this queue's keys (and ``extra_keys``); return its record."""
        spec = SPECS[name]
        keys = (*self.keys, *extra_keys) if extra_keys else self.keys
        script = self._scripts[name]
        with reporting_unavailable(self.client):
            raw = unflagging(script, lambda: self._run(spec, script, keys, args))
        return spec.decode(self.name, list(args), raw)

    def _run(self, spec: ScriptSpec, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if spec.writes and (wait := replication.wait_for()):
            return replication.run_and_wait(self.client, spec, script, keys, args, wait)
        return scripts.run(self.client, script, keys, args)

    def pipelined(
        self, pipe: Any, name: str, args: Sequence[Any], extra_keys: Sequence[str] = ()
    ) -> Callable[[Any], Any]:
        """Queue read-only script ``name`` on ``pipe``; return the decoder of its reply."""
        spec = SPECS[name]
        if spec.writes:
            raise ValueError(f"script {name!r} writes: run it with call(), which can WAIT")
        self._scripts[name](keys=(*self.keys, *extra_keys), args=args, client=pipe)
        return lambda raw: spec.decode(self.name, list(args), raw)

    # -- adding -------------------------------------------------------------------------------

    def add(
        self,
        pairs: list[str],
        if_processing: str,
        delay_ms: int,
        priority: int,
        if_queued: str = "keep",
        hold_ms: int = 0,
        group: str = "",
    ) -> list[tuple[bool, str, bool, bool]]:
        """Add (id, body) ``pairs`` (flat) of ``group`` ('': none); per job (added, state
        now, rerun pending, body replaced)."""
        found: list[tuple[bool, str, bool, bool]] = []
        options = [if_processing, delay_ms, priority, if_queued, hold_ms, group, self.flow_spec]
        for start in range(0, len(pairs), 2 * BATCH):
            chunk = pairs if len(pairs) <= 2 * BATCH else pairs[start : start + 2 * BATCH]
            found += self.call("add", options + chunk)
        return found

    # -- reading ------------------------------------------------------------------------------

    def job(self, job_id: str) -> Job | None:
        """A consistent snapshot of one job, with its last run's kept result, or None."""
        return self.call("inspect", [job_id], [self._result(job_id), self._progress(job_id)])

    def counts(self) -> dict[str, Any]:
        """Each state's count and the totals, split at Redis's now; the pause; Redis's now."""
        return self.call("stats", [])

    def page(self, state: str, offset: int, count: int, preview: int) -> tuple[int, int, list]:
        """Redis's now, the state's size, and ``count`` rows from rank ``offset`` on."""
        return self.call("browse", [state, offset, count, preview])

    def groups(self, offset: int, count: int) -> Any:
        """A ``GroupPage``: ``count`` groups from rank ``offset`` on, busiest first."""
        return self.call("groups", [offset, count])

    def clock_ms(self) -> int:
        """Redis's now, in ms (a cheap call: a jam guard checks in with Redis by it)."""
        with reporting_unavailable(self.client):
            seconds, micros = self.client.time()
        return seconds * 1000 + micros // 1000

    def is_paused(self) -> bool:
        """Whether workers are told not to claim from this queue."""
        with reporting_unavailable(self.client):
            return bool(self.client.exists(self.keys.paused))

    def jammed_ids(self, limit: int = BATCH) -> list[str]:
        """Ids whose lease has expired by Redis's clock (the jam guard's dry run)."""
        with reporting_unavailable(self.client):
            now_s, now_us = self.client.time()
            now_ms = now_s * 1000 + now_us // 1000
            return self.client.zrangebyscore(
                self.keys.processing, "-inf", f"({now_ms}", start=0, num=limit
            )

    def data_marks(self) -> DataMarks:
        """The queue's sequence counter and birth time (see ``health.DataMarkWatch``)."""
        with reporting_unavailable(self.client):
            pipe = self.client.pipeline(transaction=False)
            pipe.get(self.keys.seq)
            pipe.hget(self.keys.stats, "born")
            sequence, born = pipe.execute()
        return DataMarks(to_int(sequence), born or "")

    def clock_and_enqueued(self, job_id: str) -> tuple[int, int]:
        """Redis's now and when ``job_id``'s job was added (ms; 0 if it has no record)."""
        now_ms, enqueued_ms = self.call("enqueued_at", [job_id])
        return now_ms, enqueued_ms

    def still_owns(self, job_id: str, token: str) -> bool:
        """Whether the run with ``token`` still holds ``job_id``: its token holds the job and
        its lease has not passed by Redis's clock (one atomic read)."""
        return self.call("still_owns", [job_id, token])

    # -- operating ----------------------------------------------------------------------------

    def jam_guard(
        self,
        drop: bool,
        max_jams: int,
        failed_ttl_ms: int,
        lease_ms: int,
        resumed: bool = False,
        sent_ms: int = 0,
        limit: int = BATCH,
    ) -> JamGuardRound:
        """Recover (or drop) every jammed run now, ``limit`` per script call, and say which
        worker each was jammed under; unless Redis is back from an outage since less than
        ``lease_ms`` (``resumed``: the caller saw a gap in its own contact with it;
        ``sent_ms``: Redis's time as the caller reckons it, to tell a call Redis held)."""
        recovered: list[RecoveredJob] = []
        args = ["drop" if drop else "recover", max_jams, limit, failed_ttl_ms]
        args += [ERROR_LOG_KEEP, ERROR_LOG_TTL_SECONDS, lease_ms]
        while True:
            now_ms, held_until, rows = self.call(
                "jam_guard", [*args, int(resumed), sent_ms], [self._error_log()]
            )
            if held_until:
                return JamGuardRound(recovered, now_ms, from_ms(held_until))
            resumed, sent_ms = False, 0  # said once
            alive = self.fleet.alive(row[2] for row in rows)
            recovered += (
                RecoveredJob(
                    id=row[0],
                    queue=self.name,
                    action=row[1],
                    worker=row[2],
                    started_at=from_ms(row[3]),
                    lease_expired_at=from_ms(row[4]),
                    attempts=to_int(row[5]),
                    jams=to_int(row[6]),
                    worker_gone=not alive.get(row[2], False),
                )
                for row in rows
            )
            if len(rows) < limit:
                return JamGuardRound(recovered, now_ms)

    def purge(self) -> int:
        """Remove every waiting job, releasing their ids; return how many."""
        total = 0
        while removed := self.call("purge", [BATCH]):
            total += removed
        return total

    def remove(self, job_id: str, allowed: str) -> tuple[str, str]:
        """Remove a job in one of the ``allowed`` states (comma-separated): (outcome, state)."""
        outcome, state = self.call("remove", [job_id, allowed])
        return outcome, state

    def cancel(self, job_id: str, by: str, failed_ttl_ms: int) -> str:
        """Stop ``job_id`` (``cancel.lua``); return the state it was in, '' if none. A Django
        task's run has its result marked FAILED in the same step: the first call learns which
        result the job carries, the second passes its key (one round trip for other jobs)."""
        result_id = ""
        for _ in range(5):  # a job replaced between the calls by one with another result
            extra = [self.result_key(result_id)] if result_id else []
            reply = self.call("cancel", [job_id, by, failed_ttl_ms, result_id], extra)
            if reply[0] != "result":
                return reply[0]
            result_id = reply[1]
        raise RuntimeError(f"cancel of {job_id!r}: its job kept changing; try again")

    def requeue(self, job_ids: list[str] | None) -> list[str]:
        """Give failed jobs (these, or all) a fresh run; return the ids queued."""
        if job_ids is None:
            queued: list[str] = []
            while batch := self.call("requeue", [BATCH]):
                queued += batch
            return queued
        return [
            job_id
            for start in range(0, len(job_ids), BATCH)
            for job_id in self.call("requeue", [BATCH, *job_ids[start : start + BATCH]])
        ]

    def pause(self) -> None:
        """Tell workers not to claim from this queue."""
        with reporting_unavailable(self.client):
            self.client.set(self.keys.paused, "1")

    def resume(self) -> int:
        """Let workers claim again and wake one; 1 if the queue was paused."""
        return self.call("resume", [])

    # -- runs, for workers --------------------------------------------------------------------

    def claim(self, max_jobs: int, worker_id: str, lease_ms: int, wait_ms: int = 0) -> ClaimBatch:
        """Promote due scheduled jobs, then take up to ``max_jobs`` runs (see claim_jobs)."""
        return self.call("claim", [max_jobs, worker_id, lease_ms, BATCH, wait_ms, self.flow_spec])

    def ack_and_claim(
        self,
        fences: Sequence[tuple[str, str]],
        max_jobs: int,
        worker_id: str,
        lease_ms: int,
        wait_ms: int = 0,
    ) -> tuple[list[int], ClaimBatch]:
        """``ack(runs)`` and ``claim(...)`` in one round trip."""
        args = [max_jobs, worker_id, lease_ms, BATCH, wait_ms, self.flow_spec, *_fences(fences)]
        return self.call("ack_claim", args)

    def ack(self, fences: Sequence[tuple[str, str]]) -> list[int]:
        """End successful runs, given as (id, token) fences; per run 1 released, 2 rerun
        queued, 0 refused (stale)."""
        return self.call("ack", list(_fences(fences)))

    def fail(self, run: Run, error_json: str, retry_delay_ms: int, failed_ttl_ms: int) -> str:
        """End a failed run ('retry', 'failed', 'rerun', or 'stale'); ``retry_delay_ms`` -1:
        final."""
        args = [
            run.id,
            run.token,
            error_json,
            retry_delay_ms,
            failed_ttl_ms,
            ERROR_LOG_KEEP,
            ERROR_LOG_TTL_SECONDS,
        ]
        return self.call("fail", args, [self._error_log()])

    def renew(self, fences: Sequence[tuple[str, str]], lease_ms: int) -> list[int]:
        """Extend the leases of runs; per run 1 renewed, 0 refused (taken meanwhile)."""
        return self.call("renew", [lease_ms, *_fences(fences)])

    def handback(self, fences: Sequence[tuple[str, str]], *, started: bool = True) -> list[int]:
        """Queue unfinished runs again; per run 1 queued, 0 refused."""
        return self.call("handback", ["started" if started else "unstarted", *_fences(fences)])

    def release_orphans(self, worker_id: str, known_tokens: Iterable[str]) -> list[str]:
        """Queue again the runs held for ``worker_id`` whose tokens it does not know."""
        return self.call("release_orphans", [worker_id, *known_tokens])

    def inbox(self, worker_id: str) -> str:
        """The LIST of runs handed to ``worker_id`` while it waited (see ``wait_for_work``)."""
        return inbox_key(self.keys, worker_id)

    def handed_run(self, message: str) -> Run:
        """The run in a message of an inbox of this queue."""
        return handed_run(self.name, message)

    def keep_result(self, run: Run, kept: bool, text: str, ttl_ms: int) -> bool:
        """Keep what ``run`` returned (``text``: its JSON, or why it was not kept) for ``ttl_ms``;
        False when the run no longer holds its job (nothing written)."""
        args = [run.id, run.token, int(kept), text, ttl_ms]
        return bool(self.call("keep_result", args, [self._result(run.id)]))

    def _result(self, job_id: str) -> str:
        return job_result_key(self.key_prefix, self.name, job_id)

    def set_progress(self, run: Run, done: str, total: str, message: str, ttl_ms: int) -> bool:
        """Record how far ``run`` got; False when it no longer holds its job (nothing written)."""
        args = [run.id, run.token, done, total, message, ttl_ms]
        return bool(self.call("progress", args, [self._progress(run.id)]))

    def progress_of(self, rows: Sequence[tuple[str, int | None]]) -> dict[str, Progress]:
        """The progress of each (id, run started_ms) that reported any, in one MGET (one hash
        slot: the keys share the queue's tag)."""
        if not rows:
            return {}
        with reporting_unavailable(self.client):
            texts = self.client.mget([self._progress(job_id) for job_id, _ in rows])
        found = {}
        for (job_id, started_ms), text in zip(rows, texts, strict=True):
            progress = Progress.parse(text, started_ms) if text else None
            if progress is not None:
                found[job_id] = progress
        return found

    def _progress(self, job_id: str) -> str:
        return progress_key(self.key_prefix, self.name, job_id)

    # -- Django Tasks runs and their results --------------------------------------------------

    def result_key(self, result_id: str) -> str:
        """The HASH of one run's result of a Django task."""
        return task_result_key(self.key_prefix, self.name, result_id)

    def _error_log(self) -> str:
        return error_log_key(self.key_prefix, self.name, time.strftime("%Y-%m-%d", time.gmtime()))


def _fences(fences: Iterable[tuple[str, str]]) -> Iterable[str]:
    """Flatten (id, token) pairs: by them scripts tell a run that still holds its job."""
    for job_id, token in fences:
        yield job_id
        yield token


def wait_for_work(client: Any, keys: list[str], timeout: float) -> tuple[str, str] | None:
    """Block on inboxes and wake lists (BLPOP: the first list with an element wins); redis-py's
    own errors come through, for the caller to tell as it needs."""
    return client.blpop(keys, timeout=timeout)


def give_back_wake_token(client: Any, key: str) -> None:
    """Push a wake token back (the list keeps at most one) for a worker that can use it."""
    pipe = client.pipeline(transaction=False)
    pipe.rpush(key, "1")
    pipe.ltrim(key, 0, 0)
    pipe.execute()
