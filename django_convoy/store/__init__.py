"""The store: everything convoy keeps in Redis, and the only code that talks to it by script.

``keys.py`` builds every key name; ``lua/`` holds one script per atomic operation, each starting
with its KEYS and ARGV; ``scripts.py`` declares each script once (whether it writes, how its
reply reads); ``queues.py`` (``QueueStore``) and ``fleet.py`` (``Fleet``, the workers registry)
run them; ``records.py`` is the one reader of stored records.
"""

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
    decode_body,
    encode_body,
    from_ms,
)

__all__ = [
    "BATCH",
    "AddResult",
    "ClaimBatch",
    "DataMarks",
    "Fleet",
    "JamGuardRound",
    "Job",
    "JobResult",
    "JobRow",
    "QueueStore",
    "RecoveredJob",
    "Run",
    "WorkerRecord",
    "decode_body",
    "encode_body",
    "from_ms",
    "give_back_wake_token",
    "wait_for_work",
    "worker_alive",
]
