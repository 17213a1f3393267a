"""C1/C2: what plain redis-py does on this machine now, the yardsticks for convoy's figures.

C1 is a loop of sequential PINGs (one round trip per call: the floor for one call per job),
C2 INCRs sent 1,000 to a pipeline (the floor for bulk work from Python).
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.common import (
    PEER_PING_PER_S,
    ping_loop,
    pipelined_incr,
    progress,
    script_main,
    summarise,
)


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """Both loops, ``options.repeat`` times."""
    runs = []
    for _ in range(options.repeat):
        ping = ping_loop(url, 10_000)
        runs.append(
            {
                "ping_per_s": ping,
                "ping_us": 1e6 / ping,
                "vs_peer_machine": ping / PEER_PING_PER_S,
                "incr_per_s": pipelined_incr(url),
            }
        )
        progress(f"  C1 PING {ping:,.0f}/s, C2 pipelined INCR {runs[-1]['incr_per_s']:,.0f}/s")
    return summarise(runs)


if __name__ == "__main__":
    script_main(__doc__.splitlines()[0], measure)
