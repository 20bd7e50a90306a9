"""A real distribution registry for the tests, made offline as the lab makes it.

`registry_image` builds `dockflow-test/registry:2` from the lab's own
`registry_image` step (workflows/lab.yaml: Debian's docker-registry binary, its
libc and loader, workflows/lab/registry/config.yml) with that step's packing code,
so the tests run the image the lab runs. `registries` starts registry containers
on free ports (never 5000: a user's registry is never touched) and removes them,
and their volumes, when the test ends.
"""
import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from tasks import registry_api, workflow
from tasks.labels import INPUTS_LABEL
from tasks.project import Project
from tasks.steps import import_rootfs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(REPO, "workflows", "lab.yaml")
IMAGE = "dockflow-test/registry:2"


def free_port():
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lab_registry_step(cache_dir):
    flow = workflow.load_file(LAB, cache_dir)
    flow.project = Project(REPO, cache_dir)  # the lab's project, its caches in the test's folder
    return flow.steps["registry_image"]


@pytest.fixture(scope="session")
def registry_image(docker_cli, tmp_path_factory):
    """`dockflow-test/registry:2`, rebuilt when the lab's registry_image step changes."""
    return make_registry_image(docker_cli, tmp_path_factory.mktemp("registry-image"))


def make_registry_image(docker_cli, scratch):
    """IMAGE, made in the engine `docker_cli` runs against unless it is there already
    (scratch: a folder for the rootfs tar); also for the benches."""
    step = lab_registry_step(os.path.join(str(scratch), "cache"))
    digest = import_rootfs.input_digest(step, {})[0]
    found = docker_cli("image", "inspect", "-f", '{{index .Config.Labels "%s"}}' % INPUTS_LABEL, IMAGE,
                       check=False)
    if found.returncode == 0 and found.stdout.strip() == digest:
        return IMAGE
    tar_path = import_rootfs._pack(step, os.path.join(str(scratch), "rootfs.tar"))
    changes = []
    for change in step.get("changes") + ['LABEL %s="%s"' % (INPUTS_LABEL, digest)]:
        changes += ["-c", change]
    docker_cli("import", *changes, tar_path, IMAGE)
    return IMAGE


def make_htpasswd(path, user, password, cost=12):
    """An htpasswd file with a bcrypt hash (the only kind the registry accepts). The
    registry checks it on every request: a test of many requests takes a lower `cost`."""
    try:
        import bcrypt

        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()
    except ImportError:
        try:
            import crypt  # libxcrypt does bcrypt; the module is gone in Python 3.13

            hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2 ** cost))
        except (ImportError, AttributeError):
            hashed = None
        if not hashed or not hashed.startswith("$2"):
            if not shutil.which("htpasswd"):
                pytest.skip("no bcrypt: pip install bcrypt, or apt-get install apache2-utils")
            line = subprocess.run(["htpasswd", "-Bbn", "-C", str(cost), user, password], capture_output=True,
                                  text=True, check=True).stdout.strip()
            hashed = line.split(":", 1)[1]
    with open(path, "w") as handle:
        handle.write("%s:%s\n" % (user, hashed))
    return path


def wait_answers(address, tls=False, accept=(200, 401), seconds=60):
    deadline = time.monotonic() + seconds
    while registry_api.v2_status(address, tls) not in accept:
        if time.monotonic() > deadline:
            raise AssertionError("the registry at %s did not answer /v2/ within %ss" % (address, seconds))
        time.sleep(0.1)


class RunningRegistry:
    """A registry container started by a test (docker run, as in Exercise 3.10)."""

    def __init__(self, docker_cli, name, volume, port):
        self.docker_cli = docker_cli
        self.name = name
        self.volume = volume
        self.port = port
        self.address = "127.0.0.1:%d" % port

    def restart(self):
        self.docker_cli("restart", self.name)
        wait_answers(self.address)


class Registries:
    """Starts registry containers for one test and removes them and their volumes after it."""

    def __init__(self, docker_cli, image):
        self.docker_cli = docker_cli
        self.image = image
        self.prefix = "dockflow-test-reg-%s" % uuid.uuid4().hex[:8]
        self.containers, self.volumes = [], []

    def start(self, htpasswd=None, also_on=()):
        """A registry on 127.0.0.1:PORT, and on each address of `also_on` (e.g. this side of
        a test host's veth, for that host's engine) at the same port."""
        name = "%s-%d" % (self.prefix, len(self.containers))
        volume = name + "-data"
        port = free_port()
        args = ["run", "-d", "--name", name, "--restart=always", "-v", "%s:/var/lib/registry" % volume]
        for address in ("127.0.0.1",) + tuple(also_on):
            args += ["-p", "%s:%d:5000" % (address, port)]
        if htpasswd:
            args += ["-v", "%s:/auth/htpasswd:ro" % htpasswd, "-e", "REGISTRY_AUTH=htpasswd",
                     "-e", "REGISTRY_AUTH_HTPASSWD_REALM=Registry Realm",
                     "-e", "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd"]
        self.containers.append(name)
        self.volumes.append(volume)
        self.docker_cli(*args, self.image)
        running = RunningRegistry(self.docker_cli, name, volume, port)
        wait_answers(running.address)
        return running

    def track(self, container, volume):
        """Remove these too at the end (containers a step under test made)."""
        self.containers.append(container)
        self.volumes.append(volume)

    def cleanup(self):
        if self.containers:
            self.docker_cli("rm", "-f", *self.containers, check=False)
        if self.volumes:
            self.docker_cli("volume", "rm", *self.volumes, check=False)


@pytest.fixture
def registries(docker_cli, registry_image):
    made = Registries(docker_cli, registry_image)
    yield made
    made.cleanup()
