"""What staff can do to a queue or a job from the admin, each through ``ConvoyQueue``'s API.

Each action says what it did in one sentence, which is both the message the user sees and the
change message of its admin log entry. An action that finds its job no longer in the state it
needs (it finished, or someone else acted first) raises ``JobNotFound`` and changes nothing.
Destructive actions carry the question their confirmation page asks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from ..exceptions import JobNotFound
from ..queue import ConvoyQueue


@dataclass(frozen=True)
class Done:
    """What an action did, and which listing of the queue to show next ("" for the job page)."""

    message: str
    state: str = ""


@dataclass(frozen=True)
class QueueAction:
    """An action on a whole queue."""

    name: str
    label: str
    run: Callable[[ConvoyQueue], Done]
    # Asked before acting, formatted with the queue's name and stats(); "" acts at once.
    question: str = ""


@dataclass(frozen=True)
class JobAction:
    """An action on one job, offered while the job is in one of ``states``; ``run`` gets the
    queue, the job id and who acts (the user name)."""

    name: str
    label: str
    run: Callable[[ConvoyQueue, str, str], Done]
    states: tuple[str, ...]
    # Asked before acting, formatted with the queue's name and the job's id and state.
    question: str = ""


def _pause(queue: ConvoyQueue) -> Done:
    queue.pause()
    return Done(f"Paused queue {queue.name}: workers stop claiming from it; adds still queue.")


def _resume(queue: ConvoyQueue) -> Done:
    queue.resume()
    return Done(f"Resumed queue {queue.name}: workers claim from it again.")


def _jam_guard(queue: ConvoyQueue) -> Done:
    guarded = queue.jam_guard_round()
    recovered = guarded.recovered
    if guarded.held_until:
        return Done(
            f"Redis is back from an outage: no jammed job of queue {queue.name} is recovered "
            f"until {timezone.localtime(guarded.held_until):%H:%M:%S}, while live workers "
            "renew their leases.",
            "jammed",
        )
    if not recovered:
        return Done(f"Ran the jam guard on queue {queue.name}: no job was jammed.", "jammed")
    actions = Counter(job.action for job in recovered)
    summary = ", ".join(f"{count} {action}" for action, count in sorted(actions.items()))
    return Done(
        f"Ran the jam guard on queue {queue.name}: recovered {len(recovered)} jammed "
        f"job{'s' if len(recovered) != 1 else ''} ({summary}).",
        "jammed",
    )


def _requeue_all(queue: ConvoyQueue) -> Done:
    count = len(queue.requeue_failed())
    return Done(f"Requeued {count} failed job{'s' if count != 1 else ''} of queue {queue.name}.")


def _purge(queue: ConvoyQueue) -> Done:
    count = queue.purge()
    return Done(
        f"Purged queue {queue.name}: removed {count} waiting job{'s' if count != 1 else ''} "
        "and released their ids."
    )


def _requeue(queue: ConvoyQueue, job_id: str, by: str) -> Done:
    queue.requeue_failed([job_id])  # JobNotFound when it is not failed
    return Done(f"Requeued failed job {job_id!r} of queue {queue.name} as a fresh run.")


def _delete(queue: ConvoyQueue, job_id: str, by: str) -> Done:
    state = queue.delete_job(job_id)
    return Done(f"Deleted {state} job {job_id!r} of queue {queue.name}; its id is free.", state)


def _release(queue: ConvoyQueue, job_id: str, by: str) -> Done:
    queue.release_jammed(job_id)
    return Done(
        f"Released jammed job {job_id!r} of queue {queue.name}: dropped, its id is free.", "jammed"
    )


def _cancel(queue: ConvoyQueue, job_id: str, by: str) -> Done:
    state = queue.cancel(job_id, by=by)
    if state is None:
        raise JobNotFound(
            f"Job {job_id!r} of queue {queue.name!r} is not queued, scheduled, processing or "
            "jammed: it finished, failed, or no job has that id."
        )
    if state in ("queued", "scheduled"):
        return Done(
            f"Cancelled {state} job {job_id!r} of queue {queue.name}: removed, its id is free.",
            state,
        )
    return Done(
        f"Cancelled {state} job {job_id!r} of queue {queue.name}: its run was stopped (its "
        "worker lets go of it within a lease renewal) and the job is kept as cancelled."
    )


QUEUE_ACTIONS = {
    action.name: action
    for action in (
        QueueAction("pause", "Pause", _pause),
        QueueAction("resume", "Resume", _resume),
        QueueAction("jam-guard", "Recover jammed jobs now", _jam_guard),
        QueueAction(
            "requeue-failed",
            "Requeue all failed",
            _requeue_all,
            "Queue all {failed} failed jobs of queue {name} again, each as a fresh run?",
        ),
        QueueAction(
            "purge",
            "Purge",
            _purge,
            "Remove every waiting job of queue {name} ({queued} queued, {scheduled} scheduled) "
            "and release their ids? Jobs being processed and failed jobs stay.",
        ),
    )
}
JOB_ACTIONS = {
    action.name: action
    for action in (
        JobAction("requeue", "Requeue", _requeue, ("failed",)),
        JobAction(
            "delete",
            "Delete",
            _delete,
            ("queued", "scheduled", "failed"),
            "Delete the {state} job {id} of queue {name}? It will not run, and its id is free "
            "to be added again.",
        ),
        JobAction(
            "release",
            "Release id",
            _release,
            ("jammed",),
            "Drop the jammed job {id} of queue {name} and release its id? The jam guard would "
            "otherwise queue it again; after this it runs only if it is added again.",
        ),
        JobAction(
            "cancel",
            "Cancel",
            _cancel,
            ("queued", "scheduled", "processing", "jammed"),
            "Cancel the {state} job {id} of queue {name}? A waiting job is removed and its id "
            "freed; a running one is stopped (nothing its run writes afterwards counts) and "
            "kept as cancelled, as a failed job is.",
        ),
    )
}


def job_actions_for(state: str) -> list[JobAction]:
    """Return the actions offered for a job in ``state``."""
    return [action for action in JOB_ACTIONS.values() if state in action.states]
