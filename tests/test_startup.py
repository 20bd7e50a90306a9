"""The no-op path stays lean: loading every workflow of this repository and asking
doit for its tasks imports none of the heavy libraries (they cost ~250 ms together,
measured with python -X importtime), nor the modules only a step's check or run needs.
Behaviour, not a timing: a heavy import creeping in makes this fail."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ["docker", "requests", "urllib3", "jsonschema", "yaml", "loguru", "rich", "http.client", "ssl"]
# Only checking or running a step needs these; every step module is imported on load,
# so each one imported at a step module's top would cost ~0.1-0.2 ms on every run.
RUN_ONLY = ["tasks.registry_api", "tasks.imagetar", "tasks.progress", "shlex"]

PROBE = """
import json, os, sys
os.chdir(sys.argv[1])
from tasks import doit_tasks
tasks = list(doit_tasks.task_dicts(sys.argv[1]))
print(json.dumps(sorted(set(sys.modules))))
"""


def test_loading_tasks_imports_nothing_heavy(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    # First load fills .dockflow/cache (imports yaml + jsonschema); the second must not.
    subprocess.run([sys.executable, "-c", PROBE, REPO], env=env, check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-c", PROBE, REPO], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [name for name in HEAVY if name in loaded] == []
    assert [name for name in RUN_ONLY if name in loaded] == []
