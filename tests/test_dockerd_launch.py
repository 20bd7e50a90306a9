"""A dockerd that was killed leaves its containers plugged into docker0; the next one
must still publish ports (tasks/dockerd_launch.py). Played in a network namespace of its own,
so the engine of the test run and its docker0 are never touched."""
import os
import signal
import subprocess
import sys
import tarfile

import pytest

from tasks import dockerd_launch
from tests.support import dockerd
from tests.support.registry import free_port

# Run inside the namespace: the HTTP status line of a GET to 127.0.0.1:PORT, or the error.
FETCH = """
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        print(conn.recv(100).split(b"\\r\\n")[0].decode())
except OSError as error:
    print(type(error).__name__)
"""


class Namespace:
    """A network namespace with only `lo`, and the engines started in it."""

    def __init__(self, root):
        self.root = root
        self.name = "dfst%d" % (os.getpid() % 2000)
        self.started = []

    def __enter__(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)  # a killed run's leftover
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(dockerd_launch.in_netns(self.name, ["ip", "link", "set", "lo", "up"]), check=True)
        return self

    def engine(self, label):
        """A dockerd with roots of its own under root/label; returns its docker CLI."""
        started = dockerd.start_dockerd(os.path.join(self.root, label), os.path.join(self.root, label + ".sock"),
                                        netns=self.name)
        self.started.append(started)

        def cli(*args):
            return subprocess.run(["docker", "-H", started.host, *args], check=True, capture_output=True,
                                  text=True).stdout.strip()
        return started, cli

    def fetch(self, port):
        return subprocess.run(dockerd_launch.in_netns(self.name, [sys.executable, "-c", FETCH, str(port)]),
                              capture_output=True, text=True, check=True).stdout.strip()

    def __exit__(self, *exc):
        for started in self.started:
            started.stop()
        dockerd.unmount_under(self.root)  # the killed engine's layers and container namespaces
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def serve_http(cli, rootfs_tar):
    """A busybox httpd container publishing a free port on 127.0.0.1: (port, container pid)."""
    cli("import", "-c", 'CMD ["sh"]', rootfs_tar, "dockflow-test/httpd:1")
    port = free_port()
    name = cli("run", "-d", "-p", "127.0.0.1:%d:80" % port, "dockflow-test/httpd:1", "busybox", "httpd", "-f", "-p", "80",
               "-h", "/")
    return port, int(cli("inspect", "-f", "{{.State.Pid}}", name))


def kill_engine(started, container_pid):
    """SIGKILL the engine, its containerd and shims and the container, as the end of a
    machine's session does: nothing gets to clean up."""
    exec_root = os.path.join(os.path.dirname(started.log_path), "exec")
    pids = [container_pid, started.process.pid]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                if exec_root.encode() in handle.read():
                    pids.append(int(pid))
        except OSError:
            continue
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    started.process.wait()


@pytest.fixture
def rootfs_tar(tmp_path):
    path = str(tmp_path / "httpd.tar")
    with tarfile.open(path, "w") as archive:
        archive.add("/bin/busybox", arcname="bin/busybox")
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        archive.addfile(link)
    return path


@pytest.mark.engine
def test_a_published_port_works_after_a_killed_engine(tmp_path_factory, rootfs_tar):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, dockerd)")
    # a short root: containerd's socket path under the exec-root must stay under 108 bytes
    with Namespace(str(tmp_path_factory.mktemp("ns"))) as netns:
        first, first_cli = netns.engine("first")
        port, container_pid = serve_http(first_cli, rootfs_tar)
        assert netns.fetch(port).startswith("HTTP/1.")
        kill_engine(first, container_pid)
        netns.started.remove(first)
        assert not dockerd_launch.dockerd_runs_in(netns.name)

        second, second_cli = netns.engine("second")  # new roots, as the next session's engine has
        port, _ = serve_http(second_cli, rootfs_tar)
        assert netns.fetch(port).startswith("HTTP/1."), "the port reaches the killed engine's container"
        assert dockerd_launch.dockerd_runs_in(netns.name)
        assert not dockerd_launch.drop_orphaned_bridge(netns.name), "a bridge with a live dockerd is left alone"


def test_no_dockerd_runs_in_a_fresh_namespace(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    with Namespace(str(tmp_path)) as netns:
        assert not dockerd_launch.dockerd_runs_in(netns.name)
