"""The doit adapter: a checked project's steps -> doit task dicts, and the callables
doit calls for them.

Each step is a top-level doit task of the same name. Its `task_dep` is what it needs
(tasks/project_checks.py). Its `uptodate` is the step kind's check, which asks the
engine (a removed image is noticed), and its action calls the step kind's run(). Both
are module-level (a function and a class) holding only the step name, so
`doit -n 4 -P process` can hand them to workers.
"""
from . import engine, lock, steps, ui
from .errors import StepFailed
from .project_checks import checked_project
from .runstate import RUN


def task_dicts(project_dir, override=None, given=None):
    """What dodo.py yields to doit."""
    project = RUN.project = checked_project(project_dir, override, given)
    for name, step in project.steps.items():
        always = steps.always_runs(step.kind)
        yield {
            "basename": name,
            "doc": step.doc or "%s step" % step.kind,
            "actions": [(run_step, [name])],
            "task_dep": project.deps[name],
            # [False] keeps doit from calling it "no dependencies" and always running it
            "uptodate": [False] if always else [StepCheck(name)],
            "verbosity": 2,
        }


def loaded_project():
    """The Project whose steps dodo.py gave doit in this process."""
    if RUN.project is None:
        raise RuntimeError("no project loaded: dodo.py has not yielded its tasks in this process")
    return RUN.project


def loaded_steps():
    """(steps, deps) of the tasks dodo.py gave doit in this process."""
    project = loaded_project()
    return dict(project.steps), dict(project.deps)


def verdict_for(step, saved):
    """The step kind's check as a Verdict, never an exception: a kind that always
    runs is out of date, and a failing check is a Verdict carrying the error."""
    if steps.always_runs(step.kind):
        return steps.Verdict(False)
    try:
        return steps.module_for(step.kind).check(step, saved)
    except StepFailed as err:
        return steps.Verdict(False, error=err)
    except OSError as err:  # an input vanished or is unreadable while we looked
        return steps.Verdict(False, error=StepFailed("%s: %s: %s" % (
            step.where(), err.filename or "", err.strerror or err)))


class StepCheck:
    """doit's uptodate callable for one step (a module-level class, so doit -P process
    can hand it on). `doit info STEP` prints it: as a string it says why the step runs."""

    def __init__(self, name):
        self.name = name

    def __call__(self, task, values):
        return check_step(task, values, self.name)

    def __str__(self):
        verdict = RUN.verdicts.get(self.name)
        if verdict is None:
            return "the dockflow check of step %s" % self.name
        if verdict.error:
            return "the check of %s fails: %s" % (self.name, verdict.error)
        return "%s: %s" % (self.name, verdict.reason or "out of date")


def check_step(task, values, name):
    """The check behind StepCheck. Never raises: a failing check means "run", and
    the action then reports the failure as the step's own error."""
    step = loaded_project().steps[name]
    verdict = RUN.verdicts[name] = verdict_for(step, values)
    if not verdict.current and not verdict.error:
        _forget_outputs(step)  # this step is going to run: ask afresh what it makes
        # doit hands the task's attributes to its worker process (doit -n N), which
        # checks again with them: a Verdict's memo need not survive pickling.
        setattr(task, _SAVED, values)
    return verdict.current


_SAVED = "dockflow_saved_values"  # the Task attribute check_step leaves for run_step


def reason_of(name):
    """Why step `name` runs, as its check in this process said ("" if none ran here)."""
    verdict = RUN.verdicts.get(name)
    if verdict is None:
        step = loaded_project().steps.get(name)
        if step is not None and steps.always_runs(step.kind):
            return "a %s step runs every time it is asked" % step.kind
        return ""
    return str(verdict.error) if verdict.error else verdict.reason


def run_step(name, task):
    """doit's action: run the step; a StepFailed becomes one readable failure line.
    Its own lock first: a second run of the same step waits for the first, then
    checks again with what the first recorded, and mostly finds nothing to do."""
    from doit.exceptions import TaskFailed

    step = loaded_project().steps[name]
    project_dir = step.workflow.project.dir
    saved = task.__dict__.pop(_SAVED, None) or {}
    verdict = RUN.verdicts.pop(name, None)
    if not ui.in_main_process():
        engine.forget_all()  # a worker: others made images since it last looked
    try:
        with ui.step_lines(name), lock.step_held(project_dir, name, lock.wait_seconds(step)) as other_run:
            if other_run is not None:  # this run waited for another one doing this step
                engine.forget_all()
                verdict = verdict_for(step, other_run)
                if verdict.current:
                    ui.say(name, "up to date: another run did this step while this one waited")
                    return other_run
            # No verdict here: a worker process, or the check never ran (doit -a).
            values = _run(step, verdict or verdict_for(step, saved))
            lock.done(project_dir, name, values)
    except StepFailed as err:
        return TaskFailed(str(err))
    _forget_outputs(step)
    return values


def _run(step, verdict):
    if verdict.error:
        raise verdict.error
    if verdict.reason:
        ui.say(step.name, verdict.reason)
    module = steps.module_for(step.kind)
    # Shared while steps make things, exclusive for a step kind that removes them (prune).
    exclusive = module.exclusive(step)
    with lock.held(step.workflow.project.dir, step.name, exclusive, lock.wait_seconds(step)):
        return module.run(step, verdict) or {}


def _forget_outputs(step):
    """Images the step makes are inspected afresh by later checks of this run."""
    for kind, value in steps.module_for(step.kind).outputs(step):
        if kind == "image":
            engine.for_step(step).forget(value)
