import time
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError

from django_convoy.conf import get_config
from django_convoy.exceptions import RedisUnavailable, clause
from django_convoy.health import DataMarkWatch
from django_convoy.ids import shown
from django_convoy.queue import get_queue
from django_convoy.worker.contact import ContactWatch


class Command(BaseCommand):
    help = "Recover jammed jobs: runs whose lease expired because their worker died or stalled."

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.data_marks = DataMarkWatch()
        self.refused: set[str] = set()  # queues whose keys Redis refuses to read as convoy's
        self.contact: ContactWatch | None = None  # set by handle(): it needs the queues
        self.held: dict[str, Any] = {}  # the hold last said, per queue

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
        self.contact = ContactWatch([q.name for q in guarded], min(q.config.lease for q in guarded))
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
            self._wait(guarded, options["interval"])

    def _wait(self, queues: list, seconds: float) -> None:
        """Sleep until the next round, checking in with Redis every third of a lease: an
        outage between two rounds is a gap in this guard's contact too (``contact.py``)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, self.contact.slack))
            if deadline - time.monotonic() <= 0:
                return
            for queue in queues:
                try:
                    with self.contact.call():
                        self.contact.saw(queue.name, queue.store.clock_ms())
                except RedisUnavailable:
                    break  # the next round says it

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
        if self.contact is None:  # _round called without handle() (the tests)
            self.contact = ContactWatch([queue.name], queue.config.lease)
        sent_ms = self.contact.reckoned_ms(queue.name, queue.store.clock_ms)
        resumed = self.contact.owed(queue.name)
        with self.contact.call():
            lost = self.data_marks.observe(queue.name, queue.data_marks())
            if dry_run:
                jammed, guarded = queue.jammed_jobs(), None
            else:
                guarded = queue.jam_guard_round(drop=drop, resumed=resumed, sent_ms=sent_ms)
                self.contact.saw(queue.name, guarded.redis_ms)
                if resumed:
                    self.contact.told(queue.name)
        if lost:
            self.stderr.write(
                f"Redis lost convoy's data for queue {queue.name}: jobs queued or running "
                "before the loss may be gone (see the log for details)."
            )
        if guarded is None:
            for job in jammed:
                self.stdout.write(
                    f"{queue.name} {shown(job.id)}: jammed (worker {job.worker}, "
                    f"lease expired at {job.lease_deadline:%Y-%m-%d %H:%M:%S} "
                    f"UTC, attempt {job.attempts})"
                )
            self.stdout.write(f"{queue.name}: {len(jammed)} jammed")
            return
        if guarded.held_until and guarded.held_until != self.held.get(queue.name):
            self.stderr.write(
                f"{queue.name}: Redis is back from an outage: the jam guard recovers nothing "
                f"until {guarded.held_until:%H:%M:%S} UTC (live workers renew their leases "
                "first)."
            )
        self.held[queue.name] = guarded.held_until
        for job in guarded.recovered:
            self.stdout.write(
                f"{queue.name} {shown(job.id)}: {job.action} - {job.reason}, "
                f"attempt {job.attempts}, jam {job.jams}"
            )
