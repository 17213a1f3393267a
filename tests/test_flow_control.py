"""Flow control: RATE_LIMIT, GROUP_CONCURRENCY, GROUP_RATE_LIMIT and fairness between groups,
each held by the claim script (and by the hand-off to a waiting worker) on Redis's clock."""

import re
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_convoy import InvalidJob, convoy_task
from django_convoy.conf import QueueConfig, find_problems, get_config
from django_convoy.limits import RateLimit, parse_rate
from django_convoy.queue import Queue
from tests.helpers import hand_off_request

LEASE = 5.0


def make_queue(client, **limits) -> Queue:
    """A queue with these limits (``rate_limit="5/s"``, ``group_concurrency=2`` ...)."""
    for key in ("rate_limit", "group_rate_limit"):
        if key in limits:
            limits[key] = parse_rate(limits[key], key)
    return Queue(QueueConfig(name="flow", lease=LEASE, **limits), "convoy", client)


def claimed(queue, n, worker="w", **options) -> list[str]:
    return [run.id for run in queue.claim(n, worker, **options).runs]


def ack_all(queue, runs) -> None:
    queue.ack([(run.id, run.token) for run in runs])


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("100/s", RateLimit(100, 1000, 100)),
        ("30/m", RateLimit(30, 60_000, 30)),
        ("1000/h burst 50", RateLimit(1000, 3_600_000, 50)),
        (" 5 / s  burst 20 ", RateLimit(5, 1000, 20)),
    ],
)
def test_a_rate_limit_reads_a_count_per_period_and_a_burst(text, limit):
    assert parse_rate(text, "RATE_LIMIT") == limit


@pytest.mark.parametrize("bad", ["100", "100/d", "0/s", "1/s burst 0", "fast", 100, "-1/s"])
def test_a_bad_rate_limit_is_reported_naming_the_queue_and_the_forms(bad):
    raw = {"REDIS_URL": "redis://x", "QUEUES": {"x": {"RATE_LIMIT": bad}}}
    (problem,) = find_problems(raw)
    assert problem.id == "convoy.E026"
    assert problem.msg.startswith("RATE_LIMIT of queue 'x' must ")
    assert repr(bad) in problem.msg


def test_the_rate_limit_message_says_what_it_should_look_like():
    raw = {"REDIS_URL": "redis://x", "QUEUES": {"x": {"GROUP_RATE_LIMIT": "lots"}}}
    (problem,) = find_problems(raw)
    assert problem.msg == (
        "GROUP_RATE_LIMIT of queue 'x' must look like '100/s' or '100/s burst 200', got 'lots'."
    )


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_group_concurrency_must_be_a_positive_integer(bad):
    raw = {"REDIS_URL": "redis://x", "QUEUES": {"x": {"GROUP_CONCURRENCY": bad}}}
    (problem,) = find_problems(raw)
    assert problem.id in ("convoy.E010", "convoy.E011")
    assert "GROUP_CONCURRENCY" in problem.msg


def test_the_limits_reach_the_queue_config(settings):
    convoy = {
        **settings.CONVOY,
        "QUEUES": {
            "default": {
                "RATE_LIMIT": "10/m burst 2",
                "GROUP_CONCURRENCY": 3,
                "GROUP_RATE_LIMIT": "1/s",
            }
        },
    }
    with override_settings(CONVOY=convoy):
        config = get_config().queues["default"]
    assert (config.rate_limit, config.group_concurrency, config.group_rate_limit) == (
        RateLimit(10, 60_000, 2),
        3,
        RateLimit(1, 1000, 1),
    )
    assert str(config.rate_limit) == "10/m burst 2"


def test_a_bad_limit_stops_get_config(settings):
    convoy = {**settings.CONVOY, "QUEUES": {"default": {"RATE_LIMIT": "10 per second"}}}
    with override_settings(CONVOY=convoy), pytest.raises(ImproperlyConfigured, match="RATE_LIMIT"):
        get_config()


# -- RATE_LIMIT -----------------------------------------------------------------------------


def test_a_claim_takes_no_more_than_the_burst_and_says_when_the_next_run_may_start(redis_client):
    queue = make_queue(redis_client, rate_limit="5/s burst 3")
    queue.add_jobs([f"j{i}" for i in range(10)])
    batch = queue.claim(10, "w")
    assert len(batch.runs) == 3
    # The next token comes one interval (200 ms) after the claim, by Redis's clock.
    assert batch.next_due_ms == batch.now_ms + 200
    assert queue.stats()["throttled"] is True
    assert claimed(queue, 10) == []


