"""Start a Docker engine for the test run when none answers, and stop exactly it.

A second dockerd on the same socket fails, so a daemon that answers is
reused and left alone; one started here is stopped by its own pid at the end.
"""
import os
import shutil
import signal
import subprocess
import time

from tasks import dockerd_launch, engine

DEFAULT_SOCKET = "/var/run/docker.sock"


def answers(host):
    """True when the engine at `host` answers /_ping."""
    return engine.Engine(host).ping()


def wait_until(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError("timed out after %ds waiting for %s" % (seconds, what))


class StartedDaemon:
    """A dockerd this test run started; stop() ends it (and only it)."""

    def __init__(self, host, process, log_path):
        self.host = host
        self.process = process
        self.log_path = log_path

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        unmount_under(os.path.dirname(self.log_path))


def unmount_under(folder):
    """Unmount what is still mounted below `folder`, deepest first. dockerd 20.10 leaves
    its data-root bind-mounted on itself after it stops (a killed one also its
    containers' layers and network namespaces): pytest then cannot remove the old
    temp folder, and says so in a warning that fails a later run."""
    prefix = os.path.join(os.path.realpath(folder), "")
    with open("/proc/self/mountinfo") as handle:
        mounts = [line.split()[4] for line in handle]
    for mount in reversed(mounts):
        if mount.startswith(prefix):
            subprocess.run(["umount", mount], capture_output=True)


def start_dockerd(state_dir, socket_path=DEFAULT_SOCKET, netns=None, extra_args=()):
    """Start dockerd with its own data and exec roots; None if `dockerd` is missing."""
    if not shutil.which("dockerd"):
        return None
    os.makedirs(state_dir, exist_ok=True)
    host = "unix://" + socket_path
    argv = ["--data-root", os.path.join(state_dir, "data"), "--exec-root", os.path.join(state_dir, "exec"),
            "--pidfile", os.path.join(state_dir, "dockerd.pid"), "-H", host, *extra_args]
    log_path = os.path.join(state_dir, "dockerd.log")
    return StartedDaemon(host, dockerd_launch.start(argv, log_path, lambda: answers(host), netns=netns), log_path)
