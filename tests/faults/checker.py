"""The checker: turns the journal, the workers' logs and Redis's final state into figures.

Definitions (each figure a scenario prints uses these):

lost
    an id whose add was acknowledged, that no run finished (returned normally, not known to
    have lost its lease) and that Redis no longer holds in any state: nothing will run it.
overlap (live)
    two runs of one id that both held a live lease at the same moment. Proven from the journal:
    run ``x`` ends with ``owner: true`` (it held the lease from its claim to ``x.end``), and a run
    ``y`` with a newer fencing token started inside ``(x.start, x.end)``. Must always be 0.
overlap (zombie)
    two runs of one id executing at once where the older one had already lost its lease (a
    stopped, partitioned or orphaned process carrying on): fencing makes its writes stale.
re-runs
    runs beyond the ones the scenario asked for (starts - expected runs).
refused
    stale writes Redis refused, from the workers' logs: late acks, failure reports, renewals
    and hand-backs of runs whose job had been taken over.
left behind
    hash entries of ids in no state (body, meta, errors, rerun), runs of ids not processing,
    after the scenario drained.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from django_convoy.store.keys import QueueKeys

from .journal import RunRecord

STATES = ("queued", "scheduled", "processing", "failed")
REFUSALS = {  # what the worker logs when Redis refuses a write of a run it no longer owns
    "ack refused": "ack",
    "failure report refused": "fail",
    "lease lost, the job was taken": "renew",
    "already taken over": "handback",
}
DONE = re.compile(r" (?P<queue>\S+) (?P<id>\S+) attempt (?P<attempt>\d+) done in ")
RECOVERED = re.compile(  # what convoy_jamguard prints for each jammed run it recovered
    r"^(?P<queue>\S+) (?P<id>\S+): (?:requeued|rerun|failed|dropped) - ", re.MULTILINE
)


@dataclass
class Figures:
    """One scenario's figures, printed as the test runs and again in the terminal summary."""

    scenario: str
    values: dict[str, Any] = field(default_factory=dict)

    def show(self) -> str:
        width = max(map(len, self.values), default=0)
        lines = [f"== {self.scenario}"]
        lines += [f"   {name:<{width}}  {value}" for name, value in self.values.items()]
        return "\n".join(lines)


REPORTED: list[Figures] = []


def report(scenario: str, **values: Any) -> Figures:
    """Print a scenario's figures and keep them for the end-of-run summary."""
    figures = Figures(scenario, {name.replace("_", " "): value for name, value in values.items()})
    REPORTED.append(figures)
    print("\n" + figures.show())
    return figures


# -- the journal ------------------------------------------------------------------------------


def by_id(runs: Iterable[RunRecord]) -> dict[str, list[RunRecord]]:
    """Runs grouped by job id, each group in start order."""
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: r.start):
        groups[run.id].append(run)
    return groups


def overlaps(runs: Iterable[RunRecord]) -> tuple[list[tuple], list[tuple]]:
    """Return (live, zombie) overlapping pairs of runs of the same id (see module docstring)."""
    live, zombie = [], []
    for group in by_id(runs).values():
        for i, x in enumerate(group):
            for y in group[i + 1 :]:
                if x.end is not None and x.start <= y.start < x.end:
                    older, newer = (x, y) if x.token < y.token else (y, x)
                    if older is x and x.owner:
                        live.append((x, y))
                    else:
                        zombie.append((x, y))
    return live, zombie


def completed_ids(runs: Iterable[RunRecord]) -> set[str]:
    """Ids some run completed: returned normally while it still held its lease."""
    return {run.id for run in runs if run.completed}


def finished_ids(runs: Iterable[RunRecord]) -> set[str]:
    """Ids some run returned normally for, not known to have lost its lease by then (its
    ownership is unknown when Redis was unreachable at the end: its ack may land later)."""
    return {run.id for run in runs if run.ok and run.owner is not False}


def lost(
    expected: Iterable[str],
    runs: Iterable[RunRecord],
    present: set[str],
    acked: Iterable[str] = (),
) -> list[str]:
    """Acknowledged ids that no run finished, no worker got acked, and Redis no longer holds."""
    return sorted(set(expected) - finished_ids(runs) - set(acked) - present)


def starts(runs: Iterable[RunRecord]) -> Counter:
    """How many times each id started."""
    return Counter(run.id for run in runs)


# -- the workers' logs ------------------------------------------------------------------------


def refusals(*logs: str) -> Counter:
    """Stale writes refused, by kind, as the workers logged them."""
    counts: Counter = Counter()
    for log in logs:
        for line in log.splitlines():
            for needle, kind in REFUSALS.items():
                if needle in line:
                    counts[kind] += 1
    return counts


def acks(log: str) -> list[tuple[str, str, int]]:
    """(queue, id, attempt) of every run whose ack Redis accepted, from one worker's log."""
    return [(m["queue"], m["id"], int(m["attempt"])) for m in DONE.finditer(log)]


def recoveries(*logs: str) -> Counter:
    """How many times ``convoy_jamguard`` processes recovered each (queue, id), from their logs."""
    return Counter((m["queue"], m["id"]) for log in logs for m in RECOVERED.finditer(log))


# -- Redis ------------------------------------------------------------------------------------


def states(client: redis.Redis, keys: QueueKeys) -> dict[str, str]:
    """Every id Redis holds in a state, mapped to the state (an id in two states raises)."""
    found: dict[str, str] = {}
    for state, key in (*((s, getattr(keys, s)) for s in STATES), ("queued", keys.grouped)):
        for job_id in client.zrange(key, 0, -1):
            assert job_id not in found, f"{job_id!r} is both {found[job_id]} and {state}"
            found[job_id] = state
    return found


def left_behind(client: redis.Redis, keys: QueueKeys) -> dict[str, list[str]]:
    """Hash entries that outlived their job: the schema says they exist only in these states."""
    held = states(client, keys)
    processing = {job_id for job_id, state in held.items() if state == "processing"}
    stray = {
        "jobs": [i for i in client.hkeys(keys.jobs) if i not in held],
        "errors": [i for i in client.hkeys(keys.errors) if i not in held],
        "rerun": [i for i in client.hkeys(keys.rerun) if i not in held],
        "run": [i for i in client.hkeys(keys.run) if i not in processing],
        "group": [i for i in client.hkeys(keys.group) if i not in held],
    }
    return {name: ids for name, ids in stray.items() if ids}


def count_left_behind(client: redis.Redis, keys: QueueKeys) -> int:
    """How many hash entries outlived their job."""
    return sum(map(len, left_behind(client, keys).values()))


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank); 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]
