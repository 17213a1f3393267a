"""Bad input: hostile ids and payloads through the public API, and garbage written by hand into
convoy's keys under a real worker.

Through the API, anything must either be refused with a convoy error that says what is wrong
(nothing written), or round-trip exactly: add, inspect, claim, ack, nothing left behind.

In Redis, garbage in one job's entries must cost at most that job, with a clear error recorded
for it; garbage in a queue's own keys may stop that queue until it is repaired, but the worker
must keep running, keep serving its other queue, and lose nothing (after the repair the queue
works again, its jobs still there).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_convoy.exceptions import ConvoyError
from django_convoy.queue import Queue
from django_convoy.store.keys import workers_registry_key
from django_convoy.testing.servers import RedisServer

from . import checker
from .cluster import PREFIX, Cluster, in_parallel, outcome
from .queues import queue_config

# -- the API ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_queue(tmp_path_factory):
    server = RedisServer(directory=tmp_path_factory.mktemp("fuzz-redis")).start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    yield Queue(queue_config("faults"), "convoyfuzz", client)
    client.close()
    server.stop()


def round_trip(queue: Queue, job_id, payload) -> None:
    """Add, inspect, claim and ack one job; fail unless it all holds and nothing is left."""
    queue.client.flushall()  # this module started the server: it may flush it
    try:
        result = queue.add_job(job_id, payload)
    except ConvoyError as exc:
        assert str(exc), "a refusal must say why"
        assert queue.client.keys("*") == [], "a refused add wrote something"
        return
    assert (result.id, result.added, result.state) == (str(job_id), True, "queued")
    expected = json.loads(json.dumps(payload))  # what JSON keeps of it (tuples become lists)
    job = queue.get_job(job_id)
    assert (job.id, job.state, job.payload) == (result.id, "queued", expected)
    (run,) = queue.claim(10, "fuzz-worker").runs
    assert (run.id, json.loads(run.body)) == (result.id, {"payload": expected})
    assert queue.ack([(run.id, run.token)]) == [1]
    assert queue.get_job(job_id) is None
    assert checker.left_behind(queue.client, queue.keys) == {}


HOSTILE_IDS = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),  # surrogates too
    st.text(max_size=1100),  # around MAX_ID_BYTES
    st.sampled_from(["", " ", "|", "a|b|c", "{x}", "}{", "\x00", "\n", "*", "é" * 513]),
    st.integers(),
    st.none(),
    st.booleans(),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
HOSTILE_PAYLOADS = st.one_of(
    JSON,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sets(st.integers(), max_size=2),
    st.binary(max_size=4),
    st.dictionaries(st.tuples(st.integers()), st.integers(), min_size=1, max_size=1),
    st.just("x" * 600_000),  # over MAX_PAYLOAD_BYTES
    st.builds(object),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(job_id=HOSTILE_IDS)
def test_hostile_ids_are_refused_clearly_or_round_trip(fuzz_queue, job_id):
    round_trip(fuzz_queue, job_id, None)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=HOSTILE_PAYLOADS)
def test_hostile_payloads_are_refused_clearly_or_round_trip(fuzz_queue, payload):
    round_trip(fuzz_queue, "payload", payload)


def nested(depth: int) -> list:
    root = current = []
    for _ in range(depth):
        current.append([])
        current = current[0]
    return root


def test_deeply_nested_payload_is_refused_with_invalid_job(fuzz_queue):
    """Past the recursion limit: InvalidJob, not the bare RecursionError of json.dumps."""
    round_trip(fuzz_queue, "deep", nested(100_000))


def test_giant_int_id_is_refused_with_invalid_job(fuzz_queue):
    """5,000 digits: InvalidJob, not the bare ValueError Python raises for str() of it."""
    round_trip(fuzz_queue, 10**5000, None)


def test_get_job_of_a_job_with_a_mangled_record_does_not_raise(fuzz_queue):
    """A record without its counters (mangled by hand) reads as all body, counters zero."""
    fuzz_queue.client.flushall()
    fuzz_queue.add_job("mangled")
    fuzz_queue.client.hset(fuzz_queue.keys.jobs, "mangled", "garbage|x|")
    job = fuzz_queue.get_job("mangled")
    assert (job.state, job.payload, job.attempts, job.priority) == ("queued", "garbage|x|", 0, 0)


# -- garbage in Redis, under a real worker ----------------------------------------------------


@dataclass(frozen=True)
class Garbage:
    name: str
    key: str  # the QueueKeys field written to
    value: str
    entry: bool = True  # True: the target job's entry in a hash; False: the whole key
    running: bool = False  # written while the target job runs (else while it is queued)
    due: bool = False  # the target is a scheduled job, due now (else a queued one)
    outcome: str = "done"  # what the target job must end as: done | failed | lost (the
    # garbage itself overwrote the key holding it: its record is left, unreachable)
    error: str = ""  # for failed: the recorded error must say this
    as_hash: bool = False  # the whole key replaced by a HASH (else by a string)


GARBAGE = [
    Garbage("body-not-json", "jobs", '{"payload": [1, 2', outcome="failed", error="corrupt body"),
    Garbage("body-not-a-job", "jobs", "[1, 2, 3]", outcome="failed", error="corrupt body"),
    Garbage(
        "body-unregistered-task",
        "jobs",
        '{"task": "os.system", "payload": {"args": ["touch /tmp/pwned"], "kwargs": {}}}',
        outcome="failed",
        error="not registered",
    ),
    Garbage(
        "body-bad-task-payload",
        "jobs",
        '{"task": "tests.jobs.tasks.add", "payload": "x"}',
        outcome="failed",
        error="a task payload needs",
    ),
    Garbage(
        "record-counters-garbage",
        "jobs",
        'garbage|x|{"payload": null}',
        outcome="failed",  # read as all body, which is not JSON
        error="corrupt body",
    ),
    Garbage(
        "jobs-wrong-type",
        "jobs",
        "x",
        entry=False,
        outcome="failed",  # its record went with the key: the repaired queue fails it
        error="corrupt body",
    ),
    Garbage("errors-not-json", "errors", "{oops"),
    Garbage("run-garbage", "run", "garbage", running=True),
    Garbage(
        "rerun-garbage",
        "rerun",
        "garbage",
        running=True,
        outcome="failed",  # the rerun is queued with the unreadable entry as its body
        error="corrupt body",
    ),
    Garbage("seq-not-a-number", "seq", "abc", entry=False),
    Garbage("seq-not-a-counter", "seq", "12.5", entry=False),  # a number INCRBY refuses
    Garbage("throughput-wrong-type", "throughput", "x", entry=False),
    Garbage("stats-wrong-type", "stats", "x", entry=False),
    Garbage("idle-wrong-type", "idle", "x", entry=False),
    # The idle worker blocks on the wake list: the wait is refused too (WRONGTYPE), not a script.
    Garbage("wake-wrong-type", "wake", "x", entry=False, as_hash=True),
    Garbage("queued-wrong-type", "queued", "x", entry=False, outcome="lost"),
    Garbage(
        "queued-wrong-type-job-due",
        "queued",
        "x",
        entry=False,
        due=True,
    ),
]


def write_garbage(queue: Queue, case: Garbage, target: str) -> None:
    key = getattr(queue.keys, case.key)
    if case.entry:
        queue.client.hset(key, target, case.value)
    elif case.as_hash:
        queue.client.delete(key)
        queue.client.hset(key, "x", case.value)
    else:
        queue.client.delete(key)
        queue.client.set(key, case.value)


def settle(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except redis.ResponseError:
            pass
        time.sleep(0.05)
    return False


def garbage_case(cluster: Cluster, case: Garbage, db: int) -> dict:
    queue, side = cluster.queue("faults", db), cluster.queue("faults-side", db)
    target = f"{case.name}-target"
    release = cluster.root / f"release-{case.name}"
    queue.add_job(
        target, {"hold": str(release)} if case.running else {"sleep": 0}, delay=60 * case.due
    )
    if case.due:  # due now, by the Redis clock: the next claim promotes it
        queue.client.zadd(queue.keys.scheduled, {target: 1}, xx=True)
    if not case.running:
        write_garbage(queue, case, target)
    worker = cluster.worker("faults", "faults-side", name=f"worker-{case.name}", db=db)
    registry = workers_registry_key(PREFIX)
    settle(lambda: queue.client.zcard(registry) or not worker.alive, 60)  # it met the garbage
    patience = 60
    if case.running:
        settle(lambda: any(run.id == target for run in cluster.runs()), 60)
        write_garbage(queue, case, target)
        release.touch()
    add_errors = []
    side.add_jobs([f"{case.name}-side-{i}" for i in range(3)])
    others = [f"{case.name}-other-{i}" for i in range(3)]
    if case.entry:
        queue.add_jobs(others)
    else:
        settle(lambda: side.stats()["processed_total"] == 3, patience)
        try:
            queue.add_jobs(others)
        except redis.RedisError as exc:
            add_errors.append(f"{type(exc).__name__}: {exc}")
        queue.client.delete(getattr(queue.keys, case.key))  # the operator repairs the key
        queue.add_jobs(others)

    def target_state() -> str:
        state = checker.states(queue.client, queue.keys).get(target)
        if state:
            return state
        return "done" if target in checker.completed_ids(cluster.runs()) else "lost"

    def settled() -> bool:
        stats = queue.stats()
        return (
            side.stats()["processed_total"] == 3
            and checker.completed_ids(cluster.runs()) >= set(others)
            and stats["processing"] + stats["queued"] + stats["scheduled"] == 0
            and target_state() == case.outcome
        )

    settle(settled, patience)
    alive = worker.alive
    worker.stop()
    runs = cluster.runs()
    log = worker.output()
    error = json.loads(queue.client.hget(queue.keys.errors, target) or "{}")
    return {
        "worker_alive": alive,
        "side_acked": f"{side.stats()['processed_total']}/3",
        "others_completed": f"{len(checker.completed_ids(runs) & set(others))}/3",
        "target": target_state(),
        "target_error": error.get("message", "")[:100],
        "add_errors": add_errors,
        "left_behind": checker.left_behind(queue.client, queue.keys),
        "tracebacks": log.count("Traceback"),
        # a queue refused by Redis is logged once when that begins and once when it ends
        "refusals_logged": log.count("faults: reading the queue's keys failed"),
        "read_again_logged": log.count("faults: reading the queue's keys works again"),
    }


@pytest.fixture(scope="module")
def garbage_results(tmp_path_factory):
    """Run every garbage case at once, each in a database of its own with its own worker."""
    cluster = Cluster(tmp_path_factory.mktemp("garbage"))
    try:
        return in_parallel(
            {
                case.name: lambda case=case, db=db: garbage_case(cluster, case, db)
                for db, case in enumerate(GARBAGE, start=1)
            }
        )
    finally:
        cluster.close()


@pytest.mark.parametrize("case", GARBAGE, ids=[case.name for case in GARBAGE])
def test_garbage_in_redis_costs_at_most_its_job_and_the_worker_keeps_running(garbage_results, case):
    result = outcome(garbage_results, case.name)
    checker.report(f"fuzz: garbage in Redis ({case.name})", **result)
    assert result["worker_alive"]
    assert result["side_acked"] == "3/3"
    assert result["others_completed"] == "3/3"
    assert result["target"] == case.outcome
    assert case.error in result["target_error"]
    left = dict(result["left_behind"])
    if case.outcome == "lost":  # the garbage overwrote its queue entry: its record remains
        left = {key: ids for key, ids in left.items() if ids != [f"{case.name}-target"]}
    assert left == {}
    assert result["tracebacks"] == 0
    assert result["refusals_logged"] == result["read_again_logged"] <= 1
    if not case.entry:  # the queue was refused until the repair: said once, with the key
        assert result["refusals_logged"] == 1


def test_a_corrupt_key_in_one_queue_never_stops_the_jam_guard_of_the_others(cluster: Cluster):
    """``convoy_jamguard`` over two queues, one of whose processing sets is a string: the other
    queue's jammed job is recovered, the bad queue is said once with its key, and once it is
    repaired it is guarded again."""
    queue, side = cluster.queue("faults"), cluster.queue("faults-side")
    queue.client.set(queue.keys.processing, "garbage")
    side.add_job("jammed-beside")
    side.claim(1, "ghost-worker")
    side.client.zadd(side.keys.processing, {"jammed-beside": 1}, xx=True)  # long expired
    guard = cluster.jamguard("faults", "faults-side")
    cluster.wait_for(lambda: side.stats()["queued"] == 1, 30, "the other queue's job recovered")
    time.sleep(1.0)  # a few more rounds over the corrupt queue
    queue.client.delete(queue.keys.processing)  # the operator repairs it
    cluster.wait_for(lambda: "read again" in guard.output(), 30, "the repaired queue guarded")
    alive = guard.alive
    cluster.stop_all()
    output = guard.output()
    refusals = [line for line in output.splitlines() if "refused to read" in line]
    checker.report(
        "fuzz: convoy_jamguard over a queue with a corrupt key",
        guard_alive=alive,
        other_queue_recovered=side.get_job("jammed-beside").state == "queued",
        refusal_lines=len(refusals),
        refusal=refusals[0][:140] if refusals else "",
        read_again_lines=output.count("read again"),
        tracebacks=output.count("Traceback"),
    )
    assert alive
    assert len(refusals) == 1
    assert queue.keys.processing in refusals[0]
    assert output.count("read again") == 1
    assert "Traceback" not in output
