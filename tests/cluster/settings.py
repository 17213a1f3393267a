"""Settings of the processes a cluster test starts: the fault suite's (its job journals every
run), with the test's own CONVOY setting, passed as JSON in ``CONVOY_CLUSTER_SETTING``, merged
in: the same Redis Cluster or Sentinel group, key prefix and queues as the test process."""

import json
import os

from tests.faults.settings import *  # noqa: F403

_given = json.loads(os.environ["CONVOY_CLUSTER_SETTING"])
INSTALLED_APPS = [*INSTALLED_APPS, "tests.cluster"]  # noqa: F405  (its tasks.py)
CONVOY = {**CONVOY, **_given, "QUEUES": {**CONVOY["QUEUES"], **_given["QUEUES"]}}  # noqa: F405
CLUSTER_QUEUES = sorted(_given["QUEUES"])  # the queues tasks.py gives the fault suite's job
