"""Periodic jobs: schedules in ``CONVOY["SCHEDULE"]`` (or ``@convoy_task(cron=..., every=...)``)
fired exactly once per tick however many schedulers run.

``config.py`` reads and validates the schedules, ``ticks.py`` computes their ticks (cron in a
time zone, or every N seconds from the epoch), ``scheduler.py`` fires them as they fall due
(the tick script, ``store/lua/tick.lua``, decides), ``listing.py`` describes them for
``convoy_scheduler --list`` and the admin, ``thread.py`` runs a scheduler beside a worker.
"""

from .config import Schedule, get_schedules, schedule_problems
from .scheduler import Scheduler, tick_job_id

__all__ = ["Schedule", "Scheduler", "get_schedules", "schedule_problems", "tick_job_id"]
