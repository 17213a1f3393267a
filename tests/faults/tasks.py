"""The job every fault scenario runs: it logs its start and end, and misbehaves on request.

Jobs are plain ``add_job`` jobs whose payload says what to do (all keys optional):

``sleep``  seconds to run;
``hold``   a file path: run until it exists (at most ``hold_max`` seconds, default 30);
``crash``  ``"always"`` or ``"once"``: SIGKILL the process running the job after sleeping;
``fail``   ``"once"``: raise on the first run that gets this far (later runs succeed);
``tag``    anything, copied into the journal (the rerun scenario tells payloads apart by it);
``claimed`` true: journal when Redis started the run too (``claimed_ms``: its claim, or its
           hand-off, by Redis's clock) and when the job was queued (``enqueued_ms``; the same
           moment for a run handed to a waiting worker by its add), read before the start.

"Once" is remembered in a marker file beside the journal, so it holds across processes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from django_convoy import convoy_processor, convoy_task, current_job, get_queue, still_owner

from . import journal
from .queues import FAULT_QUEUES


def perform(job_id: str, payload: Any) -> None:
    """Run one fault job: journal its start, do what the payload says, journal its end."""
    job = current_job()
    spec = payload if isinstance(payload, dict) else {}
    base = {"pid": os.getpid(), "q": job.queue, "id": job.id, "tok": int(job.token)}
    claimed = _claimed(job.queue, job.id) if spec.get("claimed") else {}
    journal.append(
        "runs",
        {
            "ev": "start",
            "t": journal.now_ns(),
            **base,
            "att": job.attempt,
            # The worker's pid: this process's, or its parent's in a child of the worker (the
            # process pool, or the quarantine of jobs back from a jam).
            "wpid": os.getppid() if multiprocessing.parent_process() else os.getpid(),
            "tag": spec.get("tag"),
            "wall": time.time(),  # this process's wall clock: the clock-skew scenario reads it
            **claimed,
        },
    )
    ok = False
    try:
        _misbehave(spec, job.id)
        ok = True
    finally:
        ended = journal.now_ns()  # before asking Redis: see journal's docstring
        try:
            owner = still_owner()
        except Exception:  # Redis unreachable: ownership unknown
            owner = None
        journal.append("runs", {"ev": "end", "t": ended, **base, "ok": ok, "owner": owner})


def _misbehave(spec: dict[str, Any], job_id: str) -> None:
    if spec.get("hold"):
        deadline = time.monotonic() + float(spec.get("hold_max", 30))
        while not os.path.exists(spec["hold"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(float(spec.get("sleep", 0)))
    crash = spec.get("crash")
    if crash == "always" or (crash == "once" and _first_time("crashed", job_id)):
        os.kill(os.getpid(), signal.SIGKILL)
    if spec.get("fail") == "once" and _first_time("failed", job_id):
        raise RuntimeError(f"fault injection: {job_id} fails its first run")


def _claimed(queue: str, job_id: str) -> dict[str, int | None]:
    """When Redis started the run holding ``job_id`` (its ``started_at``, on Redis's clock: the
    moment its claim or hand-off spent the rate limits' tokens) and queued its job. Asked again
    for a while if Redis is down (the restart scenario); None when it never answers."""
    for _ in range(100):
        try:
            job = get_queue(queue).get_job(job_id)
        except Exception:  # Redis unreachable: a restart scenario's outage
            time.sleep(0.1)
            continue
        return {
            "claimed_ms": _ms(job.started_at if job else None),
            "enqueued_ms": _ms(job.enqueued_at if job else None),
        }
    return {"claimed_ms": None, "enqueued_ms": None}


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1000)


def _first_time(what: str, job_id: str) -> bool:
    """Create a marker for (what, job_id); True if this call created it."""
    marker = Path(os.environ[journal.ENV]) / f"{what}-{job_id}"
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    os.fsync(fd)
    os.close(fd)
    return True


for _queue in FAULT_QUEUES:
    convoy_processor(_queue)(perform)


@convoy_task(queue="faults-side")
def scheduled(sleep: float = 0.0) -> None:
    """The job of the schedules of ``test_schedules.py``: journalled like every fault job."""
    perform(current_job().id, {"sleep": sleep})
