"""An add checks only the keys it may write, before its first write: garbage (a key of the wrong
type, written by hand) in any of them refuses the whole add, naming the key, and leaves every
key as it was; garbage in a key it does not write lets it through.

Each case sets a queue up in one branch of the add (plain, delayed, a failed id, a replace, a
rerun, a hold, a hand-over, a job with a group, a batch with a repeated id), then writes garbage
into one key and adds."""

from collections.abc import Callable

import pytest
import redis

from django_convoy import get_queue
from django_convoy.queue import Queue
from django_convoy.store.keys import QueueKeys, inbox_key

INBOX = "inbox"  # the waiting worker's inbox, beside the queue's own keys


def failed(queue: Queue) -> None:
    queue.add_job("f")
    (run,) = queue.claim(1, "w").runs
    assert queue.fail(run, {"message": "boom"}, final=True) == "failed"


def processing(queue: Queue) -> None:
    queue.add_job("p")
    assert queue.claim(1, "w").runs


def waiting_worker(queue: Queue) -> None:
    assert queue.claim(1, "w", wait_ms=5000).waiting


# name: (set-up, the add, the keys whose garbage must refuse it)
CASES: dict[str, tuple[Callable[[Queue], None], Callable[[Queue], object], set[str]]] = {
    "plain": (
        lambda q: None,
        lambda q: q.add_job("new"),
        {"seq", "queued", "jobs", "processing", "wake", "stats"},
    ),
    "delayed": (
        lambda q: None,
        lambda q: q.add_job("new", delay=60),
        {"seq", "scheduled", "jobs", "wake", "stats"},
    ),
    "failed-again": (
        failed,
        lambda q: q.add_job("f"),
        {"seq", "queued", "failed", "errors", "jobs", "wake", "stats"},
    ),
    "replace": (
        lambda q: q.add_job("q"),
        lambda q: q.add_job("q", {"new": 1}, if_queued="replace", delay=60),
        {"seq", "queued", "scheduled", "jobs", "stats"},
    ),
    "rerun": (
        processing,
        lambda q: q.add_job("p", if_processing="rerun"),
        {"seq", "rerun", "processing", "stats"},
    ),
    "hold": (
        lambda q: None,
        lambda q: q.add_job("h", hold_for=60),
        {"seq", "held", "queued", "jobs", "stats"},
    ),
    "hand-over": (
        waiting_worker,
        lambda q: q.add_job("new"),
        {"seq", "idle", "run", "processing", "jobs", "stats", INBOX},
    ),
    "grouped": (
        lambda q: q.add_job("other", group="tenant-2"),
        lambda q: q.add_job("new", group="tenant-1"),
        {"seq", "jobs", "group", "grouped", "lanes", "ring", "parked", "groups", "flow", "stats"},
    ),
    "batch": (
        lambda q: q.add_job("old"),
        lambda q: q.add_jobs(["a", "old", "a"], if_queued="replace", if_processing="rerun"),
        {"seq", "queued", "scheduled", "failed", "errors", "rerun", "jobs", "wake", "stats"},
    ),
}
# paused is read, never written by an add, and garbage there would be a pause.
KEYS = [*(name for name in QueueKeys._fields if name != "paused"), INBOX]


def garbage_in(queue: Queue, client: redis.Redis, name: str) -> str:
    """Overwrite one key with a value of the wrong type; return its name."""
    key = inbox_key(queue.keys, "w") if name == INBOX else getattr(queue.keys, name)
    client.delete(key)
    if name == "seq":
        client.hset(key, "x", "1")
    else:
        client.set(key, "garbage")
    return key


def snapshot(client: redis.Redis) -> dict[str, bytes]:
    raw = redis.Redis(connection_pool=client.connection_pool)
    return {key: raw.dump(key) for key in sorted(client.keys("*"))}


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("case", list(CASES))
def test_garbage_in_a_key_the_add_writes_refuses_it_before_its_first_write(case, key, redis_client):
    set_up, add, refused = CASES[case]
    queue = get_queue("fast")
    set_up(queue)
    written = garbage_in(queue, redis_client, key)
    before = snapshot(redis_client)
    try:
        add(queue)
    except redis.ResponseError as exc:
        assert f"convoy: {written} is a " in str(exc)
        assert snapshot(redis_client) == before, "a refused add wrote something"
        return
    assert key not in refused, f"garbage in {key} did not refuse the add"
    assert redis_client.type(written) in ("string", "hash")  # left as it was


def test_a_sequence_counter_that_is_not_one_refuses_the_add(redis_client):
    queue = get_queue("fast")
    for garbage in ("abc", "12.5", "-5"):
        redis_client.set(queue.keys.seq, garbage)
        with pytest.raises(redis.ResponseError, match="not a counter"):
            queue.add_job("new")
        assert redis_client.keys("*") == [queue.keys.seq]