def test_the_rate_limit_holds_however_many_workers_claim(redis_client):
    queue = make_queue(redis_client, rate_limit="20/s burst 1")
    queue.add_jobs([f"j{i}" for i in range(100)])
    started, deadline = [], time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for worker in ("w1", "w2", "w3", "w4"):
            started += claimed(queue, 5, worker)
    # 1 at once, then one per 50 ms: at most 21 in a second (fewer when claims come late:
    # a bucket of one token keeps none for a late claim).
    assert 10 <= len(started) <= 21
    assert len(set(started)) == len(started)


def test_a_queue_under_its_rate_is_not_throttled(redis_client):
    queue = make_queue(redis_client, rate_limit="100/s")
    queue.add_jobs(["a", "b"])
    batch = queue.claim(10, "w")
    assert (len(batch.runs), batch.next_due_ms) == (2, None)
    stats = queue.stats()
    assert (stats["throttled"], stats["rate_limit"]) == (False, "100/s")


def test_a_handed_run_spends_the_rate_limit_too(redis_client):
    queue = make_queue(redis_client, rate_limit="1/m")
    queue.add_job("first")
    assert claimed(queue, 1, "w") == ["first"]
    assert queue.claim(1, "idle", wait_ms=5000).waiting is True  # the queue ran dry
    # No token is left: the add queues its job instead of handing it to the waiting worker.
    assert queue.add_job("second").state == "queued"
    assert hand_off_request(queue, "idle") is not None


def test_a_waiting_worker_is_handed_a_job_while_the_rate_allows(redis_client):
    queue = make_queue(redis_client, rate_limit="10/s burst 1")
    assert queue.claim(2, "idle", wait_ms=5000).waiting is True
    assert [queue.add_job(i).state for i in "ab"] == ["processing", "queued"]


# -- groups: GROUP_CONCURRENCY, fairness ----------------------------------------------------


def test_a_group_at_its_cap_waits_while_other_groups_are_claimed_past_it(redis_client):
    queue = make_queue(redis_client, group_concurrency=2)
    queue.add_jobs([f"a{i}" for i in range(5)], group="tenant-a")
    queue.add_jobs([f"b{i}" for i in range(5)], group="tenant-b")
    batch = queue.claim(10, "w")
    assert sorted(run.id for run in batch.runs) == ["a0", "a1", "b0", "b1"]
    assert claimed(queue, 10) == []
    stats = queue.stats()
    assert (stats["queued"], stats["processing"], stats["groups"], stats["groups_held"]) == (
        6,
        4,
        2,
        2,
    )
    # A run of tenant-a ends: its slot comes back, to tenant-a's next job.
    ack_all(queue, [run for run in batch.runs if run.id == "a0"])
    assert claimed(queue, 10) == ["a2"]


def test_groups_take_turns_so_a_big_backlog_cannot_starve_a_small_one(redis_client):
    queue = make_queue(redis_client)
    queue.add_jobs([f"a{i}" for i in range(100)], group="a")
    queue.add_jobs(["b0", "b1"], group="b")
    queue.add_jobs(["plain0", "plain1"])  # no group: the ungrouped jobs take turns as one
    order = claimed(queue, 8)
    assert order == ["plain0", "a0", "b0", "plain1", "a1", "b1", "a2", "a3"]


def test_priority_orders_the_jobs_of_a_group(redis_client):
    queue = make_queue(redis_client, group_concurrency=1)
    queue.add_job("low", group="g")
    queue.add_job("high", group="g", priority=5)
    assert claimed(queue, 5) == ["high"]


def test_a_handed_run_respects_its_groups_cap(redis_client):
    queue = make_queue(redis_client, group_concurrency=1)
    assert queue.claim(3, "idle", wait_ms=5000).waiting is True
    assert queue.add_job("g1", group="g").state == "processing"
    assert queue.add_job("g2", group="g").state == "queued"  # g is at its cap
    assert queue.stats()["processing"] == 1


def test_the_jam_guard_gives_a_jammed_runs_group_slot_back(redis_client):
    queue = make_queue(redis_client, group_concurrency=1)
    queue.add_jobs(["g1", "g2"], group="g")
    assert claimed(queue, 2, "doomed") == ["g1"]
    redis_client.zadd(queue.keys.processing, {"g1": 1}, xx=True)  # its lease passed
    assert [job.id for job in queue.jam_guard()] == ["g1"]
    assert claimed(queue, 2, "w") == ["g2"]  # requeued behind g2, which takes the slot
    assert redis_client.zscore(queue.keys.groups, "g") == 1


def test_a_failed_run_with_a_retry_gives_its_slot_back(redis_client):
    queue = make_queue(redis_client, group_concurrency=1)
    queue.add_jobs(["g1", "g2"], group="g")
    (run,) = queue.claim(2, "w").runs
    assert queue.fail(run, {"type": "E", "message": "", "traceback": ""}, final=False) == "retry"
    assert claimed(queue, 2) == ["g2"]


