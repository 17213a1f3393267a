"""A --pool processes child's slot: what the worker reads of the runs a child holds."""

from django_convoy.store import Run, policy_head, policy_of
from django_convoy.worker.slot import ACKING, HELD, RUNNING, Slot

BODY = '{"task":"t.x","policy":{"timeout":2.5,"max_attempts":4},"payload":{"args":[1]}}'


def run(n: int, body: str = BODY) -> Run:
    return Run("q", f"job-{n}", body, 1, str(100 + n))


def test_a_slot_shows_the_worker_each_run_its_child_holds_with_its_policy_only():
    slot = Slot()
    assert slot.hold([run(1), run(2)]) == []
    view = slot.read()
    assert [r.id for r in view.runs] == ["job-1", "job-2"]
    assert view.states == HELD * 2
    assert view.runs[0].body == policy_head(BODY)  # no payload crosses
    assert policy_of(view.runs[0].body).timeout == 2.5


def test_a_slot_shows_which_run_executes_since_when_and_the_counts():
    slot = Slot()
    slot.hold([run(1), run(2)])
    slot.start(run(1), 2.5)
    view = slot.read()
    assert view.running.id == "job-1" and view.timeout == 2.5 and view.started > 0
    slot.ended(run(1), ACKING)
    assert slot.read().running is None
    assert [r.id for r in slot.read().in_state(ACKING)] == ["job-1"]
    slot.release([run(1)], processed=1)
    view = slot.read()
    assert ([r.id for r in view.runs], view.processed, view.states) == (["job-2"], 1, HELD)


def test_a_read_returns_what_it_knew_when_nothing_changed_and_refuses_a_torn_write():
    slot = Slot()
    slot.hold([run(1)])
    first = slot.read()
    assert slot.read(first) is first
    slot.start(run(1), 0)
    assert slot.read(first).states == RUNNING
    slot.view[0] |= 1  # a child killed half-way through a write leaves an odd number
    assert slot.read(tries=3) is None


def test_runs_past_what_a_slot_holds_are_given_back_to_the_child():
    slot = Slot()
    big = '{"task":"t","policy":{"pad":"' + "x" * 40_000 + '"},"payload":1}'
    left = slot.hold([run(1, big), run(2, big), run(3)])
    assert [r.id for r in left] == ["job-2", "job-3"]
    assert [r.id for r in slot.read().runs] == ["job-1"]


def test_a_policy_head_reads_as_its_body_whatever_the_body():
    for body in (
        BODY,
        '{"task":"t.x","payload":{}}',
        '{"payload":5}',
        '{"trace":{"t":1},"task":"t","policy":{"backoff":1},"payload":1}',
        "not json",
    ):
        assert policy_of(policy_head(body)) == policy_of(body)
