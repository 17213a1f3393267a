import argparse
import logging
import os
import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_convoy.conf import get_config
from django_convoy.exceptions import ConvoyError
from django_convoy.worker.serving import serve
from django_convoy.worker.supervisor import Supervisor


def processes(value: str) -> int:
    """``--processes``: a count of at least 1, or ``auto`` (the CPUs this process may use)."""
    if value == "auto":
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(
            f"must be a number of processes, at least 1, or auto; not {value!r}"
        )
    return int(value)


class Command(BaseCommand):
    help = "Run the jobs of one or more convoy queues."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "queues",
            nargs="*",
            metavar="QUEUE",
            help="Queues to serve (default: every configured queue).",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="Jobs at once per queue (default: each queue's CONCURRENCY).",
        )
        parser.add_argument("--burst", action="store_true", help="Exit when the queues are empty.")
        parser.add_argument(
            "--max-jobs", type=int, default=None, help="Exit after claiming this many jobs."
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=30.0,
            help="Seconds running jobs get to finish on SIGTERM/SIGINT "
            "(default 30); then they are handed back to the queue.",
        )
        parser.add_argument(
            "--pool",
            choices=("threads", "processes"),
            default="threads",
            help="Run jobs on threads (default), or on child processes that are killed and "
            "replaced when a job passes JOB_TIMEOUT or crashes its process.",
        )
        parser.add_argument(
            "--processes",
            type=processes,
            default=1,
            metavar="N",
            help="Run N worker processes (auto: one per CPU), each with --concurrency slots per "
            "queue, supervised by this command (default 1: this process is the worker).",
        )
        parser.add_argument(
            "--no-scheduler",
            action="store_true",
            help="Do not fire the schedules (CONVOY['SCHEDULE']) from this worker.",
        )
        parser.add_argument(
            "--no-jam-guard",
            action="store_true",
            help="Do not recover jammed jobs of these queues from this worker.",
        )

    def handle(self, *args: Any, queues: list[str], **options: Any) -> None:
        configured = get_config().queues
        unknown = [name for name in queues if name not in configured]
        if unknown:
            raise CommandError(
                f"Unknown queue(s): {', '.join(unknown)}. Configured queues: "
                f"{', '.join(sorted(configured))}."
            )
        for option in ("concurrency", "max_jobs"):
            if options[option] is not None and options[option] < 1:
                raise CommandError(f"--{option.replace('_', '-')} must be at least 1.")
        if options["grace"] < 0:
            raise CommandError("--grace must be >= 0.")
        queues = queues or sorted(configured)
        _log_to(self.stdout, options["verbosity"])
        worker_options = {
            "concurrency": options["concurrency"],
            "burst": options["burst"],
            "max_jobs": options["max_jobs"],
            "grace": options["grace"],
            "jam_guard": not options["no_jam_guard"],
            "pool": options["pool"],
            # Any number of schedulers may run: each tick fires once (schedules/).
            "scheduler": not options["no_scheduler"] and not options["burst"],
        }
        try:
            if options["processes"] == 1:
                serve(queues, worker_options)
                return
            supervisor = Supervisor(options["processes"], queues, worker_options)
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, supervisor.on_signal)  # only counts: run() forwards
            supervisor.run()
        except ConvoyError as exc:  # a worker that could not start, or died (logged above)
            raise CommandError(str(exc)) from exc


# Django's Tasks framework logs a line per task started and finished (the backport under its
# own name): the worker logs its own line per job, so those are only shown at -v 2.
DJANGO_TASKS_LOGGERS = ("django.tasks", "django_tasks")


def _log_to(stream: Any, verbosity: int) -> None:
    """Send convoy's log to the command's output unless the project configured it, and keep
    Django's per-task lines out of it unless the project configured those."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    tasks_level = logging.WARNING if verbosity < 2 else level
    logger = logging.getLogger("django_convoy")
    handler = None
    if not logger.handlers:
        handler = logging.StreamHandler(stream if hasattr(stream, "write") else sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    for name in DJANGO_TASKS_LOGGERS:
        tasks_logger = logging.getLogger(name)
        if tasks_logger.handlers or tasks_logger.level != logging.NOTSET:
            continue  # LOGGING names it: the project's choice
        tasks_logger.setLevel(tasks_level)
        if handler is not None:  # its errors in the worker's format, beside convoy's lines
            tasks_logger.addHandler(handler)
            tasks_logger.propagate = False
