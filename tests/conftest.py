"""Shared fixtures. Tests marked `engine` run against a real Docker engine, which
the test run starts itself where none answers (and then stops by its pid)."""
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import uuid

import pytest

from tasks import runstate
from tests.support import dockerd
from tests.support.registry import registries, registry_image  # noqa: F401 (fixtures)
from tests.support.hostb import hostb, hosts  # noqa: F401 (fixtures)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSYBOX = "/bin/busybox"


@pytest.fixture(autouse=True)
def fresh_run_state():
    """Each test starts as a new process would: no project, engines, tunnels or tar
    hashes left from another test (tasks/runstate.py)."""
    runstate.reset()
    yield
    for daemon in runstate.RUN.engines.values():  # their kept-alive sockets: a test's Engine is not a process's
        daemon.close()
    runstate.reset()


@pytest.fixture(scope="session")
def docker_host(tmp_path_factory):
    """The engine under test: DOCKER_HOST or the local socket, started if silent."""
    host = os.environ.get("DOCKER_HOST") or "unix://" + dockerd.DEFAULT_SOCKET
    if dockerd.answers(host):
        yield host
        return
    if not host.startswith("unix://") or os.geteuid() != 0:
        pytest.fail("no Docker engine answers at %s and this run cannot start one "
                    "(needs root and dockerd: python3 -m tasks.bootstrap --tests)" % host)
    started = dockerd.start_dockerd(str(tmp_path_factory.mktemp("dockerd")), host[len("unix://"):])
    if started is None:
        pytest.fail("no Docker engine answers at %s and dockerd is not installed "
                    "(python3 -m tasks.bootstrap --tests installs it)" % host)
    try:
        yield host
    finally:
        started.stop()


@pytest.fixture(scope="session")
def docker_cli(docker_host):
    """Run the docker CLI against the engine under test; returns stdout."""
    def run(*args, check=True, input=None):
        done = subprocess.run(["docker", "-H", docker_host, *args], capture_output=True,
                              text=input is None or isinstance(input, str), input=input)
        if check and done.returncode != 0:
            raise AssertionError("docker %s failed: %s" % (" ".join(args), done.stderr))
        return done.stdout if check else done
    return run


@pytest.fixture(scope="session")
def busybox_image(docker_cli, tmp_path_factory):
    """A 2 MB base image made from /bin/busybox, no registry (docker import of a rootfs tar)."""
    ref = "dockflow-test/busybox:1"
    if not docker_cli("images", "-q", ref).strip():
        tar_path = tmp_path_factory.mktemp("rootfs") / "rootfs.tar"
        with tarfile.open(tar_path, "w") as archive:
            archive.add(BUSYBOX, arcname="bin/busybox")
            for applet in ("sh", "ls", "cat", "echo", "tar", "mkdir", "rm", "dd", "sleep", "touch", "true"):
                link = tarfile.TarInfo("bin/" + applet)
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                archive.addfile(link)
        docker_cli("import", "-c", 'CMD ["sh"]', str(tar_path), ref)
    return ref


@pytest.fixture
def names(docker_cli):
    """A unique image-name prefix for one test; its images are removed afterwards."""
    prefix = "t%s" % uuid.uuid4().hex[:10]
    yield prefix
    refs = [line for line in docker_cli("images", "--format", "{{.Repository}}:{{.Tag}}").split()
            if line.startswith(prefix) or ("/" + prefix) in line]
    if refs:
        docker_cli("rmi", "-f", *refs, check=False)


@pytest.fixture
def app(names, busybox_image, docker_cli, tmp_path):
    """`NAMES/app:1`, a small image on the busybox base (tests/support/shipping.build_app)."""
    from tests.support.shipping import build_app

    ref = names + "/app:1"
    build_app(docker_cli, busybox_image, ref, folder=str(tmp_path / "ctx"))
    return ref


class Project:
    """A throwaway project: a dodo.py of two lines, workflows/, and `doit` to run it."""

    def __init__(self, root, docker_host):
        self.root = root
        self.docker_host = docker_host
        self.started = []  # Popen of each start()
        self.write("dodo.py", "from tasks.dodo import DOIT_CONFIG, task_workflows  # noqa: F401\n")

    def path(self, relpath):
        return os.path.join(self.root, relpath)

    def write(self, relpath, text, mode="w"):
        path = self.path(relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, mode) as handle:
            handle.write(textwrap.dedent(text) if isinstance(text, str) else text)
        return path

    def workflow(self, text, name="flow.yaml"):
        return self.write("workflows/" + name, text)

    def doit(self, *args, env=None):
        """Run `python -m doit ARGS` in the project; a CompletedProcess with .output."""
        done = subprocess.run(self._doit_argv(args), cwd=self.root, env=self._doit_env(env),
                              capture_output=True, text=True)
        done.output = done.stdout + done.stderr
        return done

    def start(self, *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=None, **popen):
        """Start `python -m doit ARGS` in the project: a Popen in text mode (by default its
        stdout a pipe, with stderr in it); `popen`: more Popen arguments. Ctrl-C reaches it
        as at a terminal even where the test run itself ignores SIGINT (a shell's `cmd &`
        starts it so); stop_started() ends what is still running when the test ends."""
        process = subprocess.Popen(self._doit_argv(args), cwd=self.root, env=self._doit_env(env),
                                   stdout=stdout, stderr=stderr, text=True, preexec_fn=_default_sigint, **popen)
        self.started.append(process)
        return process

    def stop_started(self):
        """Kill, by pid, each run start() began that a failed test left running."""
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()

    def _doit_argv(self, args):
        return [sys.executable, "-m", "doit", *args]

    def _doit_env(self, env):
        return {**os.environ, "PYTHONPATH": REPO, "DOCKER_HOST": self.docker_host, "PYTHONDONTWRITEBYTECODE": "1",
                **(env or {})}


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def project(tmp_path, docker_host):
    made = Project(str(tmp_path), docker_host)
    yield made
    made.stop_started()


@pytest.fixture
def offline_project(tmp_path):
    """A project for tests that must not touch any engine (definition errors)."""
    return Project(str(tmp_path), "unix:///nonexistent/docker.sock")
