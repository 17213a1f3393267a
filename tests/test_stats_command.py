"""convoy_stats: the queues and workers as a table, as JSON, and redrawn in a real terminal."""

import json
import os
import shlex
import shutil
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_convoy import get_queue
from django_convoy.testing import drain
from tests.helpers import ROOT, ThreadedWorker, wait_until
from tests.jobs import tasks


def stats_json(*args: str) -> dict:
    out = StringIO()
    call_command("convoy_stats", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_json_gives_each_queue_field_by_field():
    queue = get_queue("default")
    tasks.record.enqueue("done-1")
    tasks.record.enqueue("done-2")
    tasks.boom.enqueue("no")
    assert drain("default").processed == ("rec-done-1", "rec-done-2")
    tasks.record.enqueue("waiting")
    assert not tasks.record.enqueue("waiting").added
    queue.add_job("later", delay=60)

    data = stats_json("default")

    assert list(data) == ["now", "queues", "workers"]
    assert list(data["queues"]) == ["default"]
    found = data["queues"]["default"]
    oldest = found.pop("oldest_seconds")
    assert 0 <= oldest < 5
    wait_p50, wait_p95 = found.pop("wait_p50_seconds"), found.pop("wait_p95_seconds")
    assert 0 <= wait_p50 <= wait_p95 < 1  # three first runs, drained at once
    duration_p50 = found.pop("duration_p50_seconds")
    assert 0 <= duration_p50 <= found.pop("duration_p95_seconds")
    assert found == {
        "paused": False,
        "queued": 1,
        "processing": 0,
        "jammed": 0,
        "scheduled": 1,
        "failed": 1,
        "processed_total": 2,
        "failed_total": 1,
        "retried_total": 0,
        "recovered_total": {"requeued": 0, "failed": 0, "rerun": 0, "dropped": 0},
        "adds_total": {"added": 5, "duplicate": 1},
        "stale_writes_refused_total": 0,
        "processed_last_minute": 2.0,
        "failed_last_minute": 1.0,
        "workers": 0,
        "throttled": False,
        "groups": 0,
        "groups_held": 0,
    }
    assert data["workers"] == []


def test_flow_control_shows_whether_a_queue_throttles_and_how_many_groups_wait(settings):
    """A queue whose RATE_LIMIT held a claim back is marked throttled; a capped group whose
    next job waits counts as held."""
    queues = {
        **settings.CONVOY["QUEUES"],
        "limited": {"RATE_LIMIT": "1/h"},  # a bucket of one: the second run waits an hour
        "tenants": {"GROUP_CONCURRENCY": 1},
    }
    with override_settings(CONVOY={**settings.CONVOY, "QUEUES": queues}):
        limited, tenants = get_queue("limited"), get_queue("tenants")
        limited.add_jobs(["l-1", "l-2"])
        assert len(limited.claim(5, "w").runs) == 1
        tenants.add_jobs(["a-1", "a-2"], group="a")
        tenants.add_job("b-1", group="b")
        assert sorted(run.id for run in tenants.claim(5, "w").runs) == ["a-1", "b-1"]

        data = stats_json("limited", "tenants")["queues"]
        out = StringIO()
        call_command("convoy_stats", "limited", "tenants", stdout=out)

    flow = {
        name: [data[name][key] for key in ("throttled", "groups", "groups_held")] for name in data
    }
    assert flow == {"limited": [True, 0, 0], "tenants": [False, 2, 1]}
    rows = [line.split()[:2] for line in out.getvalue().splitlines()[3:5]]
    assert rows == [["limited", "(throttled)"], ["tenants", "1"]]


def test_json_lists_the_workers_alive_with_what_they_hold():
    with ThreadedWorker("default", "fast", concurrency=2) as worker:
        wait_until(lambda: stats_json()["workers"])
        data = stats_json()
    (found,) = data["workers"]
    assert found["id"] == worker.id
    assert (found["alive"], found["pid"], found["queues"]) == (
        True,
        os.getpid(),
        ["default", "fast"],
    )
    assert (found["running"], found["processed"], found["failed"], found["stopping"]) == (
        0,
        0,
        0,
        False,
    )
    assert 0 <= found["heartbeat_age"] < 5
    assert [data["queues"][name]["workers"] for name in ("default", "fast", "tiny")] == [1, 1, 0]


def test_table_shows_the_queues_named_and_no_other():
    tasks.record.enqueue("t")
    out = StringIO()
    call_command("convoy_stats", "default", "fast", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("convoy at ")
    assert lines[2].split()[:3] == ["QUEUE", "QUEUED", "PROCESSING"]
    assert [line.split()[:2] for line in lines[3:5]] == [["default", "1"], ["fast", "0"]]
    assert "No worker has sent a heartbeat in the last hour." in lines


def test_an_unknown_queue_is_an_error_naming_the_configured_ones():
    with pytest.raises(CommandError, match=r"Unknown queue 'nope'; configured queues: crashy, "):
        call_command("convoy_stats", "nope")


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed")
def test_watch_redraws_in_place_in_a_real_terminal_until_ctrl_c():
    socket = f"convoy-test-{os.getpid()}"
    tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CONVOY_TEST_REDIS_URL": os.environ["CONVOY_TEST_REDIS_URL"],
        "PYTHONPATH": str(ROOT),
    }
    command = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + (
        f" {shlex.quote(sys.executable)} manage.py convoy_stats default --watch 0.2; "
        "echo exited $?; sleep 30"
    )

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "watch"], capture_output=True, text=True
        ).stdout

    def queued_shown() -> str:
        rows = [line.split() for line in screen().splitlines() if line.startswith("default")]
        return rows[0][1] if rows else ""

    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "watch", "-x", "140", "-y", "20", "-c", str(ROOT)],
        check=True,
    )
    try:
        subprocess.run([*tmux, "send-keys", "-t", "watch", command, "Enter"], check=True)
        wait_until(lambda: queued_shown() == "0", timeout=30)
        first = screen()
        assert first.splitlines()[0].startswith("convoy at ")
        assert "every 0.2 s; Ctrl-C to quit" in first
        for i in range(3):
            tasks.record.enqueue(f"w{i}")
        wait_until(lambda: queued_shown() == "3", timeout=10)
        # Redrawn in place: one header, one table, however many times it was drawn.
        assert screen().count("convoy at ") == 1
        subprocess.run([*tmux, "send-keys", "-t", "watch", "C-c"], check=True)
        wait_until(lambda: "exited 0" in screen(), timeout=10)
        assert "QUEUED" not in screen()  # the alternate screen is gone, the shell's is back
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
