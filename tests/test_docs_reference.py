"""The manual's reference pages say what the code does, and all of it.

Each test reads one reference page of docs/ and the code it documents: the settings keys and
their defaults, the system check ids, the commands' options, the metric names, and the public
API's signatures. A key, check, option, metric or parameter added to the code without its line
in the manual fails here, and so does a line about one that is gone.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import django
import pytest
from django.core.management import load_command_class

from django_convoy import conf
from django_convoy.backends.options import OPTION_DEFAULTS
from django_convoy.observability.config import METRICS_KEYS
from django_convoy.schedules.config import SCHEDULE_KEYS

DOCS = Path(__file__).resolve().parent.parent / "docs"
PACKAGE = Path(conf.__file__).resolve().parent


def page(name: str) -> str:
    return (DOCS / f"{name}.rst").read_text()


def section(text: str, title: str) -> str:
    """The body of the section titled ``title``, up to the next section of its level."""
    heading = f"\n{title}\n{'=' * len(title)}\n"
    start = text.index(heading) + len(heading)
    following = re.search(r"\n[^\n]+\n=+\n", text[start:])
    return text[start : start + following.start()] if following else text[start:]


def table_keys(text: str) -> list[str]:
    """The keys a simple reST table lists in its first column."""
    return re.findall(r"^``([A-Za-z_]+)``\s", text, flags=re.M)


def test_every_convoy_key_is_documented() -> None:
    text = section(page("settings"), "``CONVOY``")
    documented = set(re.findall(r"^``([A-Z_]+)``", text, flags=re.M))
    documented |= {key for line in re.findall(r"^``[A-Z_]+``, .*$", text, flags=re.M)
                   for key in re.findall(r"``([A-Z_]+)``", line)}  # fmt: skip
    assert documented == set(conf.TOP_LEVEL_KEYS)


def test_every_queue_key_is_documented_with_its_default() -> None:
    text = section(page("settings"), "Queue keys")
    assert table_keys(text) == list(conf.QUEUE_DEFAULTS)
    shown = dict(re.findall(r"^``([A-Z_]+)``\s+(\S+(?: \S+)?)\s{2}", text, flags=re.M))
    units = {"days": 24 * 3600, "day": 24 * 3600, "KiB": 1024}
    for key, default in conf.QUEUE_DEFAULTS.items():
        number, _, unit = shown[key].partition(" ")
        assert float(number) * units.get(unit, 1) == default, key


def test_every_schedule_metrics_and_backend_key_is_documented() -> None:
    settings_page = page("settings")
    assert table_keys(section(settings_page, "Schedule keys")) == list(SCHEDULE_KEYS)
    assert table_keys(section(settings_page, "Metrics keys")) == list(METRICS_KEYS)
    assert table_keys(section(settings_page, "Django Tasks backend options")) == list(
        OPTION_DEFAULTS
    )


def test_every_check_id_is_documented_and_every_documented_id_exists() -> None:
    in_code = set()
    for path in PACKAGE.rglob("*.py"):
        in_code |= set(re.findall(r"convoy\.[EW]\d{3}", path.read_text()))
    documented = re.findall(r"^(convoy\.[EW]\d{3})\s", page("checks"), flags=re.M)
    assert len(documented) == len(set(documented))
    assert set(documented) == in_code


COMMANDS = ("convoy_worker", "convoy_scheduler", "convoy_jamguard", "convoy_stats", "convoy_health")
DJANGO_OPTIONS = {
    "--help",
    "--version",
    "--verbosity",
    "--settings",
    "--pythonpath",
    "--traceback",
    "--no-color",
    "--force-color",
    "--skip-checks",
}


def test_the_commands_page_lists_every_command() -> None:
    shipped = {path.stem for path in (PACKAGE / "management" / "commands").glob("convoy_*.py")}
    assert shipped == set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_of_a_command_is_in_its_table(name: str) -> None:
    parser = load_command_class("django_convoy", name).create_parser("manage.py", name)
    options = {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option not in DJANGO_OPTIONS
    }
    text = section(page("commands"), f"``{name}``")
    table = text[text.rindex("\noption ") :]
    documented = set(re.findall(r"^``(--[a-z-]+)", table, flags=re.M))
    assert documented == options
    if any(action.dest == "queues" for action in parser._actions):
        assert "``QUEUE ...``" in table


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    pytest.importorskip("prometheus_client")
    from django_convoy.observability.prometheus import ConvoyCollector

    exposed = set()
    for family in ConvoyCollector().collect():
        exposed.add(family.name + ("_total" if family.type == "counter" else ""))
    text = section(page("metrics"), "Metrics")
    documented = set(re.findall(r"^``(convoy_[a-z_]+)[{`]", text, flags=re.M))
    assert documented == exposed


# -- the API page: each directive's signature is the object's ---------------------------------

DIRECTIVE = re.compile(
    r"^(?P<indent> *)\.\. py:(?P<kind>module|currentmodule|function|decorator|class|method|"
    r"attribute|exception|data):: (?P<target>[\w.]+)(?:\((?P<params>.*)\))?"
)


def api_directives() -> list[tuple[str, str, str, str | None]]:
    """(kind, module, dotted name, parameters) of each directive of docs/api.rst."""
    found, module, cls = [], "", None
    for line in page("api").splitlines():
        match = DIRECTIVE.match(line)
        if not match:
            continue
        kind, target, params = match["kind"], match["target"], match["params"]
        if kind in ("module", "currentmodule"):
            module, cls = target, None
            continue
        if match["indent"] == "":
            cls = target if kind == "class" else None
            found.append((kind, module, target, params))
        else:
            found.append((kind, module, f"{cls}.{target}", params))
    return found


def resolve(module: str, dotted: str) -> Any:
    if dotted.startswith("django_convoy."):
        module, dotted = dotted.rsplit(".", 1)
    obj: Any = __import__(module, fromlist=["_"])
    for part in dotted.split("."):
        obj = getattr(obj, part) if part in dir(obj) else _field(obj, part)
    return obj


def _field(cls: type, name: str) -> Any:
    """A dataclass field or an instance attribute: present, though not on the class."""
    fields = getattr(cls, "__dataclass_fields__", {})
    assert name in fields, f"{cls.__name__} has no attribute {name}"
    return fields[name]


def documented_parameters(params: str) -> list[tuple[str, Any]]:
    """``(name, default)`` of each parameter of a signature written in the manual."""
    tree = ast.parse(f"def f({params}): pass").body[0].args
    names = [(arg.arg, inspect.Parameter.empty) for arg in tree.posonlyargs + tree.args]
    for (name, _), default in zip(names[::-1], tree.defaults[::-1], strict=False):
        names[names.index((name, inspect.Parameter.empty))] = (name, ast.literal_eval(default))
    if tree.vararg:
        names.append(("*" + tree.vararg.arg, inspect.Parameter.empty))
    for arg, default in zip(tree.kwonlyargs, tree.kw_defaults, strict=True):
        names.append(
            (arg.arg, inspect.Parameter.empty if default is None else ast.literal_eval(default))
        )
    if tree.kwarg:
        names.append(("**" + tree.kwarg.arg, inspect.Parameter.empty))
    return names


def actual_parameters(obj: Any) -> list[tuple[str, Any]]:
    found = []
    for parameter in inspect.signature(obj).parameters.values():
        if parameter.name == "self":
            continue
        prefix = {parameter.VAR_POSITIONAL: "*", parameter.VAR_KEYWORD: "**"}.get(
            parameter.kind, ""
        )
        found.append((prefix + parameter.name, parameter.default))
    return found


@pytest.mark.parametrize(
    "kind, module, name, params",
    [pytest.param(*item, id=item[2]) for item in api_directives() if item[3] is not None],
)
def test_a_documented_signature_is_the_code_s(kind: str, module: str, name: str, params: str):
    if "Tasks framework" in name or (module == "django_convoy.backends" and django.VERSION < (6,)):
        pytest.importorskip("django_tasks")
    assert documented_parameters(params) == actual_parameters(resolve(module, name))


def test_every_public_name_and_method_is_on_the_api_page() -> None:
    import django_convoy
    from django_convoy import signals, testing

    documented = {(module, name) for _, module, name, _ in api_directives()}
    for name in django_convoy.__all__:
        if name == "Queue":  # ConvoyQueue's other name, said beside it
            continue
        assert ("django_convoy", name) in documented, name
    for name in ("job_added", "job_started", "job_finished", "job_recovered"):
        assert ("django_convoy.signals", name) in documented and hasattr(signals, name)
    for name in ("drain", "drain_all", "DrainResult", "ConvoyTestMixin", "private_redis"):
        assert ("django_convoy.testing", name) in documented and hasattr(testing, name)
    for cls in (django_convoy.ConvoyQueue, django_convoy.ConvoyTask):
        methods = {_name for kind, _, _name, _ in api_directives() if kind == "method"}
        for method in _users_methods(cls):
            assert f"{cls.__name__}.{method}" in methods, f"{cls.__name__}.{method}"


def _users_methods(cls: type) -> list[str]:
    """The public methods a project calls: not the worker's (ConvoyQueue's after ``pause`` and
    ``resume`` in its source are the worker's and the admin's internals)."""
    names = [name for name, _ in inspect.getmembers(cls, inspect.isfunction) if name[0] != "_"]
    worker_side = {
        "add_encoded", "claim", "ack_and_claim", "handed_run", "ack", "fail", "is_final",
        "timeout_of", "expired", "keep_result", "set_progress", "renew", "handback",
        "release_orphans", "still_owns", "data_marks",
    }  # fmt: skip
    return [name for name in names if name not in worker_side]


def test_every_field_of_the_documented_records_is_documented() -> None:
    from dataclasses import fields

    import django_convoy
    from django_convoy.store import records
    from django_convoy.testing import DrainResult

    attributes = {name for kind, _, name, _ in api_directives() if kind == "attribute"}
    for cls in (
        django_convoy.AddResult,
        django_convoy.Job,
        records.JobResult,
        records.Progress,
        django_convoy.RecoveredJob,
        records.JamGuardRound,
        DrainResult,
        django_convoy.JobContext,
    ):
        for field in fields(cls):
            if field.name.startswith("_") or field.name == "lost":
                continue  # the worker's handle on a run, not the task's
            assert f"{cls.__name__}.{field.name}" in attributes, f"{cls.__name__}.{field.name}"
