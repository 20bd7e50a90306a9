"""Start a Docker engine for the test run when none answers, and stop exactly it.

A second dockerd on the same socket fails, so a daemon that answers is
reused and left alone; one started here is stopped by its own pid at the end.
"""
import os
import shutil
import signal
import subprocess
import time

from tasks import engine

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


def start_dockerd(state_dir, socket_path=DEFAULT_SOCKET, netns=None, extra_args=()):
    """Start dockerd with its own data and exec roots; None if `dockerd` is missing."""
    if not shutil.which("dockerd"):
        return None
    os.makedirs(state_dir, exist_ok=True)
    log_path = os.path.join(state_dir, "dockerd.log")
    command = ["dockerd", "--data-root", os.path.join(state_dir, "data"),
               "--exec-root", os.path.join(state_dir, "exec"),
               "--pidfile", os.path.join(state_dir, "dockerd.pid"),
               "-H", "unix://" + socket_path, *extra_args]
    if netns:
        command = ["nsenter", "--net=/var/run/netns/" + netns] + command
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    host = "unix://" + socket_path
    try:
        wait_until(lambda: answers(host) or process.poll() is not None, 60, "dockerd at " + host)
    except RuntimeError:
        process.kill()
        raise
    if process.poll() is not None:
        with open(log_path, errors="replace") as log:
            tail = log.read()[-2000:]
        raise RuntimeError("dockerd exited with %s:\n%s" % (process.returncode, tail))
    return StartedDaemon(host, process, log_path)
