"""Claiming ahead: while a queue's jobs are short, a worker holds more runs than it runs at once.

A claim costs a round trip and a script's start, and a worker's slots idle while one is in
flight. So while a queue's jobs are short (each under SHORT_JOB_SECONDS) and its queue is deep
(the last claim got all it asked for), a worker claims ahead:

* a ``--pool processes`` child claims AHEAD runs more than the one it runs, so that the claim's
  cost is shared (``pool_child.py``);
* a threads worker holds up to twice its slots (AHEAD + 1 more at most), so that its executors
  run the next runs while the reporter's ack-and-claim is in flight (``ThreadsAhead``).

A run claimed ahead waits about one short job. One still waiting HAND_BACK_AFTER_SECONDS on was
claimed ahead of jobs that turned out long: it goes back to the queue unstarted, its attempt
given back, for an idle worker to take. Not with ``--max-jobs``, whose count must stay exact,
nor in a threads worker of several queues, whose executors serve them all: a run claimed ahead
of one queue could start on an executor another queue left idle, past its queue's
``--concurrency``. Once the worker stops, the runs claimed ahead that have not begun go back
at once.
"""

from __future__ import annotations

from collections.abc import Iterable

AHEAD = 15
SHORT_JOB_SECONDS = 0.01
HAND_BACK_AFTER_SECONDS = 0.1


def all_short(seconds: Iterable[float]) -> bool:
    """Whether jobs that took ``seconds`` were short enough to claim ahead of."""
    return all(s < SHORT_JOB_SECONDS for s in seconds)


class ThreadsAhead:
    """How many runs a threads worker claims beyond its free slots, per queue. Written by the
    claims (under the worker's ``claiming`` lock) and the reporter (``observed``)."""

    def __init__(self, slots: dict[str, int], enabled: bool):
        enabled = enabled and len(slots) == 1  # one queue: its executors are its slots
        self.most = {name: min(n, AHEAD + 1) if enabled else 0 for name, n in slots.items()}
        self.short = dict.fromkeys(slots, False)  # the queue's last jobs were short
        self.deep = dict.fromkeys(slots, False)  # its last claim got all it asked for

    def extra(self, name: str) -> int:
        """Runs to claim now beyond the free slots of queue ``name``."""
        return self.most[name] if self.short[name] and self.deep[name] else 0

    def claimed(self, name: str, wanted: int, got: int) -> None:
        """A claim of up to ``wanted`` runs got ``got``."""
        self.deep[name] = got >= wanted

    def observed(self, name: str, seconds: list[float]) -> None:
        """Runs of queue ``name`` ended after ``seconds`` each (none: nothing learnt)."""
        if seconds:
            self.short[name] = all_short(seconds)

    def turned_long(self, name: str) -> None:
        """Runs claimed ahead waited too long: the queue's jobs are not short now."""
        self.short[name] = False
