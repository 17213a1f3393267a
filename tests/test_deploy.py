"""The example files of deploy/ are valid, give the worker the time its --grace promises, and
run the probe the manual describes (docs/deployment.rst); convoy_health keeps its contract
(exit 0 healthy, 1 not)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_convoy import get_queue
from tests.helpers import ROOT, manage, wait_until

DEPLOY = ROOT / "deploy"
GRACE_AND_LAST_REPORTS = 30 + 5  # --grace in every example, and the worker's last reports


def grace_of(command: list[str]) -> float:
    assert command[command.index("manage.py") + 1] == "convoy_worker"
    return float(command[command.index("--grace") + 1])


def run(command: list[str], **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env}
    return subprocess.run(
        [sys.executable, *command[1:]] if command[0] == "python" else command,
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- the example files --------------------------------------------------------------------------


def test_the_systemd_unit_verifies_and_outlasts_the_grace(tmp_path):
    text = (DEPLOY / "systemd" / "convoy-worker@.service").read_text()
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read_string(text)
    service = unit["Service"]
    command = shlex.split(service["ExecStart"])
    assert float(service["TimeoutStopSec"]) >= grace_of(command) + 5
    assert (service["KillSignal"], service["KillMode"]) == ("SIGTERM", "mixed")
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze here: the unit was parsed only")
    # The same unit, with this checkout and this Python in place of /srv/app: verify checks
    # that the command exists.
    local = text.replace("/srv/app/.venv/bin/python", sys.executable).replace("/srv/app", str(ROOT))
    path = tmp_path / "convoy-worker@.service"
    path.write_text(local)
    instance = tmp_path / "convoy-worker@1.service"
    instance.symlink_to(path)
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(instance)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in (verified.stdout + verified.stderr).splitlines()
        if "convoy-worker" in line  # not the host's own units
    ]
    assert verified.returncode == 0 and problems == [], verified.stdout + verified.stderr


def test_the_supervisor_program_parses_and_outlasts_the_grace():
    config = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    config.read(DEPLOY / "supervisor" / "convoy-worker.conf")
    program = config["program:convoy-worker"]
    command = shlex.split(program["command"])
    assert command[0].endswith("python")
    assert float(program["stopwaitsecs"]) >= grace_of(command) + 5
    assert program["stopsignal"] == "TERM"
    assert "%(process_num)s" in program["process_name"]


def dockerfile() -> dict[str, list[str]]:
    """The Dockerfile's instructions (continued lines joined), by name."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "docker" / "Dockerfile").read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, rest = line.strip().partition(" ")
            assert name.isupper(), line
            found.setdefault(name, []).append(rest)
    return found


def test_the_dockerfile_runs_the_worker_as_pid_1_with_a_health_check():
    instructions = dockerfile()
    assert instructions["FROM"][0].startswith("python:3.12")
    (cmd,) = instructions["CMD"]
    command = json.loads(cmd)  # the exec form: the worker is PID 1 and gets docker stop's SIGTERM
    assert grace_of(command) == 30
    assert instructions["STOPSIGNAL"] == ["SIGTERM"]
    (check,) = instructions["HEALTHCHECK"]
    probe = json.loads(check.split(" CMD ", 1)[1])
    assert probe[:3] == ["python", "manage.py", "convoy_health"]


def kubernetes() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML (the dev extra) reads the manifest")
    return yaml.safe_load((DEPLOY / "kubernetes" / "convoy-worker.yaml").read_text())


def test_the_kubernetes_deployment_gives_the_worker_its_grace():
    deployment = kubernetes()
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert spec["terminationGracePeriodSeconds"] >= grace_of(container["command"]) + 5
    probe = container["livenessProbe"]
    assert probe["exec"]["command"][:3] == ["python", "manage.py", "convoy_health"]
    timeout = float(probe["exec"]["command"][probe["exec"]["command"].index("--timeout") + 1])
    assert timeout < probe["timeoutSeconds"]  # the command gives up before the kubelet does
    assert "readinessProbe" not in container  # a worker serves no traffic


def test_the_probes_of_the_examples_run():
    """The health checks of the Dockerfile and of the Deployment, run against a real worker
    (its pid in place of 1: here the worker is not PID 1)."""
    worker = manage("convoy_worker", "default")
    try:
        wait_until(lambda: worker_registered(worker.pid), timeout=30)
        probes = [json.loads(dockerfile()["HEALTHCHECK"][0].split(" CMD ", 1)[1])]
        if importable("yaml"):
            probes.append(
                kubernetes()["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["exec"][
                    "command"
                ]
            )
        for probe in probes:
            probe = [str(worker.pid) if arg == "1" else arg for arg in probe]
            healthy = run(probe)
            assert healthy.returncode == 0, healthy.stdout + healthy.stderr
            assert healthy.stdout.startswith("healthy: Redis answered in ")
            assert f"; worker {socket.gethostname()}.{worker.pid}." in healthy.stdout
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    gone = run(probes[0])  # its pid is free now (or another process's: not a worker's)
    assert gone.returncode == 1
    assert gone.stderr.startswith("CommandError: unhealthy: ")


def importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def worker_registered(pid: int) -> bool:
    out = StringIO()
    try:
        call_command("convoy_health", "--worker-pid", str(pid), stdout=out)
    except CommandError:
        return False
    return True


# -- convoy_health's contract --------------------------------------------------------------------


def test_health_is_ok_when_redis_answers():
    out = StringIO()
    call_command("convoy_health", stdout=out)
    assert re.fullmatch(r"healthy: Redis answered in [\d.]+ ms\n", out.getvalue())


def test_health_exits_1_naming_redis_when_it_is_unreachable():
    result = run(
        ["python", "manage.py", "convoy_health", "--timeout", "3"],
        CONVOY_TEST_REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert result.returncode == 1
    assert result.stderr.startswith("CommandError: unhealthy: ")
    assert "127.0.0.1:1" in result.stderr


def test_health_of_a_worker_pid_with_no_process_or_no_worker_fails():
    with pytest.raises(CommandError, match=r"unhealthy: no process 999999999 on this host"):
        call_command("convoy_health", "--worker-pid", "999999999")
    with pytest.raises(CommandError, match=rf"no convoy_worker of pid {os.getpid()} on host"):
        call_command("convoy_health", "--worker-pid", str(os.getpid()))


def test_health_fails_when_the_workers_heartbeat_is_older_than_max_age():
    fleet = get_queue("default").store.fleet
    info = {"host": socket.gethostname(), "pid": os.getpid(), "queues": ["default"]}
    fleet.heartbeat(f"{socket.gethostname()}.{os.getpid()}.abc", info, 100)
    out = StringIO()
    call_command("convoy_health", "--worker-pid", str(os.getpid()), stdout=out)
    assert "; worker " in out.getvalue()
    wait_until(lambda: not worker_fresh(), timeout=5)  # 2 x 100 ms: gone by the admin's rule
    call_command("convoy_health", "--max-age", "60", stdout=out)  # the newest of this host
    with pytest.raises(CommandError, match=r"last beat [\d.]+ s ago \(more than 0.01 s\)"):
        call_command("convoy_health", "--worker-pid", str(os.getpid()), "--max-age", "0.01")


def worker_fresh() -> bool:
    try:
        call_command("convoy_health", "--worker-pid", str(os.getpid()), stdout=StringIO())
    except CommandError:
        return False
    return True
