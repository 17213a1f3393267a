import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_convoy.exceptions import RedisUnavailable
from django_convoy.schedules import Scheduler, get_schedules
from django_convoy.schedules.listing import describe

from .convoy_worker import _log_to


class Command(BaseCommand):
    help = (
        "Fire the schedules of CONVOY['SCHEDULE'] (and @convoy_task(cron=..., every=...)) as "
        "their ticks fall due. Any number may run, beside workers that fire them too: each "
        "tick fires once."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Fire what is due now and exit.")
        parser.add_argument(
            "--list",
            action="store_true",
            help="Print each schedule with its next and last tick, and exit.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            return self._list()
        _log_to(self.stdout, options["verbosity"])
        scheduler = Scheduler()
        if not scheduler.entries:
            self.stdout.write("No schedule is enabled: nothing to fire.")
            return
        if options["once"]:
            try:
                scheduler.run_once()
            except RedisUnavailable as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"Fired {len(scheduler.fired)} tick(s).")
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, frame: stop.set())  # only sets a flag
        logging.getLogger("django_convoy").info(
            "scheduler firing %d schedule(s)", len(scheduler.entries)
        )
        scheduler.run(stop)

    def _list(self) -> None:
        if not get_schedules():
            self.stdout.write("No schedule is configured.")
            return
        try:
            views = describe()
        except RedisUnavailable as exc:
            raise CommandError(str(exc)) from exc
        for view in views:
            schedule = view.schedule
            self.stdout.write(
                f"{view.name}: {schedule.task} on queue {schedule.queue}, {view.when}, "
                f"{view.status}"
            )
            self.stdout.write(f"  next tick: {_at(view.next_tick)}")
            last = _at(view.last_tick)
            if view.state.outcome:
                last += f" ({view.state.outcome})"
            self.stdout.write(f"  last tick: {last}")
            if view.state.job_id:
                self.stdout.write(f"  last run:  {view.state.job_id} ({view.last_run})")


def _at(moment: Any) -> str:
    if moment is None:
        return "-"
    local = timezone.localtime(moment)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({local:%Y-%m-%d %H:%M:%S %Z})"
