"""registry (the lab's registry_up) against a real engine and a real registry container,
on free ports other than 5000: a user's own registry is never touched."""
import json
import subprocess

import pytest

from tasks import registry_api
from tests.support.registry import free_port, make_htpasswd

pytestmark = pytest.mark.engine


def registry_workflow(project, image, name, port, extra=""):
    """registry_up on 127.0.0.1:port; `extra` is more YAML, indented as written."""
    project.workflow("steps:\n  registry_up:\n    kind: registry\n    image: %s\n    name: %s\n"
                     "    port: %d\n    bind: 127.0.0.1\n%s" % (image, name, port, extra))


@pytest.fixture
def up(project, names, registries, registry_image):
    """A project whose registry_up step makes container <names>-registry on a free port."""
    name = names + "-registry"
    registries.track(name, name + "-data")
    port = free_port()
    registry_workflow(project, registry_image, name, port)
    return name, port


def inspect(docker_cli, name):
    return json.loads(docker_cli("container", "inspect", name))[0]


def test_second_run_changes_nothing(project, up, docker_cli):
    name, port = up
    first = project.doit("registry_up")
    assert first.returncode == 0, first.output
    assert "starting registry %s on port %d: no such container" % (name, port) in first.output
    assert "answers at 127.0.0.1:%d" % port in first.output
    container = inspect(docker_cli, name)
    assert container["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert {"Type": "volume", "Name": name + "-data", "Destination": "/var/lib/registry"}.items() <= \
        {k: v for m in container["Mounts"] for k, v in m.items() if m["Destination"] == "/var/lib/registry"}.items()
    assert registry_api.v2_status("127.0.0.1:%d" % port, tls=False) == 200
    second = project.doit("registry_up")
    assert second.returncode == 0, second.output
    assert "-- registry_up" in second.output
    assert inspect(docker_cli, name)["Id"] == container["Id"]


def test_stopped_container_is_started_again(project, up, docker_cli):
    name, port = up
    assert project.doit("registry_up").returncode == 0
    docker_cli("stop", name)
    again = project.doit("registry_up")
    assert again.returncode == 0, again.output
    assert "the container is stopped" in again.output
    assert registry_api.v2_status("127.0.0.1:%d" % port, tls=False) == 200


def test_changed_definition_recreates_container_and_keeps_data(project, up, registry_image, docker_cli,
                                                               busybox_image, names):
    name, port = up
    assert project.doit("registry_up").returncode == 0
    first_id = inspect(docker_cli, name)["Id"]
    pushed = "127.0.0.1:%d/%s/bb:1" % (port, names)
    docker_cli("tag", busybox_image, pushed)
    docker_cli("push", pushed)
    new_port = free_port()
    registry_workflow(project, registry_image, name, new_port)
    again = project.doit("registry_up")
    assert again.returncode == 0, again.output
    assert "re-creating registry container %s: its definition changed" % name in again.output
    assert inspect(docker_cli, name)["Id"] != first_id
    # The volume kept the image: pull it back through the new port (Exercise 3.10, steps 6-7).
    moved = "127.0.0.1:%d/%s/bb:1" % (new_port, names)
    docker_cli("pull", moved)
    assert docker_cli("image", "inspect", "-f", "{{.Id}}", moved) == \
        docker_cli("image", "inspect", "-f", "{{.Id}}", busybox_image)


def test_htpasswd_auth_answers_401_and_is_up_to_date(project, names, registries, registry_image, tmp_path):
    name = names + "-registry"
    registries.track(name, name + "-data")
    port = free_port()
    make_htpasswd(str(tmp_path / "htpasswd"), "lab", "s3cret")
    registry_workflow(project, registry_image, name, port, "    htpasswd: %s\n" % (tmp_path / "htpasswd"))
    first = project.doit("registry_up")
    assert first.returncode == 0, first.output
    assert registry_api.v2_status("127.0.0.1:%d" % port, tls=False) == 401
    assert "s3cret" not in first.output
    second = project.doit("registry_up")
    assert "-- registry_up" in second.output, second.output
    # A new password file restarts the registry with it.
    make_htpasswd(str(tmp_path / "htpasswd"), "lab", "other")
    third = project.doit("registry_up")
    assert third.returncode == 0 and "re-creating registry" in third.output, third.output


def test_container_not_made_by_dockflow_is_left_alone(project, up, registry_image, docker_cli):
    name, port = up
    docker_cli("create", "--name", name, registry_image)
    before = inspect(docker_cli, name)["Id"]
    failed = project.doit("registry_up")
    assert failed.returncode != 0
    assert "a container named %s exists and dockflow did not make it" % name in failed.output
    assert "Traceback" not in failed.output
    assert inspect(docker_cli, name)["Id"] == before


def test_port_taken_is_a_clear_error_and_leaves_no_container(project, names, registries, registry_image,
                                                              docker_cli):
    other = registries.start()
    name = names + "-registry"
    registries.track(name, name + "-data")
    registry_workflow(project, registry_image, name, other.port)
    failed = project.doit("registry_up")
    assert failed.returncode != 0
    assert "port %d is taken" % other.port in failed.output, failed.output
    assert "Traceback" not in failed.output
    assert docker_cli("ps", "-a", "-q", "--filter", "name=^%s$" % name).strip() == ""


def test_tls_registry_answers_https_and_takes_a_push(project, names, registries, registry_image, tmp_path,
                                                      docker_cli, busybox_image):
    name = names + "-registry"
    registries.track(name, name + "-data")
    port = free_port()
    cert, key = str(tmp_path / "domain.crt"), str(tmp_path / "domain.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    docker_cli("tag", busybox_image, names + "/bb:1")
    registry_workflow(project, registry_image, name, port,
                      "    tls_cert: %s\n    tls_key: %s\n" % (cert, key)
                      + "  push:\n    kind: push\n    needs: [registry_up]\n"
                      + "    image: %s/bb:1\n    registry: 127.0.0.1:%d\n" % (names, port))
    first = project.doit("push")
    assert first.returncode == 0, first.output
    assert registry_api.v2_status("127.0.0.1:%d" % port, tls=True) == 200
    assert registry_api.v2_status("127.0.0.1:%d" % port, tls=False) != 200
    second = project.doit("push")
    assert "-- registry_up" in second.output and "-- push" in second.output, second.output
