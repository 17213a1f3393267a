"""The dashboard's pages, read through the Django test client against the real redis-server."""

import json
import re
import time
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from django.utils import timezone

from django_convoy import get_queue
from django_convoy.store.keys import workers_registry_key
from tests.admin_helpers import OVERVIEW, beat, claim, fail, jam, job_url, queue_url
from tests.djtasks.config import FRAMEWORK

pytestmark = pytest.mark.django_db


@pytest.fixture
def default():
    return get_queue("default")


def stat(html: str, queue: str, field: str) -> str:
    """The text of the element the live refresh keeps up to date for queue:field."""
    match = re.search(rf'data-stat="{queue}:{field}"[^>]*>([^<]*)<', html)
    assert match, f"no {queue}:{field} on the page"
    return match[1]


def test_admin_index_lists_convoy_queues_linking_to_the_overview(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert "Convoy" in html
    assert f'href="{OVERVIEW}"' in html
    assert "django_convoy/queue/add/" not in html  # queues come from settings


def test_overview_shows_every_configured_queue_with_its_counts(admin_client, default):
    default.add_jobs(["a", "b", "c"])
    default.add_job("later", delay=60)
    html = admin_client.get(OVERVIEW).content.decode()
    for name in ("monsterTrucks", "default", "fast", "retrying", "tiny", "crashy"):
        assert f'data-queue="{name}"' in html
    assert stat(html, "default", "queued") == "3"
    assert stat(html, "default", "scheduled") == "1"
    assert stat(html, "monsterTrucks", "queued") == "0"


def test_overview_counts_processing_jammed_failed_and_totals(admin_client, default):
    fail(default, "broken")
    claim(default, "running")
    jam(default, "stuck")
    html = admin_client.get(OVERVIEW).content.decode()
    assert stat(html, "default", "failed") == "1"
    assert stat(html, "default", "processing") == "1"
    assert stat(html, "default", "jammed") == "1"
    assert stat(html, "default", "failed_total") == "1"
    assert stat(html, "default", "processed_total") == "0"


def test_overview_shows_each_queue_s_wait_p50_and_p95_from_the_histogram(
    admin_client, default, redis_client
):
    # 10 first runs that waited 5-10 ms and 10 that waited 1-2.5 s, as the scripts count them.
    redis_client.hset(default.keys.stats, mapping={"wait:le:10": 10, "wait:le:2500": 10})
    html = admin_client.get(OVERVIEW).content.decode()
    cell = r'data-text="default:wait_p{}_text">([^<]*)<'
    assert re.search(cell.format(50), html).group(1) == "10 ms"
    assert re.search(cell.format(95), html).group(1) == "2.4 s"
    assert re.search(r'data-text="fast:wait_p50_text">([^<]*)<', html).group(1) == "—"
    data = admin_client.get(OVERVIEW + "statistics.json").json()
    (found,) = [queue for queue in data["queues"] if queue["name"] == "default"]
    assert (found["wait_p50_text"], found["wait_p95_text"]) == ("10 ms", "2.4 s")


def test_overview_draws_the_last_hour_of_throughput_as_svg(admin_client, default, redis_client):
    minute = int(time.time() // 60)
    redis_client.hset(default.keys.throughput, f"processed:{minute - 1}", 40)
    redis_client.hset(default.keys.throughput, f"failed:{minute}", 10)
    redis_client.hset(default.keys.throughput, f"processed:{minute - 90}", 999)  # over an hour
    html = admin_client.get(OVERVIEW).content.decode()
    assert "default, last hour: 40 processed, 10 failed (busiest minute: 40)" in html
    points = re.search(r'data-chart="default:processed" points="([^"]+)"', html)[1].split()
    assert len(points) == 60
    assert points[-2].endswith(",2.0")  # the busiest minute reaches the top
    assert points[-1].endswith(",46.0")


def test_the_chart_has_a_scale_a_time_axis_and_a_legend(admin_client, default, redis_client):
    minute = int(time.time() // 60)
    redis_client.hset(default.keys.throughput, f"processed:{minute - 1}", 1200)
    redis_client.hset(default.keys.throughput, f"failed:{minute}", 10)
    html = admin_client.get(OVERVIEW).content.decode()
    chart = re.search(
        r'<figure class="convoy-chart-box">.*?</figure>',
        html.split('data-queue="default"')[1],
        re.S,
    )[0]
    assert '<span data-chart-text="default:peak">1,200/min</span><span>0</span>' in chart
    assert "<span>60 min ago</span><span>now</span>" in chart
    assert 'class="processed" data-chart-text="default:processed_sum">1,200 processed<' in chart
    assert 'class="failed" data-chart-text="default:failed_sum">10 failed<' in chart


def test_overview_shows_live_workers_with_host_pid_queues_and_current_jobs(admin_client, default):
    info = {
        "host": "wash-bay-1",
        "pid": 4242,
        "queues": ["default", "monsterTrucks"],
        "concurrency": {"default": 1, "monsterTrucks": 10},
        "processed": 17,
        "failed": 2,
        "stopping": False,
        "current": [],  # the record's list is a lease/3 old: the row reads Redis's own
    }
    beat(default, "wash-bay-1.4242.abc", info)
    claim(default, "truck-7", worker="wash-bay-1.4242.abc")
    html = admin_client.get(OVERVIEW).content.decode()
    row = re.search(r'<tr class="convoy-worker online">.*?</tr>', html, re.S)[0]
    for text in ("wash-bay-1.4242.abc", "wash-bay-1", "4242", "default, monsterTrucks"):
        assert text in row
    assert re.search(r"1 running: default: truck-7 \(\d+ ms\)", row)
    assert "17 processed, 2 failed" in row


def test_a_workers_row_counts_every_run_redis_says_it_holds(admin_client, default):
    beat(default, "w.1.a", {"host": "h", "pid": 1, "queues": ["monsterTrucks"], "current": []})
    trucks = get_queue("monsterTrucks")
    trucks.add_jobs([f"truck-{n}" for n in range(10)])
    assert len(trucks.claim(10, "w.1.a").runs) == 10
    html = admin_client.get(OVERVIEW).content.decode()
    row = re.search(r'<tr class="convoy-worker online">.*?</tr>', html, re.S)[0]
    assert "10 running: monsterTrucks: truck-" in row and " and 5 more" in row


def test_a_worker_whose_heartbeat_stopped_is_shown_as_gone(admin_client, default, redis_client):
    beat(default, "stale.1.abc", {"host": "stale", "pid": 1, "queues": ["default"]}, every_ms=1)
    vanished = int(time.time() * 1000) - 120_000
    redis_client.zadd(workers_registry_key(default.key_prefix), {"vanished.2.def": vanished})
    time.sleep(0.01)
    html = admin_client.get(OVERVIEW).content.decode()
    gone = re.findall(r'<tr class="convoy-worker gone">.*?</tr>', html, re.S)
    assert len(gone) == 2
    assert any("stale.1.abc" in row for row in gone)
    vanished_row = next(row for row in gone if "vanished.2.def" in row)
    assert "2 min" in vanished_row  # heartbeat age, from the registry


def test_statistics_json_has_counts_charts_and_workers(admin_client, default):
    default.add_job("a")
    beat(default, "w.1.a", {"host": "h", "pid": 1, "queues": ["default"], "current": []})
    response = admin_client.get(f"{OVERVIEW}statistics.json")
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    data = response.json()
    queue = next(q for q in data["queues"] if q["name"] == "default")
    assert queue["queued"] == 1 and queue["paused"] is False
    assert len(queue["processed_per_minute"]) == 60
    assert set(queue["chart"]) == {
        "processed",
        "failed",
        "title",
        "peak",
        "processed_sum",
        "failed_sum",
    }
    (worker,) = data["workers"]
    assert worker["alive"] is True and worker["display"]["status"] == "online"
    assert data["paused_queues"] == []


def test_queue_page_lists_queued_jobs_in_queue_order(admin_client, default):
    default.add_jobs(["low-1", "low-2"], priority=-5)
    default.add_job("urgent", priority=50)
    default.add_job("normal")
    html = admin_client.get(queue_url("default")).content.decode()
    ids = re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a>', html)
    assert ids == ["urgent", "normal", "low-1", "low-2"]


def test_queue_page_is_paginated_from_redis(admin_client, default):
    default.add_jobs([f"job-{n:03}" for n in range(120)])
    html = admin_client.get(queue_url("default") + "?page=3").content.decode()
    ids = re.findall(r'<th scope="row"><a href="[^"]+">(job-\d+)</a>', html)
    assert ids == [f"job-{n:03}" for n in range(100, 120)]
    assert "Jobs 101–120 of 120 queued" in html
    assert '<span class="this-page">3</span>' in html


def test_a_page_past_the_end_shows_the_last_page(admin_client, default):
    default.add_jobs([f"job-{n}" for n in range(3)])
    html = admin_client.get(queue_url("default") + "?page=999").content.decode()
    assert "Jobs 1–3 of 3 queued" in html


def test_processing_tab_shows_worker_started_and_lease(admin_client, default):
    claim(default, "running", worker="bay-2.77.fff")
    html = admin_client.get(queue_url("default", "processing")).content.decode()
    assert "running" in html and "bay-2.77.fff" in html
    assert "left)" in html  # time left on the lease


def test_jammed_tab_shows_how_long_past_its_lease(admin_client, default):
    jam(default, "stuck", seconds_ago=125)
    claim(default, "fine")
    html = admin_client.get(queue_url("default", "jammed")).content.decode()
    assert "stuck" in html and ">fine<" not in html
    assert re.search(r'class="convoy-alert">2 min [56] s<', html)


def test_scheduled_tab_shows_when_each_job_is_due(admin_client, default):
    default.add_job("later", delay=600)
    html = admin_client.get(queue_url("default", "scheduled")).content.decode()
    assert "later" in html and re.search(r"\(in (9|10) min", html)


def test_failed_tab_shows_error_attempts_and_newest_first(admin_client, default):
    fail(default, "first", message="first broke")
    time.sleep(0.002)
    fail(default, "second", message="second broke")
    html = admin_client.get(queue_url("default", "failed")).content.decode()
    assert html.index(">second<") < html.index(">first<")
    assert "builtins.ValueError</strong>: second broke" in html


def test_listing_escapes_payload_previews(admin_client, default):
    default.add_job("xss", {"html": "<script>alert(1)</script>"})
    html = admin_client.get(queue_url("default")).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_unknown_queue_and_unknown_state_are_404(admin_client):
    assert admin_client.get(queue_url("nope")).status_code == 404
    assert admin_client.get(queue_url("default", "done")).status_code == 404


def test_job_page_shows_payload_as_pretty_json_escaped(admin_client, default):
    default.add_job("xss", {"html": "<script>alert('x')</script>", "wheels": 4})
    response = admin_client.get(job_url("default", "xss"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert(" not in html
    payload = re.search(r'<pre class="convoy-code" id="convoy-payload">(.*?)</pre>', html, re.S)[1]
    assert payload == (
        "{\n  &quot;html&quot;: &quot;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot;,"
        "\n  &quot;wheels&quot;: 4\n}"
    )


def test_job_page_of_a_payload_nested_450_deep_shows_it(admin_client, default):
    """Indenting JSON recurses in Python, a few frames per level: deep enough, it raises
    RecursionError, where the page shows the payload compact instead (add_job accepts 990
    levels on Python 3.12, fewer on 3.11; display.pretty_json's test covers the fallback)."""
    deep = current = []
    for _ in range(450):
        current.append([])
        current = current[0]
    default.add_job("deep", deep)
    response = admin_client.get(job_url("default", "deep"))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("[") >= 450 and html.count("]") >= 450  # the whole payload is shown


def test_job_page_shows_state_attempts_worker_and_last_error_with_traceback(admin_client, default):
    fail(default, "broken", {"n": 1}, message="no <soap>")
    html = admin_client.get(job_url("default", "broken")).content.decode()
    assert 'id="convoy-job-state">failed<' in html
    assert '<th scope="row">Attempts</th><td>1</td>' in html
    assert "no &lt;soap&gt;" in html
    assert "test-host.1.abc" in html
    assert re.search(r'id="convoy-traceback">Traceback \(most recent call last\)', html)


def test_job_page_shows_times_in_the_current_time_zone(admin_client, default):
    default.add_job("tz")
    with override_settings(TIME_ZONE="Asia/Kathmandu"):
        html = admin_client.get(job_url("default", "tz")).content.decode()
    stamp = re.search(r'<time datetime="([^"]+)"', html)[1]
    assert stamp.endswith("+05:45")
    enqueued = default.get_job("tz").enqueued_at
    assert stamp == timezone.localtime(enqueued, ZoneInfo("Asia/Kathmandu")).isoformat(
        timespec="seconds"
    )


def test_times_show_the_second(admin_client, default):
    default.add_job("tz")
    html = admin_client.get(job_url("default", "tz")).content.decode()
    shown = re.search(r"<time [^>]+>([^<]+)</time>", html)[1]
    local = timezone.localtime(default.get_job("tz").enqueued_at)
    assert shown.endswith(local.strftime(", %H:%M:%S"))


def test_a_failed_job_shows_how_long_its_run_took(admin_client, default):
    fail(default, "broken")
    html = admin_client.get(job_url("default", "broken")).content.decode()
    assert re.search(r'<th scope="row">Ran for</th><td>\d+ ms</td>', html)
    listing = admin_client.get(queue_url("default", "failed")).content.decode()
    assert re.search(r"<td>\d+ ms</td>\s*<td class=\"num\">1</td>", listing)


@pytest.mark.parametrize("page", ["overview", "queue", "job", "find"])
def test_only_pages_with_counts_say_they_refresh(admin_client, default, page):
    default.add_job("a")
    url = {
        "overview": OVERVIEW,
        "queue": queue_url("default"),
        "job": job_url("default", "a"),
        "find": f"{OVERVIEW}find/?id=none",
    }[page]
    html = admin_client.get(url).content.decode()
    assert ("Counts refresh every 3 s." in html) == (page in ("overview", "queue"))
    assert ('id="convoy-live"' in html) == (page in ("overview", "queue"))


def test_a_done_jobs_page_shows_what_its_run_returned(admin_client, default):
    from django_convoy.testing import drain
    from tests.jobs import tasks

    job_id = tasks.add.enqueue(2, 40).id
    drain("default")
    response = admin_client.get(job_url("default", job_id))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="convoy-job-state">done<' in html
    assert '<pre class="convoy-code" id="convoy-return-value">42</pre>' in html
    assert "convoy-payload" not in html  # nothing is left of the job but its result


def test_a_value_that_was_not_kept_says_why(admin_client, default):
    default.add_job("odd")
    (run,) = default.claim(1, "w").runs
    default.keep_result(run, object())
    html = admin_client.get(job_url("default", "odd")).content.decode()
    assert "Result of its last run" in html  # still processing: its result is beside it
    assert "not kept: not JSON (TypeError: Object of type object is not JSON serializable)" in html


def test_a_django_tasks_job_links_to_its_result_and_return_value(
    admin_client, default, django_capture_on_commit_callbacks
):
    pytest.importorskip(FRAMEWORK)
    from django_convoy.testing import drain
    from tests.djtasks import tasks as djtasks

    # The test runs in a transaction: the run is enqueued when it "commits" (the default).
    with django_capture_on_commit_callbacks(execute=True):
        result = djtasks.calculate_meaning_of_life.enqueue()
    (row,) = default.store.page("queued", 0, 1, 100)[2]
    html = admin_client.get(job_url("default", row.id)).content.decode()
    link = re.search(r'<a href="([^"]+)" id="convoy-task-result-link">', html)[1]
    assert result.id in link and "backend=default" in link
    assert 'id="convoy-result-status">READY<' in admin_client.get(link).content.decode()
    drain("default")
    page = admin_client.get(link).content.decode()
    assert 'id="convoy-result-status">SUCCESSFUL<' in page
    assert '<pre class="convoy-code" id="convoy-return-value">42</pre>' in page
    missing = admin_client.get(link.replace(result.id, "nope"))
    assert missing.status_code == 404


def test_job_ids_with_slashes_and_unicode_round_trip_through_urls(admin_client, default):
    odd = "trucks/7 ünïcode_5F?#%"
    default.add_job(odd, {"ok": True})
    queue_html = admin_client.get(queue_url("default")).content.decode()
    link = re.search(r'<th scope="row"><a href="([^"]+)">', queue_html)[1]
    html = admin_client.get(link).content.decode()
    assert "<code>trucks/7 ünïcode_5F?#%</code>" in html


def test_job_page_of_a_job_that_is_gone_says_so_with_404(admin_client):
    response = admin_client.get(job_url("default", "finished"))
    assert response.status_code == 404
    assert "it finished (its id was released), was deleted, or never existed" in (
        response.content.decode()
    )


def test_find_opens_the_job_when_one_queue_holds_the_id(admin_client, default):
    default.add_job("truck-7")
    response = admin_client.get(f"{OVERVIEW}find/", {"id": "truck-7"})
    assert response.status_code == 302
    assert response["Location"] == job_url("default", "truck-7")


def test_find_lists_every_queue_holding_the_id_with_its_state(admin_client, default):
    default.add_job("truck-7")
    fail(get_queue("monsterTrucks"), "truck-7")
    html = admin_client.get(f"{OVERVIEW}find/", {"id": "truck-7"}).content.decode()
    assert 'convoy-badge queued">queued<' in html
    assert 'convoy-badge failed">failed<' in html


def test_find_says_when_no_queue_holds_the_id(admin_client):
    html = admin_client.get(f"{OVERVIEW}find/", {"id": "ghost"}).content.decode()
    assert "No queue holds a job with the id <code>ghost</code>" in html


def test_find_explains_an_invalid_id(admin_client):
    html = admin_client.get(f"{OVERVIEW}find/", {"id": "x" * 2000}).content.decode()
    assert "A job id must be 1 to 1024 bytes of UTF-8, not 2000." in html


@pytest.mark.parametrize(
    "url",
    [OVERVIEW, queue_url("default"), job_url("default", "a"), f"{OVERVIEW}find/?id=none"],
    ids=["overview", "queue", "job", "find"],
)
def test_a_paused_queue_is_shown_on_every_page(admin_client, url):
    get_queue("default").add_jobs(["a", "b"])
    get_queue("monsterTrucks").pause()
    html = admin_client.get(url).content.decode()
    banner = re.search(r'<ul class="messagelist convoy-paused"( hidden)?>(.*?)</ul>', html, re.S)
    assert banner[1] is None
    assert "<strong data-paused-list>monsterTrucks</strong>" in banner[2]


def test_pages_load_the_live_refresh_pointing_at_the_json_endpoint(admin_client):
    html = admin_client.get(OVERVIEW).content.decode()
    assert f'data-url="{OVERVIEW}statistics.json"' in html
    assert "django_convoy/live.js" in html
    assert json.loads(admin_client.get(f"{OVERVIEW}statistics.json").content)["queues"]


def test_a_payload_too_deep_to_indent_is_shown_compact_or_said_so():
    """Whatever was stored, the job page never fails on it (display.pretty_json)."""
    from django_convoy.dashboard.display import pretty_json

    deep = current = []
    for _ in range(5000):  # deeper than any encoder recurses
        current.append([])
        current = current[0]
    assert pretty_json(deep) == "(nested too deep to show)"
    shallow = [[1]]
    assert pretty_json(shallow) == "[\n  [\n    1\n  ]\n]"


def test_the_overview_marks_a_queue_its_rate_limit_holds_back(admin_client, settings):
    queues = {**settings.CONVOY["QUEUES"], "limited": {"RATE_LIMIT": "1/h"}}
    with override_settings(CONVOY={**settings.CONVOY, "QUEUES": queues}):
        limited = get_queue("limited")
        limited.add_jobs(["l-1", "l-2"])
        html = admin_client.get(OVERVIEW).content.decode()
        assert len(limited.claim(5, "w").runs) == 1  # the bucket's one run; the next waits
        throttled = admin_client.get(OVERVIEW).content.decode()
        data = admin_client.get(f"{OVERVIEW}statistics.json").json()
    badge = re.compile(r'<span class="convoy-badge throttled" data-throttled-badge="limited"[^>]*>')
    assert " hidden" in badge.search(html)[0]
    assert " hidden" not in badge.search(throttled)[0]
    assert [q["throttled"] for q in data["queues"] if q["name"] == "limited"] == [True]
