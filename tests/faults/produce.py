"""A producer process: ``python -m tests.faults.produce``, started by fault scenarios.

It adds jobs through the public API as fast as it can (or every ``--pause`` seconds) and
writes, when it ends, a JSON summary to ``--out``: every add Redis acknowledged as queuing the
id, and every error it got (with how long the failed call took).

Ids: ``--ids N`` goes through ``id-0`` .. ``id-<N-1>`` in random orders; ``--id X`` always adds X;
``--unique P`` adds ``P-0``, ``P-1``, ... Phases: it waits for the file ``--start`` (so that
many producers begin together; ``<out>.ready`` says it is waiting), makes ``--adds`` adds,
then, with ``--then F``, writes ``<out>.phase1``, waits for the file F and makes ``--adds2``
more; with ``--until F`` it goes on until the file F exists.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path


def wait_for_file(path: str | None) -> None:
    while path and not os.path.exists(path):
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue", default="faults")
    parser.add_argument("--out", required=True)
    parser.add_argument("--start")
    parser.add_argument("--ids", type=int)
    parser.add_argument("--id")
    parser.add_argument("--unique")
    parser.add_argument("--adds", type=int, default=0)
    parser.add_argument("--then")
    parser.add_argument("--adds2", type=int, default=0)
    parser.add_argument("--until")
    parser.add_argument("--if-processing", default="ignore")
    parser.add_argument("--payload", default="{}")
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--pause2", type=float, default=0.0)
    options = parser.parse_args()

    import django

    django.setup()
    from django_convoy import get_queue
    from django_convoy.exceptions import ConvoyError

    queue = get_queue(options.queue)
    payload = json.loads(options.payload)
    name = Path(options.out).stem
    accepted: list[tuple[str, int]] = []
    errors: list[tuple[int, float, str, str]] = []
    counter = iter(range(10**9))
    order: list[int] = []

    def next_id() -> str:
        if options.id:
            return options.id
        if options.unique:
            return f"{options.unique}-{next(counter)}"
        if not order:  # each producer goes through every id in an order of its own, again and again
            order.extend(random.sample(range(options.ids), options.ids))
        return f"id-{order.pop()}"

    def add(phase: int, i: int) -> None:
        pause = options.pause2 if phase == 2 else options.pause
        job_id = next_id()
        started = time.monotonic()
        try:
            result = queue.add_job(
                job_id,
                {**payload, "tag": f"{name}-{phase}-{i}"},
                if_processing=options.if_processing,
            )
        except ConvoyError as exc:
            errors.append(
                (time.monotonic_ns(), time.monotonic() - started, type(exc).__name__, str(exc))
            )
            time.sleep(0.1)
            return
        if result.added:
            accepted.append((job_id, phase))
        if pause:
            time.sleep(pause)

    Path(options.out + ".ready").touch()
    wait_for_file(options.start)
    began = time.monotonic()
    adds = 0
    if options.until:
        while not os.path.exists(options.until):
            add(1, adds)
            adds += 1
    for i in range(options.adds):
        add(1, i)
        adds += 1
    if options.then:
        Path(options.out + ".phase1").touch()
        wait_for_file(options.then)
        for i in range(options.adds2):
            add(2, i)
            adds += 1
    summary = {
        "adds": adds,
        "seconds": time.monotonic() - began,
        "accepted": accepted,
        "errors": errors,
    }
    Path(options.out).write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
