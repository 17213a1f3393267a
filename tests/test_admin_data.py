"""The data behind the dashboard: statistics, paginated listings, and how numbers are shown."""

import time

import pytest

from django_convoy import get_queue
from django_convoy.dashboard.browse import PREVIEW_BYTES, list_jobs
from django_convoy.dashboard.display import duration
from django_convoy.dashboard.statistics import get_statistics, paused_queues
from django_convoy.store.bodies import split_body
from tests.admin_helpers import beat, claim, fail, jam


@pytest.fixture
def default():
    return get_queue("default")


def evalsha_calls(redis_client) -> int:
    return int(redis_client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_statistics_count_each_state_of_each_queue(default):
    default.add_jobs(["a", "b"])
    default.add_job("later", delay=60)
    fail(get_queue("monsterTrucks"), "broken")
    claim(default, "a")
    jam(default, "b")
    stats = {queue.name: queue for queue in get_statistics().queues}
    assert list(stats) == ["monsterTrucks", "default", "fast", "retrying", "tiny", "crashy"]
    d = stats["default"]
    assert (d.queued, d.processing, d.jammed, d.scheduled, d.failed) == (0, 1, 1, 1, 0)
    assert (stats["monsterTrucks"].failed, stats["monsterTrucks"].failed_total) == (1, 1)


def test_statistics_read_the_last_hour_of_throughput_by_minute(default, redis_client):
    minute = int(time.time() // 60)
    redis_client.hset(
        default.keys.throughput,
        mapping={
            f"processed:{minute}": 5,
            f"processed:{minute - 59}": 7,
            f"processed:{minute - 60}": 100,  # older than the hour shown
            f"failed:{minute - 1}": 2,
            "junk": 1,
        },
    )
    stats = next(q for q in get_statistics().queues if q.name == "default")
    assert stats.processed_per_minute[0] == 7 and stats.processed_per_minute[-1] == 5
    assert sum(stats.processed_per_minute) == 12
    assert stats.failed_per_minute[-2] == 2 and sum(stats.failed_per_minute) == 2


def commands_run(redis_client, action) -> int:
    redis_client.config_resetstat()
    action()
    stats = redis_client.info("commandstats")
    return sum(int(entry["calls"]) for name, entry in stats.items() if name != "cmdstat_info")


def test_statistics_cost_the_same_with_five_or_five_thousand_jobs(default, redis_client):
    beat(default, "w.1.a", {"host": "h", "pid": 1, "queues": ["default"]})
    default.add_jobs([f"job-{n}" for n in range(5)])
    get_statistics()  # loads the scripts
    few = commands_run(redis_client, get_statistics)
    default.add_jobs([f"job-{n}" for n in range(5, 5000)])
    assert commands_run(redis_client, get_statistics) == few


def test_paused_queues_lists_exactly_the_paused(default):
    assert paused_queues() == []
    get_queue("tiny").pause()
    default.pause()
    assert paused_queues() == ["default", "tiny"]


def test_a_page_is_one_script_call_that_returns_only_its_rows(default, redis_client):
    default.add_jobs([f"job-{n:05}" for n in range(3000)])
    list_jobs(default, "queued")  # loads the script
    before = evalsha_calls(redis_client)
    page = list_jobs(default, "queued", 40, per_page=50)
    assert evalsha_calls(redis_client) - before == 1
    assert [row.id for row in page.rows] == [f"job-{n:05}" for n in range(1950, 2000)]
    assert (page.total, page.num_pages, page.start_index, page.end_index) == (3000, 60, 1951, 2000)
    assert page.nearby_pages() == [1, 38, 39, 40, 41, 42, 60]


def test_processing_and_jammed_pages_split_the_processing_set_at_now(default):
    for n in range(3):
        claim(default, f"live-{n}")
    for n in range(2):
        jam(default, f"stuck-{n}", seconds_ago=10 - n)
    jammed = list_jobs(default, "jammed")
    processing = list_jobs(default, "processing")
    assert [row.id for row in jammed.rows] == ["stuck-0", "stuck-1"]  # longest overdue first
    assert jammed.rows[0].past_lease == pytest.approx(10, abs=1)
    assert sorted(row.id for row in processing.rows) == ["live-0", "live-1", "live-2"]
    assert (jammed.total, processing.total) == (2, 3)
    assert processing.rows[0].worker == "test-host.1.abc"
    assert processing.rows[0].running_for == pytest.approx(0, abs=1)


def test_a_big_payload_is_cut_to_a_preview_on_a_character_boundary(default):
    payload = {"text": "é" * 100_000}  # two bytes per character: cuts can land mid-character
    default.add_job("big", payload)
    (row,) = list_jobs(default, "queued").rows
    assert row.payload_cut
    assert len(row.payload_preview.encode()) <= PREVIEW_BYTES
    assert row.payload_preview.startswith('{"text":"éé')
    assert row.payload_bytes > 200_000


def test_rows_carry_task_priority_attempts_and_errors(default):
    from tests.jobs import tasks

    tasks.add.using(priority=7).enqueue(2, 3)
    (row,) = list_jobs(default, "queued").rows
    assert (row.task, row.priority, row.attempts) == ("tests.jobs.tasks.add", 7, 0)
    assert row.payload_preview == '{"args":[2,3],"kwargs":{}}' and not row.payload_cut
    default.purge()
    fail(default, "broken", message="x" * 1000)
    (row,) = list_jobs(default, "failed").rows
    assert row.error_type == "builtins.ValueError"
    assert row.error_message == "x" * PREVIEW_BYTES
    assert row.attempts == 1


def test_an_unknown_state_is_refused(default):
    with pytest.raises(ValueError, match="state must be one of scheduled, queued"):
        list_jobs(default, "done")


@pytest.mark.parametrize(
    ("head", "complete", "expected"),
    [
        ('{"task":"a.b","payload":{"x":1}}', True, ("a.b", '{"x":1}')),
        ('{"payload":[1,2]}', True, (None, "[1,2]")),
        ('{"task":"a.b","payload":{"x":"abc', False, ("a.b", '{"x":"abc')),
        ('{"payload":null}', True, (None, "null")),
        ("not a convoy body", True, (None, "not a convoy body")),
        ('{"task":"a.b","paylo', False, (None, '{"task":"a.b","paylo')),
    ],
)
def test_split_body_reads_task_and_payload_from_a_body_head(head, complete, expected):
    assert split_body(head, complete=complete) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250 ms"),
        (12.34, "12.3 s"),
        (60, "1 min"),
        (243, "4 min 3 s"),
        (7500, "2 h 5 min"),
        (3 * 86400 + 4 * 3600 + 5, "3 d 4 h"),
        (-30, "30.0 s"),
        (None, ""),
    ],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert duration(seconds) == text
