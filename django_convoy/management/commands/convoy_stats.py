"""``convoy_stats``: the queues and the workers, now, in a terminal or as JSON.

``--watch [SECONDS]`` redraws in place like ``top`` (on the terminal's alternate screen, left
as it was on Ctrl-C); with ``--json`` it prints one JSON object per line instead.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_convoy.conf import get_config
from django_convoy.dashboard.statistics import get_statistics
from django_convoy.exceptions import RedisUnavailable
from django_convoy.observability.console import as_json_data, tables

# Alternate screen and hidden cursor while watching; home, then each line cleared to its end.
ENTER, LEAVE = "\x1b[?1049h\x1b[?25l", "\x1b[?25h\x1b[?1049l"
HOME, CLEAR_LINE, CLEAR_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"


class Command(BaseCommand):
    help = (
        "Show every queue's counts, rates over the last minute, oldest job and wait times, and "
        "the workers; --watch redraws it every few seconds, --json prints it for scripts."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("queues", nargs="*", help="queues to show (default: every one)")
        parser.add_argument(
            "--watch",
            nargs="?",
            type=float,
            const=2.0,
            metavar="SECONDS",
            help="Redraw every SECONDS (default 2) until Ctrl-C.",
        )
        parser.add_argument("--json", action="store_true", help="Print JSON, not tables.")

    def handle(self, *args: Any, queues: list[str], watch: float | None, **options: Any):
        configured = get_config().queues
        unknown = [name for name in queues if name not in configured]
        if unknown:
            raise CommandError(
                f"Unknown queue {', '.join(map(repr, unknown))}; configured queues: "
                f"{', '.join(sorted(configured))}."
            )
        if watch is not None and watch <= 0:
            raise CommandError(f"--watch must be a number of seconds > 0, not {watch:g}.")
        as_json = options["json"]
        if watch is None:
            try:
                self.stdout.write(self._render(queues, as_json))
            except RedisUnavailable as exc:
                raise CommandError(str(exc)) from None
            return
        self._watch(queues, as_json, watch)

    def _render(self, queues: list[str], as_json: bool) -> str:
        statistics = get_statistics(queues or None)
        if as_json:
            return json.dumps(as_json_data(statistics))
        header = f"convoy at {statistics.now:%Y-%m-%d %H:%M:%S} UTC"
        return "\n".join([header, "", *tables(statistics)])

    def _watch(self, queues: list[str], as_json: bool, every: float) -> None:
        fancy = not as_json and self.stdout.isatty()
        if fancy:
            self.stdout.write(ENTER, ending="")
        try:
            while True:
                try:
                    text = self._render(queues, as_json)
                except RedisUnavailable as exc:
                    text = json.dumps({"error": str(exc)}) if as_json else f"convoy: {exc}"
                if fancy:
                    footer = f"\nevery {every:g} s; Ctrl-C to quit"
                    lines = (text + footer).split("\n")
                    self.stdout.write(
                        HOME + "".join(line + CLEAR_LINE + "\n" for line in lines) + CLEAR_BELOW,
                        ending="",
                    )
                else:
                    self.stdout.write(text + ("" if as_json else "\n"))
                self.stdout.flush()
                time.sleep(every)
        except KeyboardInterrupt:
            pass
        finally:
            if fancy:
                self.stdout.write(LEAVE, ending="")
                self.stdout.flush()
