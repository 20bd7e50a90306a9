"""doit's console reporter, with failures a person can act on: a step that failed
prints its one message (no Python traceback); only a bug in dockflow itself, a
TaskError, keeps doit's full report.

doit calls it in its own process also when workers run the steps (doit -n N), so it
also keeps the run's JSON log of step events (tasks/ui.py): each step's start,
result, reason and duration. It starts the watcher of the workers (tasks/workers.py)."""
import time

from doit.exceptions import TaskFailed
from doit.reporter import ConsoleReporter

from . import doit_tasks, fanout, ui, workers


class Reporter(ConsoleReporter):
    desc = "dockflow: one clear line per failed step"

    def __init__(self, outstream, options):
        super().__init__(ui.PipeSafe(outstream), options)
        self._started = {}  # step name -> (time.monotonic() when it started, why it runs)

    def initialize(self, tasks, selected_tasks):
        needed = workers.needed(selected_tasks, {name: task.task_dep for name, task in tasks.items()})
        ui.align_names(needed)
        steps = doit_tasks.loaded_project().steps
        fanout.connect_ahead([steps[name] for name in needed if name in steps])

    def execute_task(self, task):
        super().execute_task(task)
        self.outstream.flush()  # before the step's own lines, which a worker writes unbuffered
        reason = doit_tasks.reason_of(task.name)
        self._started[task.name] = (time.monotonic(), reason)
        workers.watch(doit_tasks.loaded_project().dir)
        if ui.logs_wanted():
            ui.step_event(task.name, "started", "started" + (": " + reason if reason else ""), reason=reason)

    def skip_uptodate(self, task):
        super().skip_uptodate(task)
        if ui.logs_wanted():
            ui.step_event(task.name, "up to date", "up to date")

    def add_success(self, task):
        duration, reason = self._ended(task)
        if ui.logs_wanted():
            ui.step_event(task.name, "done", "done in %.2f s" % duration, duration_s=duration, reason=reason)

    def add_failure(self, task, fail):
        if isinstance(fail, TaskFailed):
            message = fail.message.removeprefix(task.name + ": ")  # the step may name itself too
            ui.failed(task.name, message)
        else:
            message = fail.get_msg().strip()
            super().add_failure(task, fail)
        duration, reason = self._ended(task)
        if ui.logs_wanted():
            ui.step_event(task.name, "failed", "FAILED: " + message, error=True, duration_s=duration,
                          reason=reason, error_message=message)

    def complete_run(self):
        workers.run_over()
        self.failures = [f for f in self.failures if not isinstance(f["exception"], TaskFailed)]
        super().complete_run()

    def _ended(self, task):
        """(seconds since the step started, why it ran); (0.0, "") if it never started."""
        started, reason = self._started.pop(task.name, (None, ""))
        return (round(time.monotonic() - started, 3) if started is not None else 0.0), reason

