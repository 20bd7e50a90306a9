"""push against a real engine and a real registry container (made offline from
Debian's docker-registry, tests/support/registry.py) on free ports, never 5000."""
import ipaddress
import socket
import subprocess

import pytest

from tasks import engine, registry_api
from tasks.registry_api import RegistryDenied, RegistryUnreachable
from tasks.steps import push
from tests.support import image_id
from tests.support.registry import free_port, make_htpasswd

pytestmark = pytest.mark.engine


def make_image(docker_cli, busybox_image, ref, content):
    """A small image of its own (its digest differs with `content`)."""
    docker_cli("build", "-q", "-t", ref, "-", input="FROM %s\nRUN echo %s > /id\n" % (busybox_image, content))
    return image_id(docker_cli, ref)


def push_workflow(project, image, registry, **fields):
    lines = ["steps:", "  push:", "    kind: push", "    image: %s" % image, "    registry: %s" % registry]
    project.workflow("\n".join(lines + ["    %s: %s" % item for item in fields.items()]) + "\n")


def registry_config_digest(address, repository, tag, credentials=None):
    digest, manifest = registry_api.Registry(address, credentials).manifest(repository, tag)
    return manifest["config"]["digest"]


def test_push_twice_then_pull_back(project, names, registries, docker_cli, busybox_image):
    registry = registries.start()
    app_id = make_image(docker_cli, busybox_image, names + "/app:1.0.0", "one")
    push_workflow(project, names + "/app:1.0.0", registry.address)
    first = project.doit("push")
    assert first.returncode == 0, first.output
    target = "%s/%s/app:1.0.0" % (registry.address, names)
    assert "pushing %s/app:1.0.0 as %s: the registry has no such tag" % (names, target) in first.output
    assert "pushed %s sha256:" % target in first.output
    assert registry_config_digest(registry.address, names + "/app", "1.0.0") == app_id
    second = project.doit("push")
    assert second.returncode == 0, second.output
    assert "-- push" in second.output
    # Exercise 3.10, steps 6-7: remove the local copies, pull it back from the registry.
    docker_cli("image", "rm", target)
    docker_cli("pull", target)
    assert image_id(docker_cli, target) == app_id


def test_pushed_image_survives_registry_restart(project, names, registries, docker_cli, busybox_image):
    registry = registries.start()
    app_id = make_image(docker_cli, busybox_image, names + "/app:2.0.0", "two")
    push_workflow(project, names + "/app:2.0.0", registry.address)
    assert project.doit("push").returncode == 0
    registry.restart()
    target = "%s/%s/app:2.0.0" % (registry.address, names)
    docker_cli("image", "rm", target)
    docker_cli("pull", target)
    assert image_id(docker_cli, target) == app_id
    assert "-- push" in project.doit("push").output


def test_registry_down_bounded_retry_then_clear_error(project, names, registry_image, docker_cli,
                                                       busybox_image):
    make_image(docker_cli, busybox_image, names + "/app:1.0.0", "down")
    nowhere = "127.0.0.1:%d" % free_port()
    push_workflow(project, names + "/app:1.0.0", nowhere, retries=2)
    failed = project.doit("push")
    assert failed.returncode == 1, failed.output
    assert failed.output.count("retrying in") == 2
    assert "retrying in 1s (1 of 2)" in failed.output and "retrying in 2s (2 of 2)" in failed.output
    assert "push of %s/%s/app:1.0.0 failed after 3 attempts" % (nowhere, names) in failed.output
    assert "Connection refused" in failed.output or "connection refused" in failed.output
    assert "is the registry running" in failed.output
    assert "Traceback" not in failed.output


