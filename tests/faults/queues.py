"""The queues of the fault scenarios: one-second leases, so that every recovery takes a second."""

from __future__ import annotations

from django_convoy.conf import QueueConfig

FAULT_QUEUES = {
    # Jobs that crash, stall or get cut off; up to 3 attempts so a failed run is retried.
    "faults": {
        "CONCURRENCY": 4,
        "LEASE": 1.0,
        "JOB_TIMEOUT": 0,
        "MAX_ATTEMPTS": 3,
        "RETRY_BACKOFF": 0.05,
        "MAX_JAMS": 10,
    },
    # A job that kills its process: failed after MAX_JAMS + 1 = 3 starts when that is the
    # worker (--pool threads), after MAX_ATTEMPTS = 2 when it is a child (--pool processes).
    "faults-poison": {
        "CONCURRENCY": 1,
        "LEASE": 1.0,
        "JOB_TIMEOUT": 0,
        "MAX_JAMS": 2,
        "MAX_ATTEMPTS": 2,
        "RETRY_BACKOFF": 0.05,
    },
    # A bystander queue: its jobs must not suffer from what happens to the others.
    "faults-side": {"CONCURRENCY": 2, "LEASE": 1.0, "JOB_TIMEOUT": 0},
}
# Scenario 2 runs each crash case on a queue of its own, all at once.
STEP_QUEUES = [f"steps-{i:02d}" for i in range(32)]
FAULT_QUEUES.update(dict.fromkeys(STEP_QUEUES, FAULT_QUEUES["faults"] | {"CONCURRENCY": 1}))


def queue_config(name: str) -> QueueConfig:
    """The QueueConfig the fault processes build from FAULT_QUEUES[name]."""
    return QueueConfig(
        name=name, **{key.lower(): value for key, value in FAULT_QUEUES[name].items()}
    )
