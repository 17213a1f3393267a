"""The store: everything convoy keeps in Redis, and the only code that talks to it by script.

``keys.py`` builds every key name; ``lua/`` holds one script per atomic operation, each starting
with its KEYS and ARGV; ``scripts.py`` declares each script once (whether it writes, how its
reply reads); ``queues.py`` (``QueueStore``) and ``fleet.py`` (``Fleet``, the workers registry)
run them; ``records.py`` is the one reader of stored records.
"""

from .bodies import (
    NO_POLICY,
    Policy,
    body_prefix,
    decode_body,
    encode_body,
    policy_head,
    policy_of,
)
from .fleet import Fleet, WorkerRecord, worker_alive
from .queues import BATCH, QueueStore, give_back_wake_token, wait_for_work
from .records import (
    AddResult,
    ClaimBatch,
    DataMarks,
    JamGuardRound,
    Job,
    JobResult,
    JobRow,
    RecoveredJob,
    Run,
    from_ms,
)

__all__ = [
    "BATCH",
    "NO_POLICY",
    "AddResult",
    "ClaimBatch",
    "DataMarks",
    "Fleet",
    "JamGuardRound",
    "Job",
    "JobResult",
    "JobRow",
    "Policy",
    "QueueStore",
    "RecoveredJob",
    "Run",
    "WorkerRecord",
    "body_prefix",
    "decode_body",
    "policy_head",
    "policy_of",
    "encode_body",
    "from_ms",
    "give_back_wake_token",
    "wait_for_work",
    "worker_alive",
]