def test_wrong_password_is_a_clear_error_without_retry(project, names, registries, docker_cli, busybox_image,
                                                       tmp_path):
    htpasswd = make_htpasswd(str(tmp_path / "htpasswd"), "lab", "right-pass")
    registry = registries.start(htpasswd=htpasswd)
    app_id = make_image(docker_cli, busybox_image, names + "/app:1.0.0", "auth")
    push_workflow(project, names + "/app:1.0.0", registry.address,
                  username_env="T_REG_USER", password_env="T_REG_PASS")
    wrong = project.doit("push", env={"T_REG_USER": "lab", "T_REG_PASS": "wrong-pass"})
    assert wrong.returncode == 1, wrong.output
    assert "unauthorized" in wrong.output and "'lab'" in wrong.output
    assert "retrying" not in wrong.output
    assert "wrong-pass" not in wrong.output and "Traceback" not in wrong.output
    unset = project.doit("push", env={"T_REG_USER": "", "T_REG_PASS": ""})
    assert "environment variable T_REG_USER and T_REG_PASS is not set" in unset.output, unset.output
    right = project.doit("push", env={"T_REG_USER": "lab", "T_REG_PASS": "right-pass"})
    assert right.returncode == 0, right.output
    assert "right-pass" not in right.output
    assert registry_config_digest(registry.address, names + "/app", "1.0.0", ("lab", "right-pass")) == app_id
    again = project.doit("push", env={"T_REG_USER": "lab", "T_REG_PASS": "right-pass"})
    assert "-- push" in again.output, again.output


def test_version_tag_with_another_digest_is_refused_unless_forced(project, names, registries, docker_cli,
                                                                  busybox_image):
    registry = registries.start()
    first_id = make_image(docker_cli, busybox_image, names + "/app:1.0.0", "first")
    push_workflow(project, names + "/app:1.0.0", registry.address)
    assert project.doit("push").returncode == 0
    other_id = make_image(docker_cli, busybox_image, names + "/other:1.0.0", "second")
    push_workflow(project, names + "/other:1.0.0", registry.address, repository=names + "/app")
    refused = project.doit("push")
    assert refused.returncode == 1, refused.output
    assert "the registry holds %s/%s/app:1.0.0 as another image" % (registry.address, names) in refused.output
    assert "set force: true" in refused.output and "Traceback" not in refused.output
    assert registry_config_digest(registry.address, names + "/app", "1.0.0") == first_id
    push_workflow(project, names + "/other:1.0.0", registry.address, repository=names + "/app", force="true")
    forced = project.doit("push")
    assert forced.returncode == 0, forced.output
    assert "the registry's tag names another image" in forced.output
    assert registry_config_digest(registry.address, names + "/app", "1.0.0") == other_id


def test_latest_may_move(project, names, registries, docker_cli, busybox_image):
    registry = registries.start()
    make_image(docker_cli, busybox_image, names + "/app:latest", "a")
    push_workflow(project, names + "/app:latest", registry.address)
    assert project.doit("push").returncode == 0
    new_id = make_image(docker_cli, busybox_image, names + "/app:latest", "b")
    moved = project.doit("push")
    assert moved.returncode == 0, moved.output
    assert registry_config_digest(registry.address, names + "/app", "latest") == new_id


def test_errors_inside_the_daemon_stream(names, registries, docker_host, docker_cli, busybox_image, tmp_path):
    """The daemon answers 200 and reports the failure inside its stream (errorDetail)."""
    docker = engine.get(docker_host)
    app_id = make_image(docker_cli, busybox_image, names + "/app:1.0.0", "stream")
    nowhere = "127.0.0.1:%d/%s/app:1.0.0" % (free_port(), names)
    with pytest.raises(RegistryUnreachable, match="connection refused"):
        push.push_image(docker, app_id, nowhere, None, "push")
    registry = registries.start(htpasswd=make_htpasswd(str(tmp_path / "htpasswd"), "lab", "pw"))
    guarded = "%s/%s/app:1.0.0" % (registry.address, names)
    with pytest.raises(RegistryDenied, match="no basic auth credentials|unauthorized"):
        push.push_image(docker, app_id, guarded, None, "push")
    with pytest.raises(RegistryDenied, match="unauthorized"):
        push.push_image(docker, app_id, guarded, {"username": "lab", "password": "nope"}, "push")



