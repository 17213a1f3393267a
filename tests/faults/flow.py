"""Flow control's limits in real processes: the scenario of ``test_flow_limits.py`` (on a private
redis-server) and of tests/cluster/test_flow_limits.py (on a Redis Cluster's primaries).

Jobs of a few groups (and some of none) go to queues with ``GROUP_CONCURRENCY``, ``RATE_LIMIT``
or ``GROUP_RATE_LIMIT`` while real workers wait for them: first a few, one at a time, slower
than the limits (so waiting workers are handed them, and the hand-off must respect the limits
too), then the rest at once (so a backlog waits, and the claims must hold it back). Each run
journals its start and end (``tasks.py``), and when Redis started it (``claimed_ms``, Redis's
clock); ``figures`` reads the limits' figures from that (defined in ``checker.py``), and
``assert_limits_held`` says what they must be.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from django_convoy.queue import Queue
from django_convoy.store.keys import workers_registry_key

from . import checker
from .cluster import Processes
from .journal import RunRecord

# The stored bucket keeps its time to a ten-thousandth of a ms and the claim rounds its token
# count up by a millionth: a rate excess this small is rounding, not a start too many.
ROUNDING = 0.01


@dataclass(frozen=True)
class Load:
    """The jobs of one queue: ``per_group`` of each group (None: jobs without one), each
    running ``sleep`` s; ``trickle`` of each added one at a time before the rest."""

    groups: tuple[str | None, ...]
    per_group: int
    sleep: float
    trickle: int = 2


def job_id(queue: str, group: str | None, n: int) -> str:
    return f"{queue}-{group or 'none'}-{n}"


def payload(group: str | None, sleep: float) -> dict:
    """A job that journals its group (as its tag) and when Redis started its run."""
    return {"sleep": sleep, "tag": group, "claimed": True}


def add_load(queues: dict[str, Queue], loads: dict[str, Load], pause: float = 0.15) -> list[str]:
    """Add every queue's load as the module docstring says; return the ids added."""
    ids: list[str] = []
    for n in range(max(load.trickle for load in loads.values())):
        for name, load in loads.items():
            for group in load.groups if n < load.trickle else ():
                queues[name].add_job(
                    job_id(name, group, n), payload(group, load.sleep), group=group
                )
                ids.append(job_id(name, group, n))
        time.sleep(pause)
    for name, load in loads.items():
        for group in load.groups:
            rest = [
                (job_id(name, group, n), payload(group, load.sleep))
                for n in range(load.trickle, load.per_group)
            ]
            queues[name].add_jobs(rest, group=group)
            ids += [job for job, _ in rest]
    return ids


def run_load(
    processes: Processes,
    queues: dict[str, Queue],
    loads: dict[str, Load],
    workers: Sequence[tuple[str, ...]],
    waiting: int,
) -> tuple[list[str], float]:
    """Start a worker per entry of ``workers`` (its options) on every queue, add the loads once
    all of them are up and ``waiting`` claimers (threads: one per worker; --pool processes:
    each child; on queues in several Cluster slots: none) wait to be handed a job on each
    queue, and wait until every job ran; return the ids and the seconds it took."""
    names = list(queues)
    for k, options in enumerate(workers):
        processes.worker(*names, name=f"worker{k}", options=options)
    first = next(iter(queues.values()))
    client, registry = first.client, workers_registry_key(first.key_prefix)
    processes.wait_for(lambda: client.zcard(registry) == len(workers), 60, "the workers up")
    processes.wait_for(
        lambda: all(client.zcard(queue.keys.idle) >= waiting for queue in queues.values()),
        60,
        f"{waiting} claimers waiting on every queue",
    )
    began = time.monotonic()
    ids = add_load(queues, loads)

    def done() -> bool:
        return sum(queue.stats()["processed_total"] for queue in queues.values()) >= len(ids)

    processes.wait_for(done, 60, "every job run")
    seconds = time.monotonic() - began
    processes.stop_all()
    return ids, seconds


def starts_ms(runs: Iterable[RunRecord]) -> list[int]:
    return [run.claimed_ms for run in runs if run.claimed_ms is not None]


def figures(queue: Queue, runs: list[RunRecord]) -> dict:
    """The flow control figures of ``queue``'s runs (``checker.py`` defines them)."""
    config, mine = queue.config, [run for run in runs if run.queue == queue.name]
    found: dict = {
        "runs": len(mine),
        "runs_that_lost_their_lease": sum(run.owner is False for run in mine),
        "starts_redis_never_dated": sum(run.claimed_ms is None for run in mine),
        # Handed to a waiting worker by their add (or claimed within the same ms of it).
        "started_at_their_add": sum(run.claimed_ms == run.enqueued_ms for run in mine),
    }
    if config.group_concurrency:
        found["group_concurrency"] = config.group_concurrency
        found["peaks"] = checker.group_peaks(mine, attrgetter("tag"), {})
    for key, limit, per_group in (
        ("rate_limit", config.rate_limit, False),
        ("group_rate_limit", config.group_rate_limit, True),
    ):
        if limit is None:
            continue
        sets: dict[str, list[RunRecord]] = {}  # the queue's starts, or each group's
        for run in mine:
            if not per_group or run.tag is not None:
                sets.setdefault(run.tag if per_group else "queue", []).append(run)
        found[key] = str(limit)
        found[f"{key}_allows_per_period"] = limit.burst + limit.count
        found[f"{key}_busiest_period"] = {
            name: checker.busiest_period(starts_ms(got), limit.period_ms)
            for name, got in sorted(sets.items())
        }
        found[f"{key}_excess"] = {
            name: round(checker.rate_excess(starts_ms(got), limit.interval_ms, limit.burst), 3)
            for name, got in sorted(sets.items())
        }
    return found


def assert_limits_held(queue: Queue, found: dict, *, met: bool = True) -> None:
    """Each limit of ``queue`` held: no group above its cap, no stretch of starts above its
    bucket's allowance; and, with ``met``, each was reached too (every group at its cap at some
    moment, every rate met for a whole period): held exactly, not by running slowly."""
    config = queue.config
    assert found["starts_redis_never_dated"] == 0, found
    if config.group_concurrency:
        peaks = found["peaks"]
        assert max(peaks.values()) <= config.group_concurrency, peaks
        if met:
            assert set(peaks.values()) == {config.group_concurrency}, peaks
    for key in ("rate_limit", "group_rate_limit"):
        limit = getattr(config, key)
        if limit is None:
            continue
        assert max(found[f"{key}_excess"].values()) <= ROUNDING, found
        busiest = found[f"{key}_busiest_period"]
        assert max(busiest.values()) <= limit.burst + limit.count, found
        if met:
            assert min(busiest.values()) >= limit.count, found


def report_load(
    title: str, ids: list[str], runs: list[RunRecord], seconds: float, found: dict
) -> None:
    """Report a load's figures (``found``: each queue's, from ``figures``) and check that every
    job of it ran to the end, none lost."""
    checker.report(
        title,
        seconds=round(seconds, 1),
        jobs=len(ids),
        jobs_lost=len(checker.lost(ids, runs, set())),
        reruns=len(runs) - len(ids),
        **{name.replace("-", "_"): figures for name, figures in found.items()},
    )
    assert not checker.lost(ids, runs, set())
    assert checker.completed_ids(runs) == set(ids)
