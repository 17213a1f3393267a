"""The manual's Python examples run, so that what it shows is what convoy does.

Every ``.. code-block:: python`` of README.rst and docs/*.rst is executed, in the order of its
file, in one namespace per file (a module of its own, so that its tasks have a dotted path),
against the suite's private Redis: the adds, claims and drains of an example happen for real.
Two reST comments, invisible in the rendered manual, steer it:

``.. also run:``
    followed by an indented block: code run at that point but not shown (the step a reader
    does elsewhere, such as a worker running the queued jobs, or an ``assert`` of what the
    example says).
``.. not run: <why>``
    just before a code block: the block is skipped, for the reason given (a fragment of
    another file, a server the suite does not have).

A ``CONVOY`` setting an example defines is checked as ``manage.py check`` would, and its queues
are configured (beside the suite's) for the rest of the file. A block headed by the file it
belongs in (``# fleet/tasks.py``) can be imported under that name (``from fleet.tasks import
weigh_truck``) by the blocks after it.
"""

from __future__ import annotations

import linecache
import re
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path

import django
import pytest
from django.conf import settings
from django.dispatch import Signal
from django.test import override_settings

from django_convoy import decorators, signals
from django_convoy.conf import find_problems

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.rst", *sorted((ROOT / "docs").glob("*.rst"))]
CODE_BLOCK = re.compile(r"^\.\. code-block:: python\s*$")
ALSO_RUN = re.compile(r"^\.\. also run:\s*$")
NOT_RUN = re.compile(r"^\.\. not run: \S")
FILE_HEADER = re.compile(r"^# ([a-z_]\w*(?:/[a-z_]\w*)+)\.py\b")  # an app's module


@dataclass(frozen=True)
class Example:
    """One block of code to run, and where it is."""

    path: Path
    line: int  # 1-based, of the directive or comment
    code: str
    shown: bool


def examples(path: Path) -> list[Example]:
    """The blocks of ``path`` to run, in order (a skipped block is left out)."""
    lines = path.read_text().splitlines()
    found = []
    skip_next = False
    for number, line in enumerate(lines):
        if NOT_RUN.match(line):
            skip_next = True
            continue
        is_code, is_hidden = CODE_BLOCK.match(line), ALSO_RUN.match(line)
        if not (is_code or is_hidden):
            if line.strip() and not line.startswith(" "):
                skip_next = False  # a "not run" comment covers the next block only
            continue
        body = _indented_block(lines, number + 1)
        if is_code and skip_next:
            skip_next = False
            continue
        found.append(Example(path, number + 1, body, shown=bool(is_code)))
    return found


def _indented_block(lines: list[str], start: int) -> str:
    """The indented text after a directive, its options (``:caption: ...``) left out."""
    block = []
    for line in lines[start:]:
        if line.strip() and not line.startswith(" "):
            break
        block.append(line)
    text = textwrap.dedent("\n".join(block))
    code = [line for line in text.splitlines() if not re.match(r"^:[\w-]+:", line)]
    return "\n".join(code).strip("\n") + "\n"


def _framework(code: str) -> str:
    """On Django 5.2, Django's Tasks framework is the django-tasks backport (as the manual
    says beside each such import)."""
    if django.VERSION >= (6,):
        return code
    return code.replace("from django.tasks import", "from django_tasks import")


@pytest.fixture
def restored_registries():
    """Leave the task registries and signal receivers as they were: the examples define tasks
    (some scheduled) and receivers that other tests must not see. The suite's own processors
    are set aside meanwhile: an example's project registers its own."""
    saved = (dict(decorators._tasks), dict(decorators._processors), dict(decorators._runners))
    decorators._processors.clear()
    receivers = {
        name: list(signal.receivers)
        for name, signal in vars(signals).items()
        if isinstance(signal, Signal)
    }
    yield
    for registry, before in zip(
        (decorators._tasks, decorators._processors, decorators._runners), saved, strict=True
    ):
        registry.clear()
        registry.update(before)
    for name, before in receivers.items():
        signal = getattr(signals, name)
        signal.receivers[:] = before
        signal.sender_receivers_cache.clear()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path",
    [path for path in FILES if any(example.shown for example in examples(path))],
    ids=lambda path: path.name,
)
def test_examples_run(path: Path, restored_registries: None) -> None:
    found = examples(path)
    name = f"docs_examples.{path.stem.replace('-', '_').lower()}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    added = {name: module}  # tasks' dotted paths resolve, as a tasks module's would
    sys.modules[name] = module
    overrides: list[override_settings] = []
    try:
        for example in found:
            where, source = f"{path.name}:{example.line}", _framework(example.code)
            linecache.cache[where] = (len(source), None, source.splitlines(True), where)
            code = compile(source, where, "exec")  # a failure's traceback shows the example
            before = module.__dict__.get("CONVOY")
            exec(code, module.__dict__)
            if module.__dict__.get("CONVOY") is not before:
                overrides.append(_configure(module.__dict__["CONVOY"], where))
            if header := FILE_HEADER.match(source):
                _alias(header.group(1).replace("/", "."), module, added)
    finally:
        for override in reversed(overrides):
            override.disable()
        for alias in added:
            del sys.modules[alias]


def _configure(setting: object, where: str) -> override_settings:
    """Check a ``CONVOY`` an example shows, and serve its queues beside the suite's."""
    assert isinstance(setting, dict), f"{where}: CONVOY is not a dict"
    # "...": the rest of a setting shown before; a fragment leaves out what it does not change
    shown = {key: value for key, value in setting.items() if key is not Ellipsis}
    if not {"REDIS_URL", "CONNECTION", "CLUSTER_NODES", "SENTINELS"} & shown.keys():
        shown["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    shown.setdefault("QUEUES", {"default": {}})
    problems = find_problems(shown)
    assert not problems, f"{where}: {[problem.msg for problem in problems]}"
    queues = {**settings.CONVOY["QUEUES"], **shown["QUEUES"]}
    override = override_settings(CONVOY={**settings.CONVOY, "QUEUES": queues})
    override.enable()
    return override


def _alias(dotted: str, module: types.ModuleType, added: dict[str, types.ModuleType]) -> None:
    """Make ``module`` importable as ``dotted`` (and its parents as empty packages), unless
    that name is a real module."""
    parts = dotted.split(".")
    if parts[0] in sys.modules and parts[0] not in added:
        return
    for n in range(1, len(parts)):
        parent = ".".join(parts[:n])
        if parent not in sys.modules:
            package = types.ModuleType(parent)
            package.__path__ = []
            sys.modules[parent] = added[parent] = package
    sys.modules[dotted] = added[dotted] = module


def test_a_not_run_comment_skips_only_the_next_block(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(
        ".. not run: a fragment\n\n.. code-block:: python\n\n   skipped()\n\n"
        ".. code-block:: python\n   :caption: shown\n\n   x = 1\n\n"
        ".. also run:\n\n   assert x == 1\n"
    )
    assert [(e.code, e.shown) for e in examples(page)] == [
        ("x = 1\n", True),
        ("assert x == 1\n", False),
    ]
