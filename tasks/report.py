"""doit's console reporter, with failures a person can act on: a step that failed
prints its one message (no Python traceback); only a bug in dockflow itself, a
TaskError, keeps doit's full report."""
import sys

from doit.exceptions import TaskFailed
from doit.reporter import ConsoleReporter

from . import ui


class Reporter(ConsoleReporter):
    desc = "dockflow: one clear line per failed step"

    def __init__(self, outstream, options):
        super().__init__(ui.PipeSafe(outstream), options)

    def add_failure(self, task, fail):
        if isinstance(fail, TaskFailed):
            message = fail.message.removeprefix(task.name + ": ")  # the step may name itself too
            sys.stderr.write("FAILED %s: %s\n" % (task.name, message))
            sys.stderr.flush()
        else:
            super().add_failure(task, fail)

    def complete_run(self):
        self.failures = [f for f in self.failures if not isinstance(f["exception"], TaskFailed)]
        super().complete_run()
