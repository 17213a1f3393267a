"""The claimer: the worker's claim loop, and every claim the worker makes.

It claims up to the free slots of each queue in one script call per queue, and blocks on the
queues' wake lists when there is nothing to claim. A claim that leaves room asks to be handed
the jobs added meanwhile (as many as there is room for), so it blocks on its inboxes too: a job
added to an idle worker starts after the add's round trip alone. The reporter's acks claim
through ``claim_with_acks``, under the same lock, so that ``max_jobs`` stays exact. While a
queue's jobs are short, claims take runs ahead of the free slots (``ahead.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import redis

from ..connection import reporting_unavailable
from ..exceptions import RedisFull, RedisUnavailable
from ..health import DataMarkWatch
from ..ids import shown
from ..queue import ConvoyQueue
from ..store import ClaimBatch, Run, wait_for_work
from . import wake
from .ahead import HAND_BACK_AFTER_SECONDS, ThreadsAhead
from .backoff import Backoff, Outages
from .state import ActiveRun, WorkerState

logger = logging.getLogger("django_convoy.worker")

IDLE_BLOCK_SECONDS = 1.0  # longest wait on the wake lists; bounds how late a stop is noticed
# How long a request to be handed a job stands: a second past the longest block, after which
# the claim loop claims, and asks, again. A worker that died waiting is handed no more after it.
HAND_OFF_WAIT_MS = int((IDLE_BLOCK_SECONDS + 1) * 1000)
BUSY_QUEUE_RECHECK_SECONDS = 0.05
READING_KEYS = "reading the queue's keys"  # what Redis refuses when one of them is corrupt


class Claimer:
    """Claim runs for the worker and hand them to its executors."""

    def __init__(self, state: WorkerState, burst: bool, wake_keeper: Callable[[float], None]):
        self.state = state
        self.burst = burst
        self.ahead = ThreadsAhead(state.slots, enabled=state.max_jobs is None)
        self._wake_keeper = wake_keeper  # to hand back runs claimed ahead that wait too long
        self.client = next(iter(state.queues.values())).client
        self.data_marks = DataMarkWatch()
        # Queues in several Redis Cluster slots: a waiter thread per queue instead of one
        # BLPOP, and a queue whose node is away does not hold up the others (wake.py).
        wake_keys = {name: q.keys.wake for name, q in state.queues.items()}
        spread = wake.spread_over_slots(self.client, wake_keys.values())
        self.outages = Outages() if spread else None
        # Queues whose keys Redis refuses to read as convoy's (written by hand?): skipped, with
        # backoff, until they read again; logged when that begins and when it ends.
        self.refused = Outages()
        self.waiters: wake.WakeWaiters | None = None  # started when first idle
        # Whether claims ask to be handed the next job while the claim loop waits: not when it
        # never blocks (burst), cannot block on one list (several cluster slots), or must count
        # each claim exactly (max_jobs: a handed run and a reporter's claim can cross).
        self.hand_offs = not burst and state.max_jobs is None and self.outages is None

    # -- the loop -----------------------------------------------------------------------------

    def loop(self) -> None:
        """Claim until stopped (or, with ``burst``, until the queues are empty)."""
        state = self.state
        # Apart, so that claims that work and waits that fail (or the other way round) do not
        # log a failure and a recovery on every turn.
        claims, waits = Backoff("claiming"), Backoff("waiting for jobs")
        while not state.stop.is_set():
            try:
                got, any_free, next_due = self._claim_round()
            except RedisUnavailable as exc:
                claims.wait(state.stop, exc)
                continue
            claims.reset()
            if state.max_jobs is not None and state.claimed >= state.max_jobs:
                return
            if got:
                continue
            if not any_free:
                self._wait_for_slot(IDLE_BLOCK_SECONDS)
            elif self.burst:
                if not state.busy_total() and not (self.outages and self.outages.away()):
                    return
                self._wait_for_slot(0.5)
            else:
                try:
                    self._block_for_work(next_due)
                except RedisUnavailable as exc:
                    waits.wait(state.stop, exc)
                else:
                    waits.reset()

    def _claim_round(self) -> tuple[int, bool, float | None]:
        """Claim from every queue with free slots; return (claimed, any free, next due in s)."""
        state = self.state
        got, any_free, next_due = 0, False, None
        for name, q in state.queues.items():
            # One claim at a time, this loop's or the reporter's: max_jobs stays exact.
            with state.claiming:
                room = state.slots[name] - state.busy[name]
                free = state.claimable(name, room + self.ahead.extra(name))
                if free <= 0:
                    continue
                any_free = any_free or room > 0
                batch = self._claim(name, q, free, asks=room > 0)
                if batch is None:
                    continue
                self.ahead.claimed(name, free, len(batch.runs))
                self._accept(q, batch)
            if batch.next_due_ms is not None:
                due_in = max(0.0, (batch.next_due_ms - batch.now_ms) / 1000)
                next_due = due_in if next_due is None else min(next_due, due_in)
            got += len(batch.runs)
        return got, any_free, next_due

    def _claim(self, name: str, q: ConvoyQueue, free: int, asks: bool) -> ClaimBatch | None:
        """Claim up to ``free`` runs of ``q``; None when its node is away (in a cluster, the
        other queues go on) or Redis refused the script. ``asks``: a claim that finds too few
        may ask to be handed jobs (not one that only claims ahead: its slots are all busy)."""
        if self.refused.skipping(name) or (self.outages and self.outages.skipping(name)):
            return None
        try:
            if name in self.state.unsure:
                self._release_orphans(name, q)
            batch = q.claim(free, self.state.id, wait_ms=self.wait_ms() if asks else 0)
        except RedisUnavailable as exc:
            # The claim may have run, and its reply been lost; not when Redis was full: claims
            # are refused before they start then (scripts.DENY).
            if not isinstance(exc, RedisFull):
                self.state.unsure.add(name)
            if self.outages is None:
                raise
            self.outages.failed(name, exc, "claiming")
            return None
        except redis.ResponseError as exc:
            # A script error means a convoy key holds something it cannot read (written by
            # hand?): say so, and keep serving the other queues.
            self.refused.failed(name, exc, READING_KEYS)
            return None
        if self.outages is not None:
            self.outages.recovered(name)
        self.refused.recovered(name)
        return batch

    def claim_with_acks(self, q: ConvoyQueue, finished: list[ActiveRun]) -> tuple[list[int], bool]:
        """Ack ``finished`` runs; while there may be more work, claim in the same call as many
        runs as there is room for (``finished``'s slots, which pass straight on, the free ones,
        and those claimed ahead). Return the acks' replies, and whether it claimed."""
        fences = [active.fence for active in finished]
        state = self.state
        with state.claiming:
            with state.lock:
                room = state.slots[q.name] - state.busy[q.name]
                room += sum(active.slot_held for active in finished)
            wanted = state.claimable(q.name, room + self.ahead.extra(q.name))
            if wanted and not (self.outages is not None and self.outages.skipping(q.name)):
                try:
                    replies, batch = q.ack_and_claim(
                        fences, wanted, state.id, wait_ms=self.wait_ms() if room > 0 else 0
                    )
                except RedisFull:
                    # Refused before it ran: no claims while Redis is full, but the acks
                    # must land (they free memory), so they go alone.
                    return q.ack(fences), False
                except RedisUnavailable:
                    state.unsure.add(q.name)  # the claim's runs may be held, unknown to us
                    raise
                self.ahead.claimed(q.name, wanted, len(batch.runs))
                self._accept(q, batch, finished)
                return replies, True
        return q.ack(fences), False

    def _release_orphans(self, name: str, q: ConvoyQueue) -> None:
        """After a claim whose reply may have been lost: queue again the runs Redis holds for
        this worker that it never heard of, now rather than a lease later by the jam guard.
        Only while no claim is in flight (``claiming``), or a reply on its way would look lost.
        """
        with self.state.lock:
            known = [a.run.token for a in self.state.runs.values() if a.run.queue == name]
        released = q.release_orphans(self.state.id, known)
        self.state.unsure.discard(name)
        if released:
            logger.warning(
                "%s: queued again %d runs whose claim's reply was lost: %s",
                name,
                len(released),
                ", ".join(map(shown, released[:20])),
            )

    def wait_ms(self) -> int:
        """How long the next claim asks to be handed a job if it finds none (0: it does not)."""
        return HAND_OFF_WAIT_MS if self.hand_offs and not self.state.stop.is_set() else 0

    def _accept(
        self, q: ConvoyQueue, batch: ClaimBatch, finished: Sequence[ActiveRun] = ()
    ) -> None:
        """Take on what a claim returned (under ``claiming``)."""
        state = self.state
        self.data_marks.observe(q.name, batch.marks, batch.now_ms)
        if batch.waiting:
            state.waiting |= {q.name}
        else:
            state.waiting -= {q.name}
        self._dispatch(q, batch.runs, list(finished))

    def _dispatch(self, q: ConvoyQueue, runs: list[Run], finished: list[ActiveRun]) -> None:
        for active in self.state.track(q.name, runs, finished):
            self.state.work.put(active)
        if runs and self.state.busy[q.name] > self.state.slots[q.name]:  # some wait: ahead
            self._wake_keeper(time.monotonic() + HAND_BACK_AFTER_SECONDS)

    def hand_back_waiting(self, now: float, every: bool = False) -> float | None:
        """Hand back the runs claimed ahead that still wait for an executor
        HAND_BACK_AFTER_SECONDS after their claim: the jobs ahead of them turned out long
        (``ahead.py``). Return when to look again (monotonic; None: nothing waits). The
        keeper's, on its thread; and shutdown's, with ``every``: all the runs claimed ahead that
        have not begun go back at once (those within its slots run, as a stopping worker's do)."""
        state = self.state
        late: dict[str, list[ActiveRun]] = {}
        look_again: float | None = None
        with state.lock:  # as an executor begins a run under it: begun or handed back, not both
            ahead = {name: state.busy[name] - state.slots[name] for name in state.slots}
            waiting = [
                a
                for a in state.runs.values()
                if ahead[a.run.queue] > 0
                and a.executing
                and not (a.began or a.abandoned)
                and a.child is None
            ]
            for active in sorted(waiting, key=lambda a: a.started, reverse=True):
                name, due = active.run.queue, active.started + HAND_BACK_AFTER_SECONDS
                if due > now and not every:
                    look_again = due if look_again is None else min(look_again, due)
                elif ahead[name] > 0:
                    ahead[name] -= 1
                    active.abandoned = "handed back unstarted"
                    late.setdefault(name, []).append(active)
        for name, actives in late.items():
            self.ahead.turned_long(name)
            for active in actives:
                active.lost.set()
                state.free_slot(active)  # it never begins: its executor skips it
            self.hand_back_unstarted(state.queues[name], [a.run for a in actives])
        return look_again

    # -- waiting ------------------------------------------------------------------------------

    def _block_for_work(self, next_due: float | None) -> None:
        state = self.state
        timeout = IDLE_BLOCK_SECONDS if next_due is None else min(IDLE_BLOCK_SECONDS, next_due)
        free = [
            name
            for name in state.queues
            if state.busy[name] < state.slots[name] and not self.refused.skipping(name)
        ]
        if len(free) < len(state.queues):
            # A busy queue's freed slot cannot end a wait in Redis: look again soon.
            timeout = min(timeout, BUSY_QUEUE_RECHECK_SECONDS)
        if timeout <= 0:
            return
        if self.outages is not None:  # several cluster slots: no BLPOP can span them
            if self.waiters is None:
                keys = {name: q.keys.wake for name, q in state.queues.items()}
                self.waiters = wake.WakeWaiters(self.client, keys, IDLE_BLOCK_SECONDS)
            self.waiters.wait(timeout, [n for n in free if not self.outages.skipping(n)])
            return
        # Only the wake lists of queues that have room: a full queue's token is left for a
        # worker that can take its job. Inboxes first: BLPOP takes from the first list that
        # has an element, and a handed run is this worker's alone.
        inboxes = {
            state.queues[name].store.inbox(state.id): name
            for name in state.waiting
            if not self.refused.skipping(name)
        }
        wakes = {state.queues[name].keys.wake: name for name in free}
        keys = [*inboxes, *wakes]
        if not keys:  # every queue with room is refused: wait for a slot or a retry
            self._wait_for_slot(timeout)
            return
        try:
            with reporting_unavailable(self.client):
                popped = wait_for_work(self.client, keys, timeout)
        except RedisUnavailable:
            state.unsure.update(inboxes.values())  # a handed run may have been popped
            raise
        except redis.ResponseError as exc:  # WRONGTYPE: a list replaced (by hand?)
            self._refuse_wrong_lists({**inboxes, **wakes}, exc)
            return
        if popped is not None and popped[0] in inboxes:
            self._take_handed(state.queues[inboxes[popped[0]]], popped[1])

    def _refuse_wrong_lists(self, queues_by_key: dict[str, str], exc: redis.ResponseError) -> None:
        """Find which of the lists a blocking wait was refused on is not a list, and skip its
        queue as a refused claim would be: the other queues' waits go on."""
        try:
            with reporting_unavailable(self.client):
                pipe = self.client.pipeline(transaction=False)
                for key in queues_by_key:
                    pipe.type(key)
                kinds = pipe.execute()
        except RedisUnavailable:
            return  # the next wait tells
        for (key, name), kind in zip(queues_by_key.items(), kinds, strict=True):
            if kind not in ("list", "none"):
                wrong = redis.ResponseError(f"{key} is a {kind}, not a list ({exc})")
                self.refused.failed(name, wrong, READING_KEYS)

    def _take_handed(self, q: ConvoyQueue, message: str) -> None:
        """Run a job an add handed to this worker (the claim round that follows takes any
        others handed to it, and renews its request); once stopping, hand it back unstarted."""
        run = q.store.handed_run(message)
        if self.state.stop.is_set():
            self.hand_back_unstarted(q, [run])
            return
        with self.state.claiming:
            self._dispatch(q, [run], [])

    def _wait_for_slot(self, timeout: float) -> None:
        self.state.slot_freed.wait(timeout)
        self.state.slot_freed.clear()

    # -- stopping -----------------------------------------------------------------------------

    def withdraw(self) -> None:
        """Take back the requests to be handed jobs, on every queue: one may stand that no
        reply told of (lost, or of an ack that claims still in flight when aborting). Runs
        handed meanwhile never started, so they go back to their queues."""
        if self.waiters is not None:
            self.waiters.stop()
        if not self.hand_offs:
            return
        for name, q in self.state.queues.items():
            try:
                self.hand_back_unstarted(q, q.claim(0, self.state.id).runs)
            except (RedisUnavailable, redis.ResponseError) as exc:
                logger.error(
                    "%s: could not take back the request to be handed jobs (%s); it lapses "
                    "in %d ms, and the jam guard recovers the jobs handed meanwhile",
                    name,
                    exc,
                    HAND_OFF_WAIT_MS,
                )
        self.state.waiting = frozenset()

    def hand_back_unstarted(self, q: ConvoyQueue, runs: list[Run]) -> None:
        """Return runs that never started (handed to this worker as it stopped), giving their
        attempts back; the jam guard recovers them if Redis is away."""
        if not runs:
            return
        try:
            q.handback([(run.id, run.token) for run in runs], started=False)
        except (RedisUnavailable, redis.ResponseError) as exc:  # a corrupt key: the same
            logger.error(
                "%s: could not hand back %d runs that never started (%s); the jam guard will "
                "recover them",
                q.name,
                len(runs),
                exc,
            )
