"""pull on real engines: three hosts (tests/support/hostb.py) pulling from a real registry
with credentials, published on this side of host B's veth (every host's dockerd lists
tests/support/hostb.LAB_NETWORK among its insecure registries)."""
import re

import pytest

from tests.support.hostb import ssh_fields
from tests.support.registry import make_htpasswd

pytestmark = [pytest.mark.engine, pytest.mark.hostb]


def make_image(docker_cli, busybox_image, ref, content):
    docker_cli("build", "-q", "-t", ref, "-", input="FROM %s\nRUN echo %s > /id\n" % (busybox_image, content))


def start_lab_registry(registries, hosts, htpasswd=None):
    """A registry at 127.0.0.1:PORT for this engine's push and HOST_A:PORT for the hosts'
    pulls (HOST_A: this side of host B's veth, which every host routes to)."""
    registry = registries.start(htpasswd=htpasswd, also_on=(hosts[0].address_a,))
    registry.for_hosts = "%s:%d" % (hosts[0].address_a, registry.port)
    return registry


@pytest.fixture
def lab_registry(registries, hosts):
    return start_lab_registry(registries, hosts)


@pytest.fixture
def registry_with_password(registries, hosts, tmp_path):
    """One that asks for lab / pull-secret (a cheap bcrypt: it is checked on every request)."""
    return start_lab_registry(registries, hosts, make_htpasswd(str(tmp_path / "htpasswd"), "lab", "pull-secret",
                                                               cost=4))


@pytest.fixture
def clean_hosts(hosts, names):
    yield hosts
    for host in hosts:
        found = [line for line in host.docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()
                 if ("/" + names) in line]
        if found:
            host.docker("rmi", "-f", *found, check=False)


CREDENTIALS = {"REG_USER": "lab", "REG_PASS": "pull-secret"}


def flow(project, ref, registry, hosts, credentials=""):
    project.workflow("""
        steps:
          push:
            kind: push
            image: %s
            registry: %s%s
          pull:
            kind: pull
            needs: [push]
            image: %s/%s%s%s
        """ % (ref, registry.address, credentials, registry.for_hosts, ref, credentials, ssh_fields(hosts, 12)))


CREDENTIAL_FIELDS = "\n            username_env: REG_USER\n            password_env: REG_PASS"


def pulled_lines(output):
    """{host: (layers fetched, layers already there)} of each `pulled` line."""
    return {match.group(1): (int(match.group(2)), int(match.group(3))) for match in re.finditer(
        r"pulled \S+ into (\S+): fetched (\d+) layers? \(.*?\), (\d+) already there", output)}


def repo_digests(host, ref):
    return host.docker("image", "inspect", "-f", "{{json .RepoDigests}}", ref, check=False)


def test_pull_on_three_hosts_then_up_to_date_then_a_moved_tag(project, names, busybox_image, docker_cli,
                                                              lab_registry, clean_hosts):
    hosts = clean_hosts
    ref = names + "/app:latest"
    make_image(docker_cli, busybox_image, ref, "one")
    flow(project, ref, lab_registry, hosts)
    first = project.doit("pull")
    assert first.returncode == 0, first.output
    pulled = pulled_lines(first.output)
    assert sorted(pulled) == sorted(host.ssh_url for host in hosts), first.output
    at_hosts = "%s/%s" % (lab_registry.for_hosts, ref)
    digests = [repo_digests(host, at_hosts) for host in hosts]
    assert digests[0] == digests[1] == digests[2] and "@sha256:" in digests[0]

    again = project.doit("pull")
    assert again.returncode == 0, again.output
    assert "-- push" in again.output and "-- pull" in again.output

    make_image(docker_cli, busybox_image, ref, "two")  # latest moves: one new layer
    moved = project.doit("pull")
    assert moved.returncode == 0, moved.output
    assert "pulling %s: %s: it lacks sha256:" % (at_hosts, hosts[0].ssh_url) in moved.output
    assert set(pulled_lines(moved.output).values()) == {(1, 1)}, moved.output
    assert hosts[2].docker("run", "--rm", "--network", "none", at_hosts, "cat", "/id") == "two\n"


def test_a_tag_the_registry_lacks_is_one_line_per_host(project, names, lab_registry, clean_hosts):
    hosts = clean_hosts[:2]
    project.workflow("""
        steps:
          pull:
            kind: pull
            image: %s/%s/nothing:1%s
        """ % (lab_registry.for_hosts, names, ssh_fields(hosts, 12)))
    done = project.doit("pull")
    assert done.returncode == 1, done.output
    assert "Traceback" not in done.output
    failure = done.output[done.output.index("2 of 2 targets failed"):]
    for host in hosts:
        line = next(line for line in failure.splitlines() if line.strip().startswith(host.ssh_url))
        assert "the registry has no %s/%s/nothing:1" % (lab_registry.for_hosts, names) in line, failure
        assert "push it first" in line


def test_credentials_go_to_the_engine_and_a_refusal_is_the_registrys_words(
        project, names, busybox_image, docker_cli, registry_with_password, clean_hosts):
    hostb = clean_hosts[0]
    ref = names + "/app:1"
    make_image(docker_cli, busybox_image, ref, "one")
    flow(project, ref, registry_with_password, [hostb], CREDENTIAL_FIELDS)
    assert project.doit("push", env=CREDENTIALS).returncode == 0
    refused = project.doit("-s", "pull", env={"REG_USER": "lab", "REG_PASS": "wrong-secret"})
    assert refused.returncode == 1, refused.output
    assert "wrong-secret" not in refused.output and "Traceback" not in refused.output
    line = next(line for line in refused.output.splitlines() if line.startswith("FAILED pull"))
    assert hostb.ssh_url in line and ("unauthorized" in line.lower() or "denied" in line.lower()), line
    done = project.doit("-s", "pull", env=CREDENTIALS)
    assert done.returncode == 0, done.output
    assert "pull-secret" not in done.output
    assert list(pulled_lines(done.output)) == [hostb.ssh_url], done.output
