"""Steps that fill several engines at once (load, pull): `docker_hosts: [...]`.

Each target is worked on in a thread of its own, at most `parallel:` at a time: the
work waits on links and remote engines, not on this machine's processors. A target
that fails does not stop the others; the step then fails naming every target that
failed and why, and a rerun finds the others up to date and touches only those.
A step with one target (its docker_host) goes the same way without a thread.
"""
from . import engine
from .errors import StepFailed

DEFAULT_PARALLEL = 4


def targets(step):
    """The addresses of the engines the step fills, in its order."""
    hosts = step.get("docker_hosts")
    return list(hosts) if hosts else [engine.host_for(step)]


def connect_ahead(steps):
    """Start opening the ssh tunnels to the ssh:// engines of `steps` (the steps a run is
    about to check), each in a thread of its own (ssh.open_ahead): the handshakes then
    overlap the run's first steps. A run that saves an image and loads it into three
    hosts spent 0.4 to 0.7 s on them after the save; now beside it. A tunnel that
    cannot be opened is tried again by the step that asks for it, which reports why.
    A run whose earlier step fails has connected for nothing: its tunnels close at exit."""
    from . import ssh

    for step in steps:
        try:
            for host in targets(step):
                if host.startswith("ssh://"):
                    ssh.open_ahead(host, step.get("ssh"), step.workflow.base_dir,
                                   step.get("remote_socket", engine.DEFAULT_REMOTE_SOCKET))
        except StepFailed:
            # A setting it cannot read (an engine, `ssh:` naming an unset variable): the
            # step's own check says so; raised here, in doit's reporter, it ended every step.
            continue


def problems(step):
    """docker_host beside docker_hosts, and a target listed twice (its two loads would
    race on one engine)."""
    if "docker_hosts" not in step.spec:
        return []
    found = []
    if "docker_host" in step.spec:
        found.append("%s: docker_host and docker_hosts are both set: list every target in docker_hosts"
                     % step.where("docker_hosts"))
    seen = set()
    for index, host in enumerate(step.get("docker_hosts")):
        if host in seen:
            found.append("%s: %s is listed twice" % (step.where("docker_hosts", index), host))
        seen.add(host)
    return found


def each(step, hosts, work):
    """{host: (result, None) or (None, StepFailed)} of work(host, stopping) for each host,
    `parallel` of them at once. `stopping` is a threading.Event set on Ctrl-C: a long
    work checks it between blocks and stops, so that the run can end."""
    import threading

    stopping = threading.Event()
    if len(hosts) <= 1:
        return {host: _guarded(work, host, stopping) for host in hosts}
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=min(len(hosts), int(step.get("parallel", DEFAULT_PARALLEL))),
                              thread_name_prefix="dockflow-" + step.name)
    try:
        futures = {host: pool.submit(_guarded, work, host, stopping) for host in hosts}
        return {host: futures[host].result() for host in hosts}
    except BaseException:
        stopping.set()  # Ctrl-C, or the reader of our output gone: the others stop at their next block
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class Stopped(StepFailed):
    """The run was interrupted while this target was worked on."""


def checked(blocks, stopping):
    """The blocks, until `stopping` is set."""
    for block in blocks:
        if stopping.is_set():
            raise Stopped("stopped: the run was interrupted")
        yield block


def _guarded(work, host, stopping):
    try:
        return work(host, stopping), None
    except StepFailed as err:
        return None, err
    except OSError as err:  # a file or socket of ours, failing under this target's work
        return None, StepFailed("%s: %s" % (host, err.strerror or err))


def failure(step, errors, hosts):
    """The StepFailed of a step whose targets in `errors` ({host: StepFailed}) failed, out
    of all its `hosts`: alone, its own error; else each failed target and why, one a line."""
    if len(hosts) == 1:
        return errors[hosts[0]]
    return StepFailed("%s: %d of %d targets failed (the others are done; a rerun retries only these):\n%s" % (
        step.name, len(errors), len(hosts), "\n".join("    %s: %s" % (host, _without_step(step, errors[host]))
                                                       for host in hosts if host in errors)))


def _without_step(step, error):
    """An error's text without the step name it starts with (the failure line names it once)."""
    text = str(error)
    return text[len(step.name) + 2:] if text.startswith(step.name + ": ") else text
