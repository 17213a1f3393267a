"""convoy_worker --processes N: one command, N supervised worker processes, under faults."""

import os
import signal
import time

import pytest

from django_convoy import get_queue
from django_convoy.dashboard.statistics import get_statistics
from django_convoy.worker.supervisor import ProcessesFailed, Supervisor, shares
from tests.helpers import manage, test_log, wait_until
from tests.jobs import tasks


def alive_workers() -> list:
    return [worker for worker in get_statistics().workers if worker.alive]


def running(job_id: str) -> list[int]:
    """The pids of the workers whose heartbeat says they run ``job_id``."""
    return [w.pid for w in alive_workers() if any(j.get("id") == job_id for j in w.current)]


def test_max_jobs_is_shared_out_n_in_all():
    assert shares(10, 4) == [3, 3, 2, 2]
    assert shares(2, 4) == [1, 1, 0, 0]
    assert shares(None, 3) == [None, None, None]


def test_burst_with_four_processes_ends_when_the_queue_is_empty(redis_client):
    for i in range(200):
        tasks.record.enqueue(f"b{i}", 0.001)
    worker = manage("convoy_worker", "default", "--processes", "4", "--burst", "-v", "1")
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, out
    assert get_queue("default").stats()["processed_total"] == 200
    assert out.count("worker process") >= 8  # each of the four started and exited
    assert (
        len(
            {
                line.split("(pid ")[1].split(")")[0]
                for line in out.splitlines()
                if "started (pid" in line
            }
        )
        == 4
    )


def test_each_process_is_a_worker_of_its_own():
    worker = manage("convoy_worker", "default", "--processes", "2")
    try:
        wait_until(lambda: len(alive_workers()) == 2, timeout=60)
        pids = {w.pid for w in alive_workers()}
        assert worker.pid not in pids and len(pids) == 2
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, out
    assert alive_workers() == []  # every child deregistered


def test_a_child_killed_mid_job_is_replaced_and_its_run_recovered():
    queue = get_queue("crashy")  # LEASE 1 s
    tasks.crashy.enqueue("victim", 5.0)  # long enough to be killed in, however busy the machine
    worker = manage("convoy_worker", "crashy", "--processes", "2", "-v", "1")
    try:
        # Killed once its job has begun (Redis holds a run from its claim, a moment earlier).
        wait_until(lambda: any(e.startswith("start crashy-victim") for e in test_log()), 60)
        victim = wait_until(lambda: running("crashy-victim"), timeout=30)
        os.kill(victim[0], signal.SIGKILL)
        wait_until(lambda: queue.stats()["processed_total"] == 1, timeout=60)
        wait_until(lambda: len(alive_workers()) == 2, timeout=30)  # replaced
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=60)
    runs = [entry.split()[0] for entry in test_log() if "crashy-victim" in entry]
    assert runs == ["start", "start", "end"], out  # recovered by its lease, run once more
    assert "was killed by SIGKILL" in out and out.count("started (pid") == 3, out
    assert worker.returncode == 1, out  # a child failed, and the exit status says so


def test_sigterm_during_a_drain_loses_nothing_and_claims_nothing_in_the_grace():
    for i in range(40):
        tasks.record.enqueue(f"d{i}", 0.2)
    worker = manage("convoy_worker", "default", "--processes", "4", "--grace", "5")
    try:
        wait_until(lambda: sum(e.startswith("start ") for e in test_log()) >= 4, timeout=60)
        worker.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, out
    assert time.monotonic() - stopped_at < 15
    log = test_log()
    started = [e.split()[1] for e in log if e.startswith("start ")]
    ended = [e.split()[1] for e in log if e.startswith("end ")]
    stats = get_queue("default").stats()
    assert sorted(started) == sorted(ended)  # each started job finished in the grace, once
    assert stats["processing"] == 0 and stats["jammed"] == 0
    assert stats["processed_total"] == len(ended)
    assert stats["processed_total"] + stats["queued"] == 40  # nothing lost


# In-process, so forked from the test process and its threads: the children only fail to start.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_that_cannot_start_stops_the_command_with_its_error():
    supervisor = Supervisor(2, ["default"], {"pool": "no-such-pool"})
    began = time.monotonic()
    with pytest.raises(ProcessesFailed, match="could not start: ValueError: pool must be one of"):
        supervisor.run()
    assert time.monotonic() - began < 30  # no restart loop


def test_processes_must_be_a_count_or_auto():
    worker = manage("convoy_worker", "default", "--processes", "0")
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode != 0
    assert "must be a number of processes, at least 1, or auto" in out