@pytest.mark.parametrize("how", ["cancel", "delete_job", "purge"])
def test_a_grouped_job_taken_out_of_the_queue_leaves_nothing_behind(redis_client, how):
    queue = make_queue(redis_client, group_concurrency=1)
    queue.add_job("g1", group="g")
    assert queue.get_job("g1").state == "queued"
    if how == "purge":
        assert queue.purge() == 1
    else:
        assert getattr(queue, how)("g1") == "queued"
    assert queue.get_job("g1") is None
    keys = queue.keys
    for key in (keys.group, keys.grouped, keys.lanes, keys.ring, keys.parked, keys.groups):
        assert not redis_client.exists(key), key


def test_a_cancelled_run_gives_its_slot_back(redis_client):
    queue = make_queue(redis_client, group_concurrency=1)
    queue.add_jobs(["g1", "g2"], group="g")
    assert claimed(queue, 2) == ["g1"]
    assert queue.cancel("g1") == "processing"
    assert claimed(queue, 2) == ["g2"]


def test_acked_groups_are_forgotten(redis_client):
    queue = make_queue(redis_client, group_concurrency=1)
    queue.add_jobs(["a", "b"], group="g")
    for _ in range(2):
        ack_all(queue, queue.claim(5, "w").runs)
    keys = queue.keys
    for key in (keys.group, keys.grouped, keys.lanes, keys.ring, keys.parked, keys.groups):
        assert not redis_client.exists(key), key


def test_queued_jobs_list_in_queue_order_grouped_or_not(redis_client):
    queue = make_queue(redis_client)
    queue.add_job("p1")
    queue.add_job("g1", group="g")
    queue.add_job("p2")
    queue.add_job("g2", group="h", priority=3)
    _, total, rows = queue.store.page("queued", 0, 10, 100)
    assert (total, [row.id for row in rows]) == (4, ["g2", "p1", "g1", "p2"])
    _, _, rows = queue.store.page("queued", 1, 2, 100)
    assert [row.id for row in rows] == ["p1", "g1"]


# -- GROUP_RATE_LIMIT -----------------------------------------------------------------------


def test_a_group_out_of_tokens_is_parked_until_its_next_token(redis_client):
    queue = make_queue(redis_client, group_rate_limit="2/s burst 1")
    queue.add_jobs(["a1", "a2"], group="a")
    queue.add_job("b1", group="b")
    batch = queue.claim(5, "w")
    assert [run.id for run in batch.runs] == ["a1", "b1"]
    assert batch.next_due_ms == batch.now_ms + 500
    time.sleep(0.55)
    assert claimed(queue, 5) == ["a2"]


# -- the task's group -----------------------------------------------------------------------


def test_a_task_takes_its_group_from_its_arguments(redis_client):
    @convoy_task(group=lambda tenant_id, *a, **k: f"tenant-{tenant_id}")
    def report(tenant_id, day):
        return None

    assert report.group_for(7, "monday") == "tenant-7"
    report.enqueue(7, "monday")
    queue = Queue(get_config().queues["default"], get_config().key_prefix, redis_client)
    (job_id,) = redis_client.hkeys(queue.keys.group)
    assert redis_client.hget(queue.keys.group, job_id) == "tenant-7"


@pytest.mark.parametrize("bad", [3.5, "a\0b", "x" * 201, ["a"]])
def test_a_bad_group_is_refused_at_the_add(redis_client, bad):
    queue = make_queue(redis_client)
    with pytest.raises(InvalidJob, match="group"):
        queue.add_job("a", group=bad)


# -- the admin ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_queue_page_shows_the_limits_and_a_page_of_groups(admin_client, settings):
    from tests.admin_helpers import queue_url

    convoy = {
        **settings.CONVOY,
        "QUEUES": {"default": {"RATE_LIMIT": "1/m", "GROUP_CONCURRENCY": 1}},
    }
    with override_settings(CONVOY=convoy):
        from django_convoy import get_queue

        queue = get_queue("default")
        queue.add_jobs(["a1", "a2"], group="tenant-a")
        queue.add_jobs([f"b{i}" for i in range(3)], group="tenant-b")
        for n in range(25):
            queue.add_job(f"c{n}", group=f"tenant-c{n:02}")
        queue.claim(5, "w")  # one run starts: the bucket of 1 is empty now
        html = admin_client.get(queue_url("default")).content.decode()
        assert "RATE_LIMIT 1/m, <strong>throttling now</strong>" in html
        assert "GROUP_CONCURRENCY 1;" in html and "27 groups with jobs." in html
        rows = re.findall(
            r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)", html
        )
        assert len(rows) == 20  # a page
        assert rows[0] == ("tenant-a", "1", "1")  # the busiest first
        assert "Groups page 1 of 2" in html
        html = admin_client.get(queue_url("default") + "?groups=2").content.decode()
        assert len(re.findall(r"<tr><td>tenant-", html)) == 7
