import time
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError

from django_convoy.conf import get_config
from django_convoy.exceptions import RedisUnavailable, clause
from django_convoy.health import DataMarkWatch
from django_convoy.ids import shown
from django_convoy.queue import get_queue


class Command(BaseCommand):
    help = "Recover jammed jobs: runs whose lease expired because their worker died or stalled."

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.data_marks = DataMarkWatch()
        self.refused: set[str] = set()  # queues whose keys Redis refuses to read as convoy's

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "queues",
            nargs="*",
            metavar="QUEUE",
            help="Queues to guard (default: every configured queue).",
        )
        parser.add_argument(
            "--interval", type=float, default=5.0, help="Seconds between rounds (default 5)."
        )
        parser.add_argument("--once", action="store_true", help="Run one round and exit.")
        parser.add_argument(
            "--drop",
            action="store_true",
            help="Clear jammed jobs out, releasing their ids, instead of queueing them again.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only list the jammed jobs; change nothing."
        )

    def handle(self, *args: Any, queues: list[str], **options: Any) -> None:
        configured = get_config().queues
        unknown = [name for name in queues if name not in configured]
        if unknown:
            raise CommandError(
                f"Unknown queue(s): {', '.join(unknown)}. Configured queues: "
                f"{', '.join(sorted(configured))}."
            )
        if options["interval"] <= 0:
            raise CommandError("--interval must be > 0.")
        guarded = [get_queue(name) for name in queues or sorted(configured)]
        while True:
            try:
                self._round(guarded, drop=options["drop"], dry_run=options["dry_run"])
            except RedisUnavailable as exc:
                if options["once"]:
                    raise CommandError(str(exc)) from exc
                self.stderr.write(f"{clause(exc)}; retrying in {options['interval']} s")
            if options["once"] or options["dry_run"]:
                if self.refused:
                    raise CommandError(
                        f"Redis refused to read the keys of {', '.join(sorted(self.refused))}; "
                        "the other queues were guarded."
                    )
                return
            time.sleep(options["interval"])

    def _round(self, queues: list, *, drop: bool, dry_run: bool) -> None:
        """Guard every queue; one whose keys Redis refuses (a corrupt key) is said once and
        skipped until it reads again: the others are guarded all the same."""
        for queue in queues:
            try:
                self._guard(queue, drop=drop, dry_run=dry_run)
            except redis.ResponseError as exc:
                if queue.name not in self.refused:
                    self.refused.add(queue.name)
                    self.stderr.write(
                        f"{queue.name}: Redis refused to read the queue's keys ({clause(exc)}); "
                        "is one corrupt? The other queues are guarded; this one is tried "
                        "again every round."
                    )
                continue
            if queue.name in self.refused:
                self.refused.discard(queue.name)
                self.stderr.write(f"{queue.name}: the queue's keys read again; guarding it.")

    def _guard(self, queue: Any, *, drop: bool, dry_run: bool) -> None:
        if self.data_marks.observe(queue.name, queue.data_marks()):
            self.stderr.write(
                f"Redis lost convoy's data for queue {queue.name}: jobs queued or running "
                "before the loss may be gone (see the log for details)."
            )
        if dry_run:
            for job in queue.jammed_jobs():
                self.stdout.write(
                    f"{queue.name} {shown(job.id)}: jammed (worker {job.worker}, "
                    f"lease expired at {job.lease_deadline:%Y-%m-%d %H:%M:%S} "
                    f"UTC, attempt {job.attempts})"
                )
            return
        for job in queue.jam_guard(drop=drop):
            self.stdout.write(
                f"{queue.name} {shown(job.id)}: {job.action} - {job.reason}, "
                f"attempt {job.attempts}, jam {job.jams}"
            )
