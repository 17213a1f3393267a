"""Compare two versions of convoy on one benchmark script, runs alternating, on this machine.

Other work shares these cores, so two benchmarks taken minutes apart say little about a
change. This exports each version's tree (``git archive``: committed files only) and runs the
script from each tree in turn, ``--rounds`` times, so both see the same stretch of machine; it
prints every run's progress lines and, per line label, each version's median.

    python -m benchmarks.compare f051ded HEAD --rounds 3 -- w2_drain --jobs 10000 \\
        --concurrency 1,32 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from benchmarks.common import ROOT

# A progress line's label and first figure: "  W2 concurrency 1: 2,760 jobs/s (...)", or
# "  W3: p50 1.062 ms, ..." (a figure's name may come first).
FIGURE = re.compile(r"^\s*(?P<label>[^:]+):\s*(?:[A-Za-z_]+\d*\s+)?(?P<value>[\d,.]+)")


def export(revision: str, into: Path) -> None:
    """Write ``revision``'s tree into ``into``; raise naming the revision if git cannot.

    ``.`` is the working tree's tracked files, uncommitted changes included (``git stash
    create`` records them in a commit without touching the tree or the stash list)."""
    if revision == ".":
        stash = subprocess.run(
            ["git", "-C", str(ROOT), "stash", "create"], capture_output=True, text=True, check=True
        )
        revision = stash.stdout.strip() or "HEAD"
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=False
    )
    if archive.returncode:
        raise SystemExit(f"git archive {revision}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def run(tree: Path, script: list[str]) -> list[str]:
    """Run ``python -m benchmarks.<script>`` with ``tree``'s code; return its progress lines."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script[0]}", *script[1:]],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{script[0]} failed in {tree}:\n{done.stderr[-2000:]}")
    return [line for line in done.stderr.splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the version to compare against (a commit, tag or branch)")
    parser.add_argument("head", help="the version under test ('.': the working tree)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each version, alternating")
    parser.usage = "%(prog)s BASE HEAD [--rounds N] -- SCRIPT [its options]"
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    options, script = parser.parse_args(argv[:split]), argv[split + 1 :]
    if not script:
        parser.error("name the benchmark script after --, e.g. -- w2_drain --repeat 1")
    figures: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory(prefix="convoy-compare-") as scratch:
        trees = {}
        for version in (options.base, options.head):
            trees[version] = Path(scratch) / re.sub(r"\W", "_", version)
            trees[version].mkdir()
            export(version, trees[version])
        for round_number in range(1, options.rounds + 1):
            for version, tree in trees.items():
                for line in run(tree, script):
                    print(f"{round_number} {version:>12} {line.strip()}", flush=True)
                    if match := FIGURE.match(line):
                        value = float(match["value"].replace(",", ""))
                        figures[match["label"].strip()][version].append(value)
    print("\nmedians (first figure of each line):")
    for label, by_version in figures.items():
        base, head = (
            statistics.median(by_version[v]) if by_version.get(v) else None
            for v in (options.base, options.head)
        )
        change = f"  {head / base - 1:+.0%}" if base and head is not None else ""
        shown = {
            v: "-" if m is None else f"{m:,.2f}"
            for v, m in zip((options.base, options.head), (base, head), strict=True)
        }
        print(f"  {label}: " + "  ".join(f"{v} {m}" for v, m in shown.items()) + change)


if __name__ == "__main__":
    main()
