"""The queues of the fault scenarios: one-second leases, so that every recovery takes a second."""

from __future__ import annotations

from django_convoy.conf import QueueConfig
from django_convoy.limits import parse_rate

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
# Flow control (test_flow_limits.py): each limit on a queue of its own, so that the journal
# shows each one holding by itself.
FLOW = {"CONCURRENCY": 4, "LEASE": 1.0, "JOB_TIMEOUT": 0, "MAX_JAMS": 10}
FAULT_QUEUES.update(
    {
        "flow-groups": FLOW | {"GROUP_CONCURRENCY": 2},
        "flow-rate": FLOW | {"RATE_LIMIT": "20/s burst 5"},
        "flow-group-rate": FLOW | {"GROUP_RATE_LIMIT": "5/s burst 2"},
        # A bucket that takes 10 s to fill: longer than the restart scenario's claims pause
        # (Redis down 1.5 s, then the workers' reconnect backoff of up to 2 s), so a bucket
        # lost or refilled by the restart would show as a second burst.
        "flow-slow-refill": FLOW | {"RATE_LIMIT": "2/s burst 20"},
    }
)
# Scenario 2 runs each crash case on a queue of its own, all at once.
STEP_QUEUES = [f"steps-{i:02d}" for i in range(32)]
FAULT_QUEUES.update(dict.fromkeys(STEP_QUEUES, FAULT_QUEUES["faults"] | {"CONCURRENCY": 1}))


RATE_KEYS = ("RATE_LIMIT", "GROUP_RATE_LIMIT")


def queue_config(name: str) -> QueueConfig:
    """The QueueConfig the fault processes build from FAULT_QUEUES[name]."""
    values = {key.lower(): value for key, value in FAULT_QUEUES[name].items()}
    for key in RATE_KEYS:
        if key in FAULT_QUEUES[name]:
            values[key.lower()] = parse_rate(FAULT_QUEUES[name][key], key)
    return QueueConfig(name=name, **values)
