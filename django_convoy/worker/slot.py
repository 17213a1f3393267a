"""A pool child's slot: the runs a ``--pool processes`` child holds, in memory the worker reads.

Each child claims, runs and acks its own runs against Redis; the worker never sees a job go
by. What the worker must still do for a child (renew its leases, kill it at its job's timeout
or once its lease is lost, hand its run back at shutdown, fail the run it died running) it does
from this slot, which the child rewrites at each step and the worker reads when it looks:
no message, no wake-up, nothing per job on the worker's side.

The child is the only writer. A reader copies the slot between two reads of its sequence
number and tries again if a write was under way (a seqlock): the child never waits for the
worker, and a child killed mid-write leaves an odd number that no read accepts, so the worker
falls back on Redis (``release_orphans``) for what it held.
"""

from __future__ import annotations

import ctypes
import json
import struct
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import RawArray
from typing import Any

from ..store import Run, policy_head

SLOT_BYTES = 64 * 1024
MAX_HELD = 32  # runs one child may hold at once; it hands back what a claim gave beyond them
# seq, processed, failed, started (monotonic), timeout (s), running (index, -1: none), held
# runs' JSON length, then one state byte per held run.
_HEADER = struct.Struct(f"<QQQddiI{MAX_HELD}s")
HELD, RUNNING, ACKING, REPORTING = b"h", b"r", b"a", b"f"


@dataclass(frozen=True)
class SlotView:
    """What a child held when the worker last read its slot."""

    seq: int
    processed: int
    failed: int
    runs: list[Run]  # held: claimed and not yet reported
    states: bytes  # per run: HELD (not started), RUNNING, ACKING (done, its ack on the way),
    # REPORTING (failed, its failure on the way)
    started: float  # time.monotonic() when the running run started
    timeout: float  # its timeout in seconds (0: none)

    @property
    def running(self) -> Run | None:
        """The run whose job the child is executing now, if any."""
        index = self.states.find(RUNNING)
        return None if index < 0 else self.runs[index]

    def in_state(self, state: bytes) -> list[Run]:
        """The runs the child holds in ``state``."""
        return [run for run, s in zip(self.runs, self.states, strict=False) if bytes([s]) == state]


class Slot:
    """Shared memory between one child and the worker (module doc); a new child of the same
    slot starts from an empty one."""

    def __init__(self) -> None:
        self.memory: Any = RawArray(ctypes.c_char, SLOT_BYTES)
        self._seq = 0  # the child's copy (it alone writes)
        self._runs: list[Run] = []
        self._rows: list[list[Any]] = []  # what the worker reads of each run (a policy head)
        self._body = b"[]"
        self._states = bytearray()
        self._counts = [0, 0]
        self._started = self._timeout = 0.0
        self._view: memoryview | None = None  # of memory, made once per process

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_view": None}  # a memoryview does not cross to a child

    @property
    def view(self) -> memoryview:
        """The shared memory, as bytes."""
        if self._view is None:
            self._view = memoryview(self.memory).cast("B")
        return self._view

    # -- the child's side ---------------------------------------------------------------------

    def hold(self, runs: list[Run]) -> list[Run]:
        """Publish ``runs`` as held (not started), on top of those still held; return those that
        did not fit (the child hands them back unstarted)."""
        kept = list(runs)
        new = [[r.queue, r.id, policy_head(r.body), r.attempt, r.token, r.jams] for r in kept]
        left: list[Run] = []
        while kept:
            body = _encode(self._rows + new)
            if len(self._runs) + len(kept) <= MAX_HELD and _HEADER.size + len(body) <= SLOT_BYTES:
                break
            left.insert(0, kept.pop())
            new.pop()
        else:
            return left
        self._runs += kept
        self._rows += new
        self._states += HELD * len(kept)
        self._body = body
        self._write(body=True)
        return left

    def start(self, run: Run, timeout: float) -> None:
        """``run``'s job starts now, with ``timeout`` seconds (0: none)."""
        self._started, self._timeout = time.monotonic(), timeout
        self._set(run, RUNNING)

    def ended(self, run: Run, state: bytes) -> None:
        """``run``'s job ended: ACKING (its ack will follow) or REPORTING (its failure will)."""
        self._set(run, state)

    def release(self, runs: list[Run], processed: int = 0, failed: int = 0) -> None:
        """``runs`` are reported (or handed back): the child no longer holds them."""
        if not runs and not processed and not failed:
            return
        tokens = {run.token for run in runs}
        keep = [i for i, r in enumerate(self._runs) if r.token not in tokens]
        self._runs = [self._runs[i] for i in keep]
        self._rows = [self._rows[i] for i in keep]
        self._states = bytearray(self._states[i] for i in keep)
        self._counts[0] += processed
        self._counts[1] += failed
        if tokens:
            self._body = _encode(self._rows) if self._rows else b"[]"
        self._write(body=bool(tokens))

    @property
    def held(self) -> list[Run]:
        """What the child holds, as it published it."""
        return list(self._runs)

    def _set(self, run: Run, state: bytes) -> None:
        for i, held in enumerate(self._runs):
            if held.token == run.token and held.id == run.id:
                self._states[i] = state[0]
        self._write(body=False)

    def _write(self, body: bool) -> None:
        view = self.view
        self._seq += 1  # odd: a write is under way
        struct.pack_into("<Q", view, 0, self._seq)
        if body:
            view[_HEADER.size : _HEADER.size + len(self._body)] = self._body
        running = self._states.find(RUNNING)
        self._seq += 1
        _HEADER.pack_into(
            view, 0, self._seq - 1, *self._counts, self._started, self._timeout,
            running, len(self._body), bytes(self._states),
        )  # fmt: skip
        struct.pack_into("<Q", view, 0, self._seq)

    # -- the worker's side --------------------------------------------------------------------

    def read(self, known: SlotView | None = None, tries: int = 100) -> SlotView | None:
        """The slot as the child last wrote it (``known`` if nothing changed since), or None if
        the child is half-way through a write every time it is looked at (it was killed then)."""
        view = self.view
        for _ in range(tries):
            header = bytes(view[: _HEADER.size])
            seq, processed, failed, started, timeout, _, length, states = _HEADER.unpack(header)
            if seq % 2:
                time.sleep(0)
                continue
            if known is not None and known.seq == seq:
                return known
            body = bytes(view[_HEADER.size : _HEADER.size + length])
            if struct.unpack_from("<Q", view, 0)[0] != seq:
                continue
            rows = json.loads(body) if length else []
            runs = [
                Run(q, i, head, attempt, token, jams) for q, i, head, attempt, token, jams in rows
            ]
            return SlotView(seq, processed, failed, runs, states[: len(runs)], started, timeout)
        return None


def _encode(rows: list[list[Any]]) -> bytes:
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode()
