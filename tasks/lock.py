"""One lock per project, so two runs at once do not break each other.

`.dockflow/run.lock` is held with flock(2) while a step runs: shared by steps that
make things (build, tag, push, ...: any number of them at once, as today), and
exclusive when a step kind's `exclusive(step)` says so (a real prune, not a dry run). A nightly prune
therefore waits for a developer's build to finish, and a build started during a
prune waits for it; each waits at most `lock_wait` seconds (the step's field, else
DOCKFLOW_LOCK_WAIT, else 300), then fails saying who holds the lock.

flock itself cannot say who holds it, so each holder also writes
`.dockflow/locks/<pid>-<task>.json` ({pid, task, mode, since}) while it holds the
lock. These notes only describe; the flock decides. A note whose process is gone
(a killed run) is ignored and cleaned up; the kernel has already dropped its lock.
The lock is taken per step, not per run: between two steps of a build, a prune may
run, which is safe because prune never removes an image a workflow names.

Each step also has a lock of its own, `.dockflow/steps/<step>.lock`, held exclusively
while it runs (before the project's lock is taken). Two `doit build_app` started at
once would both build, and the loser's image be left dangling: the second waits for
the first instead, then checks the step again against what the first recorded in
`.dockflow/steps/<step>.json` (doit's own state is written only when a run ends),
and finds it up to date.
"""
import contextlib
import fcntl
import json
import os
import time

from . import ui
from .errors import StepFailed
from .files import read_cache

DEFAULT_WAIT = 300.0
POLL_SECONDS = 0.2


def lock_dir(project_dir):
    return os.path.join(project_dir, ".dockflow")


def holders(project_dir):
    """The live holders' notes: [{pid, task, mode, since}], oldest first."""
    notes_dir = os.path.join(lock_dir(project_dir), "locks")
    try:
        names = os.listdir(notes_dir)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = os.path.join(notes_dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                note = json.load(handle)
        except (OSError, ValueError):
            continue
        if _alive(note.get("pid")):
            found.append(note)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)
    return sorted(found, key=lambda note: note.get("since", 0))


def tasks_of(project_dir, pid):
    """The steps process `pid` holds the lock for, from its notes (also once it is gone)."""
    prefix = "%d-" % pid
    try:
        names = os.listdir(os.path.join(lock_dir(project_dir), "locks"))
    except FileNotFoundError:
        return []
    return sorted(name[len(prefix):-len(".json")] for name in names if name.startswith(prefix) and name.endswith(".json"))


def describe(notes):
    if not notes:
        return "another run (it left no note of who it is)"
    return ", ".join("pid %s running %s (%s lock since %s)"
                     % (n.get("pid"), n.get("task"), n.get("mode"),
                        time.strftime("%H:%M:%S", time.localtime(n.get("since", 0)))) for n in notes)


def wait_seconds(step):
    value = step.get("lock_wait")
    if value is None:
        value = os.environ.get("DOCKFLOW_LOCK_WAIT", DEFAULT_WAIT)
    try:
        return max(0.0, float(value))
    except ValueError:
        raise StepFailed("DOCKFLOW_LOCK_WAIT=%r is not a number of seconds" % value) from None


@contextlib.contextmanager
def held(project_dir, task, exclusive=False, wait=DEFAULT_WAIT):
    """Hold the project's lock while the block runs; StepFailed after `wait` seconds."""
    os.makedirs(os.path.join(lock_dir(project_dir), "locks"), exist_ok=True)
    mode = "exclusive" if exclusive else "shared"
    handle = open(os.path.join(lock_dir(project_dir), "run.lock"), "a+")
    try:
        _acquire(handle, project_dir, task, exclusive, mode, wait)
        note_path = os.path.join(lock_dir(project_dir), "locks", "%d-%s.json" % (os.getpid(), task))
        with open(note_path, "w", encoding="utf-8") as note:
            json.dump({"pid": os.getpid(), "task": task, "mode": mode, "since": time.time()}, note)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(note_path)
    finally:
        handle.close()  # closing the file drops the flock


def _acquire(handle, project_dir, task, exclusive, mode, wait):
    _take(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, task, wait,
          waiting="the project's %s lock" % mode, free="the project's lock is free", whose="its lock",
          holder=lambda: describe(holders(project_dir)))


@contextlib.contextmanager
def step_held(project_dir, task, wait=DEFAULT_WAIT):
    """Hold step `task`'s own lock while the block runs. Yields None when it was free,
    else (this run waited for another one running the step) the values that run
    recorded with done(), or {}: the step may be up to date now. StepFailed after
    `wait` seconds."""
    folder = os.path.join(lock_dir(project_dir), "steps")
    os.makedirs(folder, exist_ok=True)
    handle = open(os.path.join(folder, task + ".lock"), "a+")
    try:
        waited = _take(handle, fcntl.LOCK_EX, task, wait, waiting="another run of this step to end",
                       free="the other run of this step has ended", whose="the lock of step %s" % task,
                       holder=lambda: describe([n for n in holders(project_dir) if n.get("task") == task]))
        yield read_cache(_values_path(project_dir, task)) if waited else None
    finally:
        handle.close()  # closing the file drops the flock


def done(project_dir, task, values):
    """Record what step `task` made, for a run waiting on its lock (see step_held).
    Not fsynced (files.write_cache is): after a crash the waiting run only does the
    step itself, and every step that works would pay for the fsync."""
    path = _values_path(project_dir, task)
    temp = "%s.%d" % (path, os.getpid())
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(values, handle)
        os.replace(temp, path)  # a waiting run reads all of it or the previous one
    except (OSError, TypeError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(temp)  # the waiting run then does the step itself, as it would have


def _values_path(project_dir, task):
    return os.path.join(lock_dir(project_dir), "steps", task + ".json")


def _take(handle, operation, task, wait, waiting, free, whose, holder):
    """flock `handle` (`operation`: LOCK_SH or LOCK_EX), polling so that the wait is
    bounded and said once; whether this run had to wait. `holder()` describes who holds it."""
    deadline, said = time.monotonic() + wait, False
    while True:
        try:
            fcntl.flock(handle.fileno(), operation | fcntl.LOCK_NB)
            if said:
                ui.say(task, "%s; going on" % free)
            return said
        except BlockingIOError:
            pass
        if time.monotonic() >= deadline:
            raise StepFailed(
                "%s: not run: another run of this project holds %s (%s); waited %gs. "
                "Run it again when that ends, or raise lock_wait / DOCKFLOW_LOCK_WAIT"
                % (task, whose, holder(), wait))
        if not said:
            ui.say(task, "waiting up to %gs for %s: held by %s" % (wait, waiting, holder()))
            said = True
        time.sleep(POLL_SECONDS)


def _alive(pid):
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
