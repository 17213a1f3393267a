"""The store owns Redis: its key table, its scripts, and nothing else sending them."""

import re
from pathlib import Path

from django_convoy.store.keys import QueueKeys
from django_convoy.store.scripts import SPECS, prelude, source

PACKAGE = Path(__file__).resolve().parent.parent / "django_convoy"


def test_the_lua_key_table_is_the_python_key_layout():
    """lua/_prelude.lua reads KEYS by position: its table must name QueueKeys' fields in order."""
    table = re.search(r"local K = \{(.*?)\}", prelude(), re.S).group(1)
    positions = {name: int(n) for name, n in re.findall(r"(\w+) = KEYS\[(\d+)\]", table)}
    assert sorted(positions, key=positions.get) == list(QueueKeys._fields)
    assert sorted(positions.values()) == list(range(1, len(QueueKeys._fields) + 1))


def test_each_script_defines_every_prelude_helper_it_uses_and_leaves_out_others():
    """A script carries the prelude's definitions it uses (a name left out would fail only when
    Redis reaches it), not the others (each costs time on every call)."""
    defined_by_prelude = set(re.findall(r"^local (?:function )?(\w+)", prelude(), re.M))
    for name, spec in SPECS.items():
        if not spec.queue:
            continue
        code = re.sub(r"--[^\n]*", "", source(name, flags=False))
        defined = set(re.findall(r"^local (?:function )?(\w+)", code, re.M))
        used = set(re.findall(r"[A-Za-z_]\w*", code)) & defined_by_prelude
        assert used <= defined, (name, used - defined)
    add = source("add", flags=False)
    assert "local function claim_jobs(" not in add and "local function ack_runs(" not in add


def test_every_script_file_is_declared_once_and_every_declaration_has_its_file():
    files = {path.stem for path in (PACKAGE / "store" / "lua").glob("*.lua")} - {"_prelude"}
    assert files == set(SPECS)


def test_every_script_file_starts_with_what_it_takes_and_returns():
    for name in SPECS:
        text = (PACKAGE / "store" / "lua" / f"{name}.lua").read_text()
        assert text.startswith(f"-- {name}:"), name
        assert "-- ARGV:" in text and "-- Returns" in text, name


def test_only_the_store_runs_scripts():
    """Nothing outside store/ registers or sends a script (connection/cluster.py only teaches
    redis-py's cluster pipelines to carry them)."""
    pattern = re.compile(r"register_script\(|\.evalsha\(|EVALSHA|\.scripts\.")
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.parts[-2] != "store"
        and path.name != "cluster.py"
        and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_writes_and_reads_are_declared():
    reads = {name for name, spec in SPECS.items() if not spec.writes}
    assert reads == {
        "inspect",
        "stats",
        "browse",
        "groups",
        "running",
        "task_result",
        "still_owns",
        "enqueued_at",
    }
    assert {name for name, spec in SPECS.items() if spec.add} == {"add", "task_add"}
