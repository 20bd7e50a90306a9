"""What a project's dodo.py imports: every step of workflows/*.yaml as a doit task.

    from tasks.dodo import DOIT_CONFIG, task_workflows  # noqa: F401

The workflows are loaded when doit imports dodo.py, not later in the task
creator: doit reads DOIT_CONFIG (default tasks among it) before it asks for tasks,
and `name=value` arguments are already parsed by then. A WorkflowError raised
here is a doit InvalidDodoFile: doit prints it and exits 3, no traceback.
"""
import atexit
import gc
import os
import signal
import sys

import doit

from . import doit_internals, doit_tasks, ui, workers, workflow
from .report import Reporter

ui.claim_output()  # this process is a doit run of ours: loguru's default stderr sink goes

# Python's shutdown runs a full garbage collection over every object still alive:
# about 10 ms after a no-op run, a tenth of it. Objects frozen at exit are skipped by
# it; atexit handlers, flushes and closes still run, and the memory goes back to the
# OS with the process.
atexit.register(gc.freeze)

def _interrupted(signum, frame):
    """Ctrl-C: one line instead of a KeyboardInterrupt traceback. SystemExit unwinds the
    running step as an exception would (its temp files removed, its socket to the engine
    closed, so the engine stops the build) and doit still records the steps done.
    Workers of doit -n N unwind theirs (tasks/workers.py), and are waited for; a
    second Ctrl-C stops waiting."""
    if workers.worker_lost():  # not Ctrl-C: the watcher of the workers stops the run (it said why)
        workers.stop_workers()
        raise SystemExit(1)
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, _interrupted_again)
        sys.stderr.write("\ninterrupted (Ctrl-C): the steps done before are recorded, and what the running "
                         "step was writing is never taken for done. Run the same command again to go on.\n")
        workers.stop_workers()
    raise SystemExit(130)


def _interrupted_again(signum, frame):
    raise SystemExit(130)


if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a background job of a script ignores it
    signal.signal(signal.SIGINT, _interrupted)

# doit opens its state file before it asks for tasks: the folder must exist now.
os.makedirs(".dockflow", exist_ok=True)

# Every `name=value` doit parsed from the command line, to refuse a misspelt one.
_given = doit_internals.command_line_vars()
_task_list = list(doit_tasks.task_dicts(os.getcwd(), override=doit.get_var, given=_given))  # cwd: dodo.py's folder
# `doit` alone does every step but those that are never up to date (prune):
# a bare `doit` must not delete anything.
_default_tasks = [t["basename"] for t in _task_list if t["uptodate"] != [False]]

# sqlite3: two runs at once keep both runs' records (dbm.dumb and json lose one).
DOIT_CONFIG = {
    "backend": "sqlite3",
    "dep_file": os.path.join(".dockflow", "doit.sqlite3"),
    "reporter": Reporter,
    "verbosity": 2,
    "default_tasks": _default_tasks,
    # Independent steps at once, in worker processes, when the run has some (doit -n 0: never).
    **workers.run_config({t["basename"]: t["task_dep"] for t in _task_list}, _default_tasks, sys.argv),
}


# `doit biuld_app`: doit's own "Invalid parameter" message, plus the step it likely meant.
doit_internals.extend_invalid_command_text(
    lambda name: workflow.did_you_mean(name, set(doit_tasks.loaded_steps()[0]) | workflow.DOIT_COMMANDS))


def task_workflows():
    """Steps of workflows/*.yaml."""
    yield from _task_list
