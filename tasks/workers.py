"""Steps run at once: doit's worker processes (doit -n N -P process), by default
where a run has independent steps.

Processes, not threads: a signal reaches each worker's main thread, which runs its
step, so Ctrl-C or a closed output pipe unwinds every running step as it unwinds
one run alone (the build's RUN container removed, temp files gone). doit -P thread
cannot: only the main thread gets the signal, and a worker thread blocked reading a
silent build's stream is killed at exit with its RUN container left running.
doit -P thread also swaps the global sys.stdout under its workers.

What makes the workers safe here:
- They are forks (the default start method on Linux up to Python 3.13): the steps
  loaded at import are theirs too. Where the default is spawn or forkserver, doit
  would hand them nothing to run, so runs stay one step at a time.
- A fork does not share doit's kept-alive socket to the engine (nor the SDK's
  pooled ones): doit's own process goes on checking steps over it. engine.drop_all()
  in the child; the child then opens its own.
- Ctrl-C in doit's process reaches the workers too (SIGINT forwarded: `kill -INT`
  of doit alone would reach none), and doit waits for them to unwind their steps
  before it ends. SIGTERM (doit ends its workers with it when a run stops) unwinds
  a step the same way.
- A worker killed by a signal (the OOM killer, kill -9) never reports back, and doit
  would wait for it forever: a watcher thread in doit's process notices, names the
  step it ran, and stops the run as Ctrl-C would, with status 1. (Workers unwind on
  SIGINT and SIGTERM, and then exit normally: a negative exit code is such a kill.)
- doit itself runs the up-to-date checks and keeps its state in its own process.
"""
import contextlib
import os
import signal
import threading
import time

from . import engine, ui

STOP_WAIT_SECONDS = 30.0   # how long doit waits for its workers to unwind after Ctrl-C
WATCH_SECONDS = 0.5        # how often the watcher looks at the workers
_watcher: list[threading.Thread] = []              # the watcher thread, once started
_stopping = threading.Event()  # the run is stopping: workers ending now are no surprise
_lost = threading.Event()      # a worker was killed by a signal (the watcher stops the run)


def run_config(deps, default_tasks, argv):
    """DOIT_CONFIG's num_process and par_type for this run: worker processes when the
    steps it names (argv; default_tasks if it names none) and the steps they need
    have two that can run at once, and workers can be forks. Else {}: one step at a
    time in doit's own process, as doit does by default (nothing to gain, and a
    single chain keeps its progress bars). `doit -n 0` asks for that too."""
    from .workflow import DOIT_COMMANDS

    if (len(argv) > 1 and argv[1] in DOIT_COMMANDS - {"run"}) or not _forks():
        return {}  # another command than run (list, info...): no step runs
    named = [arg for arg in argv[1:] if arg in deps] or [name for name in default_tasks if name in deps]
    if one_at_a_time(needed(named, deps), deps):
        return {}
    return {"num_process": min(4, max(2, os.cpu_count() or 2)), "par_type": "process"}


def _forks():
    import multiprocessing

    method = multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
    return method == "fork"


def needed(names, deps):
    """`names` and every step they need, transitively (`deps`: name -> names it needs)."""
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(deps.get(name, ()))
    return found


def one_at_a_time(names, deps):
    """True when the steps `names` (with `deps`: name -> names it needs) can only run
    one after another: their order is a single chain (Kahn's algorithm never has two
    steps ready at once)."""
    waiting = {name: len([d for d in deps.get(name, ()) if d in names]) for name in names}
    needed_by = {}
    for name in names:
        for dep in deps.get(name, ()):
            if dep in names:
                needed_by.setdefault(dep, []).append(name)
    ready = [name for name, count in waiting.items() if count == 0]
    while ready:
        if len(ready) > 1:
            return False
        done = ready.pop()
        for name in needed_by.get(done, ()):
            waiting[name] -= 1
            if waiting[name] == 0:
                ready.append(name)
    return True


def _in_worker_after_fork():
    engine.drop_all()
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _worker_stopped)


def _worker_stopped(signum, frame):
    """Ctrl-C (the terminal's, or doit's forwarded) or doit ending its workers: the
    running step unwinds once; a second signal does not cut its clean-up short."""
    ui.unwinding()
    raise ui.RunStopped(130)


os.register_at_fork(after_in_child=_in_worker_after_fork)


def stop_workers():
    """Ctrl-C in doit's own process: SIGINT to each worker, then wait for them to
    unwind their steps."""
    _stopping.set()
    _wait_for_workers(signal.SIGINT)


def _wait_for_workers(signum=None):
    """Wait (at most STOP_WAIT_SECONDS) for doit's live workers to end, after sending
    them `signum` if given."""
    import multiprocessing

    children = multiprocessing.active_children()
    for child in children if signum else ():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))


def watch(project_dir):
    """In doit's own process, once its workers run: start the watcher (once)."""
    import multiprocessing

    if _watcher or not ui.in_main_process():
        return
    children = multiprocessing.active_children()
    if children:
        _watcher.append(threading.Thread(target=_watch, args=(children, project_dir), daemon=True,
                                         name="dockflow-workers"))
        _watcher[0].start()


def run_over():
    """doit's run has ended (its reporter's complete_run): workers that end now are no
    surprise. When it stopped early (a closed pipe, a lost worker), doit has sent its
    workers SIGTERM: they are waited for while they unwind their steps."""
    _stopping.set()
    if ui.in_main_process():
        _wait_for_workers()


def _watch(children, project_dir):
    while children and not _stopping.wait(WATCH_SECONDS):
        for child in list(children):
            code = child.exitcode
            if code is None:
                continue
            children.remove(child)
            if code < 0 and not _stopping.is_set():
                _worker_lost(child, -code, project_dir)
                return


def _worker_lost(child, signum, project_dir):
    from . import lock

    try:
        signame = signal.Signals(signum).name
    except ValueError:
        signame = "signal %d" % signum
    steps = lock.tasks_of(project_dir, child.pid) or ["a step"]
    for step_name in steps:
        ui.failed(step_name, "its worker process (pid %d) was killed by %s; the run stops here (the steps "
                             "done before are recorded; run it again to go on)" % (child.pid, signame))
    # doit waits in its main thread for that worker's answer: a SIGINT there runs its
    # Ctrl-C handler (tasks/dodo.py), which stops the other workers the same way and,
    # as a worker was lost, ends the run with status 1 and no Ctrl-C message.
    _lost.set()
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def worker_lost():
    """A worker was killed by a signal: the SIGINT doit's main thread gets is ours."""
    return _lost.is_set()
