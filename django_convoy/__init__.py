"""django_convoy: a Redis job queue for Django built around unique job ids.

The public API; importing it does no I/O and reads no settings.
"""

from .context import JobContext, current_job, still_owner
from .decorators import ConvoyTask, convoy_processor, convoy_task
from .exceptions import (
    ConvoyError,
    InvalidJob,
    JobCancelled,
    JobExpired,
    JobNotFound,
    JobTimeout,
    NotReplicated,
    PayloadTooLarge,
    RedisFull,
    RedisUnavailable,
    UnknownQueue,
    UnknownTask,
)
from .queue import ConvoyQueue, Queue, get_queue
from .store import AddResult, Job, RecoveredJob

__all__ = [
    "AddResult",
    "ConvoyError",
    "ConvoyQueue",
    "ConvoyTask",
    "InvalidJob",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobExpired",
    "JobNotFound",
    "JobTimeout",
    "NotReplicated",
    "PayloadTooLarge",
    "Queue",
    "RecoveredJob",
    "RedisFull",
    "RedisUnavailable",
    "UnknownQueue",
    "UnknownTask",
    "convoy_processor",
    "convoy_task",
    "current_job",
    "get_queue",
    "still_owner",
]
