"""``ConvoyQueue`` (``django_convoy.Queue``): the Python face of one configured queue.

It checks what callers give it and applies the queue's settings (lease, retries, retention);
its ``store`` (``store/queues.py``) does every state change, each one Lua script.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from . import connection, signals
from .conf import QueueConfig, get_config
from .exceptions import JobNotFound, UnknownQueue
from .ids import normalise_id
from .limits import check_group, flow_spec
from .observability import tracing
from .retries import failure_is_final, retry_delay
from .store import (
    BATCH,
    AddResult,
    ClaimBatch,
    DataMarks,
    JamGuardRound,
    Job,
    Policy,
    QueueStore,
    RecoveredJob,
    Run,
    body_prefix,
    policy_of,
)
from .store.replies import COUNTS
from .validation import AddOptions, add_options, encode_payload, encode_result

PROGRESS_TTL_MS = 24 * 3600 * 1000  # a run's progress outlives its last report by a day


def get_queue(name: str) -> ConvoyQueue:
    """Return the configured queue called ``name``."""
    config = get_config()
    try:
        queue_config = config.queues[name]
    except (KeyError, TypeError):
        raise UnknownQueue(
            f"No queue {name!r} in CONVOY['QUEUES']; configured queues: "
            f"{', '.join(sorted(config.queues))}."
        ) from None
    client = connection.get_client()
    # Made once per settings and client: every enqueue() asks, and building the keys and
    # looking up the scripts is a visible share of an add's time in Python.
    made = _made.get(name)
    if made is None or made.config is not queue_config or made.client is not client:
        made = _made[name] = ConvoyQueue(queue_config, config.key_prefix, client)
    return made


_made: dict[str, ConvoyQueue] = {}


class ConvoyQueue:
    """One named queue. Cheap to create; holds no state beyond its settings and its store."""

    def __init__(self, config: QueueConfig, key_prefix: str, client: redis.Redis):
        self.name = config.name
        self.config = config
        self.key_prefix = key_prefix
        self.client = client
        spec = flow_spec(config.rate_limit, config.group_concurrency, config.group_rate_limit)
        self.store = QueueStore(config.name, key_prefix, client, spec)
        self.keys = self.store.keys
        self.lease_ms = int(config.lease * 1000)
        self.failed_ttl_ms = int(config.failed_ttl * 1000)

    def __repr__(self) -> str:
        return f"<Queue {self.name}>"

    # -- publishing -------------------------------------------------------------------------

    def add_job(
        self,
        job_id: str | int,
        payload: Any = None,
        *,
        if_processing: str = "ignore",
        delay: Any = 0,
        priority: int = 0,
        if_queued: str = "keep",
        hold_for: Any = 0,
        group: str | int | None = None,
    ) -> AddResult:
        """Queue ``job_id`` unless it is already queued, scheduled or processing.

        ``if_queued="replace"``: an add of a waiting id replaces its payload (and with a
        ``delay`` restarts it: a debounce). ``hold_for``: once this job ends, adds of its id
        are refused for that many seconds (state "held"). ``group``: its flow control group."""
        payload_json = encode_payload(payload, self.config.max_payload_bytes, self.name)
        return self.add_encoded(
            None,
            ((job_id, payload_json),),
            if_processing=if_processing,
            delay=delay,
            priority=priority,
            if_queued=if_queued,
            hold_for=hold_for,
            group=group,
        )[0]

    def add_jobs(
        self,
        jobs: Iterable[Any],
        *,
        if_processing: str = "ignore",
        delay: Any = 0,
        priority: int = 0,
        if_queued: str = "keep",
        hold_for: Any = 0,
        group: str | int | None = None,
    ) -> list[AddResult]:
        """Add many jobs (ids or ``(id, payload)`` pairs, all of ``group``) in one round trip."""
        entries = []
        for job in jobs:
            job_id, payload = job if isinstance(job, tuple) else (job, None)
            entries.append(
                (job_id, encode_payload(payload, self.config.max_payload_bytes, self.name))
            )
        return self.add_encoded(
            None,
            entries,
            if_processing=if_processing,
            delay=delay,
            priority=priority,
            if_queued=if_queued,
            hold_for=hold_for,
            group=group,
        )

    def add_encoded(
        self,
        task: str | None,
        entries: Sequence[tuple[Any, str]],
        *,
        if_processing: str = "ignore",
        delay: Any = 0,
        priority: int = 0,
        policy_json: str = "",
        if_queued: str = "keep",
        hold_for: Any = 0,
        group: str | int | None = None,
    ) -> list[AddResult]:
        """Add (id, payload JSON) entries for ``task`` (with its policy, ``store.Policy``, as
        JSON): validated first, then one script call per ``store.BATCH`` entries."""
        options = add_options(if_processing, delay, priority, if_queued, hold_for)
        group_key = check_group(group)
        ids = [normalise_id(job_id) for job_id, _ in entries]
        payloads = [payload_json for _, payload_json in entries]
        return self._add_checked(body_prefix(task, policy_json), ids, payloads, options, group_key)

    def _add_checked(
        self,
        prefix: str,
        ids: list[str],
        payloads: list[str],
        options: AddOptions,
        group: str = "",
    ) -> list[AddResult]:
        """Add jobs whose ids, payloads, options and group were checked (``add_encoded``, or a
        task, once for all its enqueues); ``prefix``: their bodies' start (``body_prefix``)."""
        with tracing.adding(self.name, ids) as (head, traced):
            pairs: list[str] = []
            # head: "{", or '{"trace":{...},' to carry the add's context (tracing.py).
            prefix = head + prefix[1:]
            for job_id, payload_json in zip(ids, payloads, strict=True):
                pairs += (job_id, prefix + payload_json + "}")
            replies = self.store.add(pairs, *options, group)
            results = [
                AddResult(job_id, *reply) for job_id, reply in zip(ids, replies, strict=True)
            ]
            traced(results)
        signals.announce_added(ConvoyQueue, self.name, results)
        return results

    # -- reading ----------------------------------------------------------------------------

    def get_job(self, job_id: str | int) -> Job | None:
        """Return a snapshot of the job with this id, or None if no job has it."""
        return self.store.job(normalise_id(job_id))

    def stats(self) -> dict[str, Any]:
        """Return the counts of each state and the totals, split at Redis's now; and flow
        control's: ``rate_limit``, ``throttled`` (by it now), ``groups`` and ``groups_held``."""
        counts, rate = self.store.counts(), self.config.rate_limit
        return {
            **{key: counts[key] for key in (*COUNTS, "groups", "groups_held")},
            "rate_limit": str(rate) if rate else None,
            "throttled": counts["throttled_until_ms"] is not None,
        }

    def is_paused(self) -> bool:
        """Whether workers are told not to claim from this queue."""
        return self.store.is_paused()

    # -- operating --------------------------------------------------------------------------

    def jam_guard(self, *, drop: bool = False, limit: int = BATCH) -> list[RecoveredJob]:
        """Recover every jammed job now (or drop them, releasing their ids); return them.
        Within a LEASE of Redis coming back from an outage, recover none (see
        ``jam_guard_round``)."""
        return self.jam_guard_round(drop=drop, limit=limit).recovered

    def jam_guard_round(
        self, *, drop: bool = False, resumed: bool = False, sent_ms: int = 0, limit: int = BATCH
    ) -> JamGuardRound:
        """``jam_guard()``, saying until when recoveries are held if Redis came back from an
        outage less than a LEASE ago (restarted, failed over, or ``resumed``: the caller could
        not reach it a moment ago; or this call was held: ``sent_ms`` is Redis's time as the
        caller reckons it): live workers renew their leases first (``worker/contact.py``)."""
        done = self.store.jam_guard(
            drop,
            self.config.max_jams,
            self.failed_ttl_ms,
            self.lease_ms,
            resumed,
            sent_ms,
            limit,
        )
        for job in done.recovered:
            signals.send(
                signals.job_recovered,
                ConvoyQueue,
                queue=self.name,
                job_id=job.id,
                action=job.action,
                worker=job.worker,
                attempts=job.attempts,
                jams=job.jams,
            )
        return done

    def jammed_jobs(self) -> list[Job]:
        """List jammed jobs without changing anything (the jam guard's dry run)."""
        return [job for job in map(self.store.job, self.store.jammed_ids()) if job is not None]

    def purge(self) -> int:
        """Remove every waiting (queued and scheduled) job, releasing their ids; return how many."""
        return self.store.purge()

    def delete_job(self, job_id: str | int) -> str:
        """Delete a queued, scheduled or failed job; return the state it was in."""
        return self._remove(job_id, "queued,scheduled,failed")

    def release_jammed(self, job_id: str | int) -> str:
        """Drop one jammed job, releasing its id (what ``--drop`` does for all of them)."""
        return self._remove(job_id, "jammed")

    def _remove(self, job_id: str | int, allowed: str) -> str:
        job_id = normalise_id(job_id)
        outcome, state = self.store.remove(job_id, allowed)
        if outcome != "removed":
            now = f"it is {state}" if state else "no job has that id"
            raise JobNotFound(
                f"Job {job_id!r} of queue {self.name!r} is not "
                f"{allowed.replace(',', ' or ')}: {now}."
            )
        return state

    def cancel(self, job_id: str | int, *, by: str = "") -> str | None:
        """Cancel a job; return the state it was in, or None when there was nothing to cancel.

        A queued or scheduled job is removed and its id released. A processing or jammed job's
        run loses its job at once (its fence is revoked: nothing it writes afterwards counts;
        its worker notices within a lease renewal) and the job is kept as failed, cancelled
        ``by`` whom, for ``FAILED_TTL``. A pending rerun is dropped too.
        """
        state = self.store.cancel(normalise_id(job_id), by, self.failed_ttl_ms)
        return state or None

    def requeue_failed(self, job_ids: Iterable[str | int] | None = None) -> list[str]:
        """Give failed jobs (these, or all of them) a fresh run; return the ids queued.

        Each named id that is failed is queued; then, if any was not failed, raise
        ``JobNotFound`` naming each and what it is now (its ``requeued`` lists those queued).
        """
        if job_ids is None:
            return self.store.requeue(None)
        ids = list(dict.fromkeys(normalise_id(job_id) for job_id in job_ids))
        queued = self.store.requeue(ids)
        if len(queued) < len(ids):
            done = set(queued)
            found = {job_id: self.get_job(job_id) for job_id in ids if job_id not in done}
            now = {job_id: job.state if job else "" for job_id, job in found.items()}
            raise JobNotFound.not_failed(self.name, now, queued)
        return queued

    def pause(self) -> None:
        """Stop workers claiming from this queue; adds are still accepted."""
        self.store.pause()

    def resume(self) -> None:
        """Let workers claim from this queue again."""
        self.store.resume()

    # -- used by workers --------------------------------------------------------------------

    def claim(self, max_jobs: int, worker_id: str, *, wait_ms: int = 0) -> ClaimBatch:
        """Promote due scheduled jobs, then take up to ``max_jobs`` runs for ``worker_id``,
        after any handed to it while it waited. ``wait_ms``: if the queue runs dry first,
        ``worker_id`` will block on this queue's wake list and its inbox, and asks for that
        long to be handed the jobs added meanwhile, as many as the room left."""
        return self.store.claim(max_jobs, worker_id, self.lease_ms, wait_ms)

    def ack_and_claim(
        self, runs: Sequence[tuple[str, str]], max_jobs: int, worker_id: str, *, wait_ms: int = 0
    ) -> tuple[list[int], ClaimBatch]:
        """``ack(runs)`` and ``claim(max_jobs, worker_id, wait_ms=...)`` in one round trip."""
        return self.store.ack_and_claim(runs, max_jobs, worker_id, self.lease_ms, wait_ms)

    def handed_run(self, message: str) -> Run:
        """The run in a message of this queue's inbox of a worker (see ``claim``'s wait_ms)."""
        return self.store.handed_run(message)

    def ack(self, runs: Sequence[tuple[str, str]]) -> list[int]:
        """End successful runs; per run 1 released, 2 rerun queued, 0 refused (stale)."""
        return self.store.ack(runs)

    def fail(self, run: Run, error: dict[str, Any], *, final: bool | None = None) -> str:
        """End a failed run: 'retry', 'failed', 'rerun', or 'stale' when it was taken meanwhile.
        ``final`` None: the rule (``is_final``) decides, for a run whose code could not say.
        A retry waits its task's ``backoff`` (else the queue's ``RETRY_BACKOFF``), doubled
        per attempt."""
        policy = policy_of(run.body)
        if final is None:
            final = self.is_final(run, None, policy)
        backoff = self.config.retry_backoff if policy.backoff is None else policy.backoff
        delay_ms = -1 if final else int(retry_delay(run.attempt, backoff) * 1000)
        return self.store.fail(run, json.dumps(error), delay_ms, self.failed_ttl_ms)

    def is_final(self, run: Run, exc: BaseException | None, policy: Policy | None = None) -> bool:
        """Whether ``run`` failing with ``exc`` is its job's last run (``retries``' rule), by
        its task's ``max_attempts`` and ``retry_on`` (``policy``), else the queue's."""
        policy = policy or policy_of(run.body)
        max_attempts = policy.max_attempts or self.config.max_attempts
        return failure_is_final(exc, run.attempt, max_attempts, policy.retry_on)

    def timeout_of(self, run: Run) -> float:
        """Seconds ``run`` may take (0: no limit): its task's ``timeout``, else JOB_TIMEOUT."""
        timeout = policy_of(run.body).timeout
        return self.config.job_timeout if timeout is None else timeout

    def expired(self, run: Run, policy: Policy) -> bool:
        """Whether ``run``'s job was not started before its task's ``expires``, by Redis's
        clock (one round trip, for jobs whose task has ``expires`` only)."""
        now_ms, enqueued_ms = self.store.clock_and_enqueued(run.id)
        deadline = policy.expires(enqueued_ms)
        return deadline is not None and now_ms >= deadline

    def keep_result(self, run: Run, value: Any) -> bool:
        """Keep what ``run``'s code returned, as JSON, for the queue's ``RESULT_TTL``; a value
        that is not JSON or is over ``MAX_RESULT_BYTES`` is not kept, and the kept result says
        why. False when the run no longer holds its job (nothing written)."""
        ttl_ms = int(self.config.result_ttl * 1000)
        if ttl_ms <= 0:
            return True
        text, kept = encode_result(value, self.config.max_result_bytes)
        return self.store.keep_result(run, kept, text, ttl_ms)

    def set_progress(self, run: Run, done: float, total: float | None, message: str) -> bool:
        """Record how far ``run`` got (kept a day after its last report); False when the run
        no longer holds its job (nothing written)."""
        return self.store.set_progress(
            run, repr(done), "" if total is None else repr(total), message, PROGRESS_TTL_MS
        )

    def renew(self, runs: Sequence[tuple[str, str]]) -> list[int]:
        """Extend the leases of runs; per run 1 renewed, 0 refused (taken meanwhile)."""
        return self.store.renew(runs, self.lease_ms)

    def handback(self, runs: Sequence[tuple[str, str]], *, started: bool = True) -> list[int]:
        """Queue unfinished runs again (worker shutdown); per run 1 queued, 0 refused.
        ``started=False``: none of them began, so each gives its attempt back."""
        return self.store.handback(runs, started=started)

    def release_orphans(self, worker_id: str, known_tokens: Iterable[str]) -> list[str]:
        """Queue again the runs held for ``worker_id`` whose tokens it does not know (a claim
        whose reply was lost); return their ids."""
        return self.store.release_orphans(worker_id, known_tokens)

    def still_owns(self, job_id: str, token: str) -> bool:
        """Whether the run with ``token`` still holds ``job_id`` with a live lease."""
        return self.store.still_owns(job_id, token)

    def data_marks(self) -> DataMarks:
        """Read the queue's sequence counter and birth time (see ``health.DataMarkWatch``)."""
        return self.store.data_marks()


Queue = ConvoyQueue  # the name the manual and existing code use
