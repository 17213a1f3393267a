"""A scheduler beside a worker: ``convoy_worker`` runs one unless given ``--no-scheduler``."""

from __future__ import annotations

import logging
import threading

from .config import get_schedules
from .scheduler import Scheduler

logger = logging.getLogger(__name__)


def start_scheduler(stop: threading.Event) -> threading.Thread | None:
    """Start a scheduler thread that runs until ``stop`` is set (None: no schedule is enabled).

    A scheduler that fails unexpectedly is logged and started again after a pause: the worker
    it runs beside goes on, and so do the other schedulers.
    """
    if not any(schedule.enabled for schedule in get_schedules()):
        return None

    def loop() -> None:
        while not stop.is_set():
            try:
                Scheduler().run(stop)
            except Exception:
                logger.exception("the scheduler failed; starting it again in 5 s")
                stop.wait(5.0)

    thread = threading.Thread(target=loop, name="convoy-scheduler", daemon=True)
    thread.start()
    return thread
