"""convoy_worker and convoy_jamguard as users run them: real subprocesses, real signals."""

import signal
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_convoy import get_queue
from tests.helpers import manage, run_manage, test_log, wait_until
from tests.jobs import tasks


def started(key: str) -> bool:
    return any(entry.startswith(f"start crashy-{key}") for entry in test_log())


def test_worker_killed_mid_job_is_recovered_by_the_jam_guard_and_runs_again():
    queue = get_queue("crashy")  # LEASE 1 s
    tasks.crashy.enqueue("truck", 1.0)
    worker = manage("convoy_worker", "crashy", "--no-jam-guard")
    try:
        wait_until(lambda: started("truck"), timeout=20)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert queue.get_job("crashy-truck").state == "processing"
    wait_until(lambda: queue.get_job("crashy-truck").state == "jammed", timeout=5)

    guard = manage("convoy_jamguard", "crashy", "--once")
    out, _ = guard.communicate(timeout=30)
    assert guard.returncode == 0, out
    assert "crashy crashy-truck: requeued - worker" in out and "gone" in out
    assert queue.get_job("crashy-truck").attempts == 1

    rerun = manage("convoy_worker", "crashy", "--burst")
    out, _ = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, out
    log = [entry for entry in test_log() if "crashy-truck" in entry]
    assert [entry.split()[0] for entry in log] == ["start", "start", "end"]
    assert log[1].split()[3] == "2"  # the second run is attempt 2
    assert queue.get_job("crashy-truck") is None
    assert queue.stats()["processed_total"] == 1


def test_sigterm_lets_the_running_job_finish_then_exits():
    tasks.crashy.enqueue("graceful", 0.5)
    worker = manage("convoy_worker", "crashy")
    wait_until(lambda: started("graceful"), timeout=20)
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, out
    assert any(entry.startswith("end crashy-graceful") for entry in test_log())
    assert "crashy crashy-graceful attempt 1 done" in out
    assert get_queue("crashy").get_job("crashy-graceful") is None


def test_second_signal_hands_the_job_back_at_once():
    tasks.crashy.enqueue("impatient", 5.0)
    worker = manage("convoy_worker", "crashy")
    wait_until(lambda: started("impatient"), timeout=20)
    worker.send_signal(signal.SIGTERM)
    worker.send_signal(signal.SIGINT)
    out, _ = worker.communicate(timeout=10)
    assert "handed back to the queue" in out
    assert get_queue("crashy").get_job("crashy-impatient").state == "queued"


def test_unknown_queue_is_a_command_error_listing_the_configured_ones():
    with pytest.raises(CommandError, match="Unknown queue.*nope.*Configured queues: crashy"):
        call_command("convoy_worker", "nope")
    with pytest.raises(CommandError, match="Unknown queue.*nope"):
        call_command("convoy_jamguard", "nope", "--once")


def test_jamguard_dry_run_lists_without_recovering(redis_client):
    queue = get_queue("crashy")
    queue.add_job("x")
    queue.claim(1, "gone-worker")
    redis_client.zadd(queue.keys.processing, {"x": 1})
    out = StringIO()
    call_command("convoy_jamguard", "crashy", "--dry-run", stdout=out)
    assert "crashy x: jammed (worker gone-worker" in out.getvalue()
    assert out.getvalue().endswith("crashy: 1 jammed\n")
    assert queue.get_job("x").state == "jammed"
    call_command("convoy_jamguard", "crashy", "--once", "--drop", stdout=out)
    assert "crashy x: dropped" in out.getvalue()
    assert queue.get_job("x") is None


def test_jamguard_dry_run_says_0_jammed_for_each_queue_with_none():
    out = StringIO()
    call_command("convoy_jamguard", "crashy", "fast", "--once", "--dry-run", stdout=out)
    assert out.getvalue() == "crashy: 0 jammed\nfast: 0 jammed\n"


def test_burst_worker_exits_when_its_queues_are_empty():
    for key in "ab":
        tasks.record.enqueue(key)
    result = run_manage("convoy_worker", "default", "--burst")
    assert result.returncode == 0, result.stdout + result.stderr
    assert get_queue("default").stats()["processed_total"] == 2


def test_worker_without_queue_names_serves_every_configured_queue():
    tasks.record.enqueue("a")  # default
    tasks.flaky.enqueue("b", 0)  # retrying
    result = run_manage("convoy_worker", "--burst")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "serving crashy (x1), default (x1), fast (x4), monsterTrucks (x10)" in result.stdout
    assert get_queue("default").stats()["processed_total"] == 1
    assert get_queue("retrying").stats()["processed_total"] == 1


def test_worker_logs_its_own_line_per_django_task_not_djangos_as_well():
    djtasks = pytest.importorskip("tests.djtasks.tasks")
    djtasks.noop_task.enqueue()
    result = run_manage("convoy_worker", "default", "--burst")
    assert result.returncode == 0, result.stdout + result.stderr
    assert get_queue("default").stats()["processed_total"] == 1
    assert "state=" not in result.stdout + result.stderr  # Django's "Task id=... state=..."
    djtasks.noop_task.enqueue()
    verbose = run_manage("convoy_worker", "default", "--burst", "-v", "2")
    assert " INFO Task id=" in verbose.stdout  # -v 2: Django's lines too, in the same format


def test_worker_started_before_its_cluster_is_up_waits_for_it_and_stops_on_sigterm():
    """A Redis Cluster client must reach a node to exist: the worker retries, it does not exit."""
    from django_convoy.testing.servers import free_port

    nobody = f"redis+cluster://127.0.0.1:{free_port()}"
    worker = manage("convoy_worker", "default", env={"CONVOY_TEST_REDIS_URL": nobody})
    lines = []
    for line in worker.stdout:
        lines.append(line)
        if "retrying in" in line:
            break
    time.sleep(2.5)  # past the longest wait between tries: still waiting, not exited
    assert worker.poll() is None, "".join(lines)
    assert "is unreachable" in lines[0], lines[0]
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=10)
    assert worker.returncode == 0, "".join(lines) + out


def test_jamguard_says_redis_is_unreachable_in_one_clean_line_and_goes_on():
    """redis-py's reason ends with a full stop inside convoy's sentence: the line says
    "...refused); retrying", not "refused.).; retrying"."""
    unreachable = {"CONVOY_TEST_REDIS_URL": "redis://127.0.0.1:1/0"}
    guard = manage("convoy_jamguard", "--interval", "0.2", env=unreachable)
    try:
        for _ in range(20):  # it writes a line a round: never more than a few before this one
            line = guard.stdout.readline().rstrip("\n")
            if "retrying" in line:
                break
    finally:
        guard.kill()
        guard.wait()
    assert line.startswith("Redis at 127.0.0.1:1 is unreachable (")
    assert line.endswith("refused); retrying in 0.2 s")
