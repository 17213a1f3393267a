"""The worker: ``Worker`` composed of a claimer, executors, a reporter and a keeper, sharing
one ``WorkerState`` (see ``worker.py``). ``convoy_worker`` runs one."""

from .backoff import Backoff
from .claimer import HAND_OFF_WAIT_MS, IDLE_BLOCK_SECONDS
from .worker import Worker, WorkerCrashed

__all__ = ["HAND_OFF_WAIT_MS", "IDLE_BLOCK_SECONDS", "Backoff", "Worker", "WorkerCrashed"]
