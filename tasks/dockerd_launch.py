"""Starting a Docker daemon on this machine: for the lab (tasks/bootstrap.py) and for
the test run (tests/support/dockerd.py), in this network namespace or a test host's.

A dockerd that was killed (a machine's session ends, `kill -9`) leaves its containers'
network namespaces mounted under its exec-root, and their veths still plugged into
`docker0`. The next dockerd hands out the same addresses (172.17.0.2, ...), so the
bridge has two holders of one address: a published port then reaches the dead
container, and connections are refused or reset. Seen on a machine restored after a
session ended: every registry test failed that way. So before a dockerd starts where
none runs, the old `docker0` goes (the new daemon makes it again, empty).
"""
import os
import subprocess
import time

NETNS_DIR = "/var/run/netns"


def _namespace_inode(netns):
    """The inode of a network namespace: a named one (`ip netns add`) or this process's."""
    return os.stat(os.path.join(NETNS_DIR, netns) if netns else "/proc/self/ns/net").st_ino


def dockerd_runs_in(netns=None):
    """True when a dockerd process lives in that network namespace (None: this one)."""
    wanted = _namespace_inode(netns)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/comm" % pid) as handle:
                if handle.read().strip() != "dockerd":
                    continue
            if os.stat("/proc/%s/ns/net" % pid).st_ino == wanted:
                return True
        except OSError:  # the process ended while we looked
            continue
    return False


def in_netns(netns, argv):
    """argv run inside a named network namespace (nsenter --net: `ip netns exec`
    remounts /sys, which dockerd does not survive), or as is for None."""
    return ["nsenter", "--net=" + os.path.join(NETNS_DIR, netns)] + list(argv) if netns else list(argv)


def drop_orphaned_bridge(netns=None):
    """Delete `docker0` when no dockerd runs in the namespace to own it (see above).
    True when there was one to delete."""
    if dockerd_runs_in(netns):
        return False
    done = subprocess.run(in_netns(netns, ["ip", "link", "delete", "docker0"]), capture_output=True)
    return done.returncode == 0


def start(argv, log_path, answers, netns=None, seconds=60):
    """Start `dockerd` with argv (after dropping an orphaned bridge) in its own session,
    its output appended to log_path; wait until `answers()` is true. Returns the
    process; raises RuntimeError with the log's tail when it exits or stays silent."""
    drop_orphaned_bridge(netns)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(in_netns(netns, ["dockerd", *argv]), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + seconds
    while process.poll() is None and not answers():
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            break
        time.sleep(0.2)
    if process.poll() is None:
        return process
    with open(log_path, errors="replace") as log:
        tail = log.read()[-2000:]
    raise RuntimeError("dockerd did not start (exit %s); the end of %s:\n%s" % (process.returncode, log_path, tail))