def loopback_host_name():
    """This machine's own name, when it resolves into 127.0.0.0/8 (Debian's /etc/hosts
    maps it so): a registry address that is no loopback literal, yet insecure to the engine."""
    name = socket.gethostname()
    try:
        if ipaddress.ip_address(socket.gethostbyname(name)).is_loopback:
            return name
    except (OSError, ValueError):
        pass
    pytest.skip("this machine's host name does not resolve to a loopback address")


def test_a_plain_http_registry_the_engine_lists_as_insecure_takes_a_push(project, names, registries, docker_cli,
                                                                         busybox_image):
    """`NAME:PORT`, NAME resolving to 127.0.0.1: the engine pushes over plain HTTP (its
    InsecureRegistryCIDRs hold 127.0.0.0/8), so the check must speak it too, as docker push does."""
    registry = registries.start()
    address = "%s:%d" % (loopback_host_name(), registry.port)
    app_id = make_image(docker_cli, busybox_image, names + "/app:1.0.0", "insecure")
    push_workflow(project, names + "/app:1.0.0", address, retries=0)
    first = project.doit("push")
    assert first.returncode == 0, first.output
    assert "the registry has no such tag" in first.output
    assert registry_config_digest(registry.address, names + "/app", "1.0.0") == app_id
    second = project.doit("push")
    assert second.returncode == 0 and "-- push" in second.output, second.output


@pytest.mark.parametrize("info, address, insecure", [
    ({"RegistryConfig": {"IndexConfigs": {"reg.lan:5000": {"Secure": False}}, "InsecureRegistryCIDRs": []}},
     "reg.lan:5000", True),
    ({"RegistryConfig": {"IndexConfigs": {"reg.lan:5000": {"Secure": True}},
                         "InsecureRegistryCIDRs": ["0.0.0.0/0"]}}, "reg.lan:5000", False),
    ({"RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["10.231.0.0/16"]}}, "10.231.4.2:5000", True),
    ({"RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["10.231.0.0/16"]}}, "10.232.4.2:5000", False),
    ({"RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"]}}, "localhost:5000", True),
    ({}, "[::1]:5000", True),
])
def test_insecure_registries_are_those_the_engine_names(info, address, insecure):
    """No engine: the decision from a canned /info answer (the real one is asked in the push tests)."""
    target = engine.Engine("unix:///nonexistent.sock")
    target._info = info
    assert target.registry_is_insecure(address) is insecure


@pytest.mark.hostb
def test_a_registry_only_the_engine_sees_is_asked_through_the_engine(project, names, hostb, registry_image,
                                                                      docker_cli, busybox_image):
    """A registry inside host B, on host B's own loopback: this machine's 127.0.0.1:PORT is
    nothing, so the push check asks host B's engine (GET /distribution/...), then pushes there."""
    for image in (registry_image, busybox_image):
        if not hostb.docker("images", "-q", image).strip():
            saved = docker_cli("save", image, input=b"")
            subprocess.run(["docker", "-H", hostb.docker_host, "load"], input=saved, check=True, capture_output=True)
    port = free_port()
    container = names + "-registry"
    hostb.docker("run", "-d", "--name", container, "-p", "127.0.0.1:%d:5000" % port, registry_image)
    try:
        ref = names + "/app:1.0.0"
        hostb.docker("tag", busybox_image, ref)
        address = "127.0.0.1:%d" % port
        push_workflow(project, ref, address, docker_host=hostb.docker_host, retries=1)
        first = project.doit("push")
        assert first.returncode == 0, first.output
        assert "the registry has no such tag" in first.output
        assert "pushed %s/%s sha256:" % (address, ref) in first.output
        second = project.doit("push")
        assert second.returncode == 0 and "-- push" in second.output, second.output
    finally:
        hostb.docker("rm", "-f", container, check=False)
        hostb.docker("rmi", "-f", names + "/app:1.0.0", "127.0.0.1:%d/%s/app:1.0.0" % (port, names), check=False)
