"""--pool processes: a hung job's child is killed at JOB_TIMEOUT, a crashed child is replaced."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from django_convoy import get_queue
from django_convoy.worker import Worker
from tests.helpers import ThreadedWorker, job_state, manage, test_log, wait_until
from tests.jobs import tasks


def ended(job_id: str) -> bool:
    return any(entry.startswith(f"end {job_id} ") for entry in test_log())


def test_jobs_run_in_child_processes_not_in_the_worker():
    tasks.crash_self.enqueue("probe-not-run")  # would kill the test process on a thread
    tasks.slow.enqueue("a", 0.01)
    Worker(["fast"], pool="processes", concurrency=1, burst=True).run()
    assert ended("slow-a")
    job = get_queue("fast").get_job("crash-probe-not-run")
    assert job.state == "failed"
    assert job.last_error["reason"] == "crash"
    assert "killed by SIGKILL" in job.last_error["message"]
    start = next(e for e in test_log() if e.startswith("start crash-probe-not-run"))
    assert f"'pid': {os.getpid()}" not in start


def test_hung_job_is_killed_at_its_timeout_and_the_next_job_runs():
    queue = get_queue("fast")  # JOB_TIMEOUT 0.5 s
    tasks.slow.enqueue("hung", 30)
    with ThreadedWorker("fast", pool="processes", concurrency=1):
        wait_until(lambda: job_state(queue, "slow-hung") == "failed", timeout=20)
        assert queue.get_job("slow-hung").last_error["reason"] == "timeout"
        tasks.slow.enqueue("next", 0.01)
        wait_until(lambda: ended("slow-next"), timeout=20)
    assert not ended("slow-hung")  # killed, not left running


def started(job_id: str) -> bool:
    return any(entry.startswith(f"start {job_id} ") for entry in test_log())


def test_a_run_whose_lease_was_lost_has_its_child_killed_and_its_slot_freed():
    """A worker that stalled past its lease (SIGSTOP, a GC pause) finds its run taken over:
    the child running it must die at once, and its slot go to the next job, not stay hung."""
    queue = get_queue("crashy")  # LEASE 1 s, JOB_TIMEOUT 30 s: no timeout would save it
    tasks.crashy.enqueue("hung", 60)
    with ThreadedWorker("crashy", pool="processes", concurrency=1, jam_guard=False):
        wait_until(lambda: started("crashy-hung"), timeout=30)
        # Taken over as after a stall: jammed, recovered, then removed before it runs again.
        queue.client.zadd(queue.keys.processing, {"crashy-hung": 0}, xx=True)
        assert [job.action for job in queue.jam_guard()] == ["requeued"]
        queue.delete_job("crashy-hung")
        tasks.crashy.enqueue("next", 0)
        wait_until(lambda: ended("crashy-next"), timeout=20)
    assert not ended("crashy-hung")


def test_a_lost_run_kills_its_own_child_not_one_of_another_queue_with_the_same_token():
    """Fencing tokens count per queue, so a worker serving two queues holds runs with equal
    tokens: giving up on one (its lease lost: cancelled here) must kill the child running it,
    not the first child that runs a run with that token (found by the flow-control scenario,
    tests/faults/test_flow_limits.py, as jobs failed with ChildDied on a healthy worker)."""
    tasks.record.enqueue("bystander", 3)  # "default": listed first, its first token is 1
    tasks.crashy.enqueue("hung", 60)  # "crashy": its first token is 1 too
    with ThreadedWorker("default", "crashy", pool="processes", concurrency=1, jam_guard=False):
        wait_until(lambda: started("rec-bystander") and started("crashy-hung"), timeout=60)
        tokens = {entry.split()[1]: entry.split()[2] for entry in test_log()}
        assert tokens["rec-bystander"] == tokens["crashy-hung"]
        assert get_queue("crashy").cancel("crashy-hung") == "processing"
        wait_until(lambda: job_state(get_queue("default"), "rec-bystander") != "processing")
    assert ended("rec-bystander")
    assert job_state(get_queue("default"), "rec-bystander") == "done"  # acked, its result kept
    assert not ended("crashy-hung")


def test_a_worker_stalled_past_its_lease_kills_its_child_and_stops_within_its_grace():
    """The adversarial pass's scenario: a worker stopped (SIGSTOP) longer than LEASE while its
    job hangs, the job taken over meanwhile. Once it runs again its child must die, and a
    SIGTERM must stop it within --grace (children ignore SIGTERM: it is the worker's)."""
    queue = get_queue("crashy")  # LEASE 1 s, JOB_TIMEOUT 30 s
    tasks.crashy.enqueue("hung", 60)
    worker = manage("convoy_worker", "crashy", "--pool", "processes", "--grace", "1")
    try:
        wait_until(lambda: started("crashy-hung"), timeout=60)
        worker.send_signal(signal.SIGSTOP)
        time.sleep(1.5)  # past its lease
        assert [job.action for job in queue.jam_guard()] == ["requeued"]
        queue.delete_job("crashy-hung")  # taken over, and done elsewhere
        worker.send_signal(signal.SIGCONT)
        tasks.crashy.enqueue("next", 0)
        wait_until(lambda: ended("crashy-next"), timeout=30)  # its slot was freed
        began = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        assert time.monotonic() - began < 10
        assert worker.returncode == 0
        assert "lease lost" in worker.stdout.read()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert not ended("crashy-hung")


def test_a_worker_stopped_twice_while_its_children_run_jobs_exits_cleanly():
    """A second SIGTERM kills the busy children at once; their executors must not start
    replacements that shutdown then joins half started (an AssertionError traceback)."""
    queue = get_queue("crashy")  # JOB_TIMEOUT 30 s
    for n in range(3):
        tasks.crashy.enqueue(f"busy-{n}", 20)
    worker = manage("convoy_worker", "crashy", "--pool", "processes", "--concurrency", "4")
    try:
        wait_until(lambda: all(started(f"crashy-busy-{n}") for n in range(3)), timeout=60)
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        output = worker.stdout.read()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, output
    assert "Traceback" not in output, output
    assert [job_state(queue, f"crashy-busy-{n}") for n in range(3)] == ["queued"] * 3


def test_ctrl_c_reaches_the_children_too_but_their_runs_are_handed_back_not_failed():
    """A Ctrl-C reaches the whole process group, the children included: they ignore it (a
    spawned one holds it blocked until then), so none dies of it. With no grace their runs go
    back to the queue at once; each job began, so each run counts as an attempt."""
    queue = get_queue("crashy")
    for n in range(3):
        tasks.crashy.enqueue(f"early-{n}", 5)
    worker = manage(
        "convoy_worker", "crashy", "--pool", "processes", "--concurrency", "3", "--grace", "0",
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: all(started(f"crashy-early-{n}") for n in range(3)), timeout=60)
        os.killpg(worker.pid, signal.SIGINT)
        worker.wait(timeout=30)
        output = worker.stdout.read()
    finally:
        if worker.poll() is None:
            worker.kill()
    stats = queue.stats()
    assert (stats["queued"], stats["failed"], stats["processing"]) == (3, 0, 0), output
    assert "setting Django up" not in output
    assert [queue.get_job(f"crashy-early-{n}").attempts for n in range(3)] == [1, 1, 1], output


CHILD_SIGNALLED_AT_ONCE = """
import os, signal
import django
django.setup()
from django_convoy.worker.pool import ChildProcess
child = ChildProcess("probe")  # the process's first child: it starts the resource tracker
os.kill(child.process.pid, signal.SIGINT)  # long before the child can ignore it
child.wait_ready()
child.stop()
print("ready")
"""


def test_a_worker_signal_cannot_kill_even_the_first_child_while_it_sets_django_up():
    """Starting multiprocessing's resource tracker unblocks SIGINT and SIGTERM in the thread
    that starts it: the worker's first child used to be spawned open to a Ctrl-C."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD_SIGNALLED_AT_ONCE],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == "ready", done.stderr


def pool_children(pid: int) -> list[int]:
    """The pool children of worker ``pid`` (not multiprocessing's resource tracker), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:  # it exited meanwhile
            continue
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            if "resource_tracker" not in command_line(int(entry)):
                found.append(int(entry))
    return sorted(found)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_pool_forks_its_first_children_and_spawns_their_replacements():
    """Before the worker starts a thread, its children are forked: they start with its Django
    set up, at once. A replacement comes when the worker has threads, so it is spawned and sets
    Django up itself."""
    worker = manage("convoy_worker", "crashy", "--pool", "processes", "--concurrency", "2")
    try:
        wait_until(lambda: len(pool_children(worker.pid)) == 2, timeout=60)
        first = pool_children(worker.pid)
        assert [command_line(pid) for pid in first] == [command_line(worker.pid)] * 2
        os.kill(first[0], signal.SIGKILL)
        wait_until(lambda: len(set(pool_children(worker.pid)) - set(first)) == 1, timeout=60)
        (replacement,) = set(pool_children(worker.pid)) - set(first)
        assert "multiprocessing.spawn" in command_line(replacement)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


FORKABLE = """
import threading, time
import django
django.setup()
from django.db import connection
from django_convoy.worker.pool import forkable
alone = forkable()
connection.ensure_connection()
with_database = forkable()
connection.close()
threading.Thread(target=time.sleep, args=(1,), daemon=True).start()
print(alone, with_database, forkable())
"""


def test_a_child_is_forked_only_from_one_thread_with_no_database_connection_open():
    """A fork copies a lock another thread holds (locked, for good) and shares an open
    database socket with the child: either makes the worker spawn instead."""
    done = subprocess.run(
        [sys.executable, "-c", FORKABLE],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.split() == ["True", "False", "False"], done.stderr


def test_a_run_its_child_acked_is_not_taken_for_a_lost_lease():
    """The worker renews its children's runs from a view of their slots up to 50 ms old: a
    renewal refused because the child acked the run meanwhile is no lost lease (no warning, no
    child killed)."""
    for n in range(150):
        tasks.slow.enqueue(f"short-{n}", 0.01)
    worker = manage("convoy_worker", "fast", "--pool", "processes", "--concurrency", "2", "--burst")
    output, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, output
    assert all(ended(f"slow-short-{n}") for n in range(150)), output
    assert "lease lost" not in output, output
