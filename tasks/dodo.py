"""What a project's dodo.py imports: every step of workflows/*.yaml as a doit task.

    from tasks.dodo import DOIT_CONFIG, task_workflows  # noqa: F401
"""
import os

import doit

from . import plan, steps
from .report import Reporter

# doit opens its state file before it asks for tasks: the folder must exist now.
os.makedirs(".dockflow", exist_ok=True)

# sqlite3: two runs at once keep both runs' records (dbm.dumb and json lose one).
DOIT_CONFIG = {
    "backend": "sqlite3",
    "dep_file": os.path.join(".dockflow", "doit.sqlite3"),
    "reporter": Reporter,
    "verbosity": 2,
}


def task_workflows():
    """Steps of workflows/*.yaml."""
    project_dir = os.getcwd()  # doit runs from the folder of dodo.py
    task_list = list(plan.task_dicts(project_dir, override=doit.get_var))
    # `doit` alone does every step but those that are never up to date (prune).
    DOIT_CONFIG["default_tasks"] = [
        t["basename"] for t in task_list if t["uptodate"] != [False]]
    yield from task_list
