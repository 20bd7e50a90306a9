"""The lab itself, end to end on a real engine: `doit push` and `doit load` (into
host B) from an engine without the lab's images run every step in order, and a
second run changes nothing. The lab names its images itself (basic-base, basic-app, lab/busybox:1.35,
registry:2); the test removes them first and gives the registry its own name and
port, so a user's lab registry on 5000 is never touched."""
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from tests.support.registry import free_port

pytestmark = [pytest.mark.engine, pytest.mark.hostb]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_IMAGES = ["basic-app", "basic-app-test", "basic-base", "lab/busybox:1.35"]
ORDER = ["base_rootfs", "build_base", "build_app", "tag", "save", "transfer", "load",
         "registry_image", "registry_up", "push"]


@pytest.fixture
def lab(tmp_path, docker_cli):
    project = tmp_path / "lab"
    shutil.copytree(os.path.join(REPO, "workflows"), project / "workflows")
    shutil.copy(os.path.join(REPO, "dodo.py"), project)
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@invalid", "commit", "-qm", "lab"]):
        subprocess.run(command, cwd=project, check=True)
    user = "t%s" % uuid.uuid4().hex[:8]
    registry = "registry-%s" % user
    docker_cli("rmi", "-f", *LAB_IMAGES, check=False)
    # registry:2 goes too, unless a running registry of yours uses it: then the
    # registry_image step must be up to date, not run.
    registry_image_gone = docker_cli("rmi", "registry:2", check=False).returncode == 0 \
        or not docker_cli("images", "-q", "registry:2").strip()
    yield project, user, registry, registry_image_gone
    docker_cli("rm", "-f", registry, check=False)
    docker_cli("volume", "rm", registry + "-data", check=False)
    tags = [t for t in docker_cli("images", "--format", "{{.Repository}}:{{.Tag}}").split() if user in t]
    docker_cli("rmi", "-f", *tags, check=False)


def run_doit(project, docker_host, *args):
    env = dict(os.environ, PYTHONPATH=REPO, DOCKER_HOST=docker_host)
    done = subprocess.run([sys.executable, "-m", "doit", *args], cwd=project, env=env,
                          capture_output=True, text=True)
    done.output = done.stdout + done.stderr
    return done


def test_push_and_load_from_an_engine_without_the_lab(lab, docker_host, docker_cli, hostb):
    project, user, registry, registry_image_gone = lab
    port = free_port()
    settings = ["user=" + user, "registry_name=" + registry, "registry_port=%d" % port,
                "target_host=" + hostb.docker_host]
    first = run_doit(project, docker_host, "push", "load", *settings)
    assert first.returncode == 0, first.output
    started = [line[3:].strip() for line in first.output.splitlines() if line.startswith(".  ")]
    expected = ORDER if registry_image_gone else [name for name in ORDER if name != "registry_image"]
    assert sorted(started) == sorted(expected), first.output
    assert started.index("base_rootfs") < started.index("build_base") < started.index("build_app") \
        < started.index("tag") < started.index("save") < started.index("transfer") < started.index("load")
    assert started.index("registry_up") < started.index("push")
    assert (project / "build" / ("basic-app-1.0.0.tar")).exists()
    assert (project / "build" / "shipped" / "basic-app-1.0.0.tar").exists()
    loaded = hostb.docker("image", "inspect", "-f", "{{.Id}}", "%s/basic-app:1.0.0" % user)
    assert loaded.strip() == docker_cli("image", "inspect", "-f", "{{.Id}}", "basic-app").strip()

    second = run_doit(project, docker_host, "push", "load", *settings)
    assert second.returncode == 0, second.output
    assert [line for line in second.output.splitlines() if line.startswith(".  ")] == []
    assert sorted(line[3:].strip() for line in second.output.splitlines() if line.startswith("-- ")) \
        == sorted(ORDER)

    pushed = "localhost:%d/%s/basic-app:1.0.0" % (port, user)
    docker_cli("rmi", pushed)
    docker_cli("pull", pushed)
    assert docker_cli("run", "--rm", pushed, "cat", "/var/www/html/VERSION").strip() == "1.0.0"
