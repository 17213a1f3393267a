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
peak (of a group)
    the most runs of one group executing at one moment, from the journal's ``[start, end]``
    (a run whose process was killed ends at the kill). A run's interval lies inside the time
    its slot is taken in Redis (from its claim to its ack), so a peak above ``GROUP_CONCURRENCY``
    proves the cap broken. Counted over the runs that held their lease to their end: a run that
    lost it gave its slot back with it (those are zombies, counted apart).
rate excess
    how far the starts of a rate-limited queue (or group) went past what its token bucket
    allows, by Redis's clock (the journal's ``claimed_ms``: the moment the claim spent the
    token): the largest ``n - burst - (b - a) / interval`` over every stretch ``[a, b]`` holding
    ``n`` starts. At most 0 when the limit held.
busiest period
    the most starts in any window ``[t, t + period]``: at most ``burst + count`` when the limit
    held (the rate excess of a stretch one period long), and ``count`` or more once a backlog
    waited for it long enough.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
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


# -- flow control -----------------------------------------------------------------------------


def peak_overlap(spans: Iterable[tuple[float, float]]) -> int:
    """The most of ``spans`` (start, end) open at one moment; one ending as another starts
    does not overlap it."""
    events = sorted(
        (moment, step) for start, end in spans for moment, step in ((start, 1), (end, -1))
    )
    peak = open_now = 0
    for _, step in events:  # at one moment, ends (-1) sort before starts
        open_now += step
        peak = max(peak, open_now)
    return peak


def group_peaks(
    runs: Iterable[RunRecord], group_of: Callable[[RunRecord], str | None], died: dict[int, int]
) -> dict[str, int]:
    """Each group's peak (see the module docstring); ``died``: worker pid -> when it was killed
    (journal ns), the end of its runs that logged none. A run still without an end counts as
    running to the end of time."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run in runs:
        group = group_of(run)
        if group is None or run.owner is False:
            continue
        end = run.end if run.end is not None else died.get(run.worker_pid, math.inf)
        spans[group].append((run.start, end))
    return {group: peak_overlap(found) for group, found in sorted(spans.items())}


def rate_excess(starts_ms: Iterable[float], interval_ms: float, burst: int) -> float:
    """The rate excess of these starts (see the module docstring); -burst for none."""
    worst, lowest = -float(burst), math.inf
    for j, moment in enumerate(sorted(starts_ms)):
        here = j - moment / interval_ms
        lowest = min(lowest, here)  # the best start i <= j of a stretch ending at j
        worst = max(worst, here - lowest + 1 - burst)
    return worst


def busiest_period(starts_ms: Iterable[float], period_ms: float) -> int:
    """The most starts in any window ``[t, t + period_ms]``."""
    ordered = sorted(starts_ms)
    most, first = 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] < moment - period_ms:
            first += 1
        most = max(most, last - first + 1)
    return most


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
