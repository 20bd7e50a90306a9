"""Beyond one machine: fan-out load to three real hosts (namespaces with their own dockerd
and sshd, tests/support/hostb.py), a host that is down and one that refuses the key,
a build on host B through ssh:// and a save of it from there; and the definition
errors of steps that talk to several engines."""
import re

import pytest

from tasks import project_checks
from tasks.errors import WorkflowError
from tests.support.hostb import ssh_fields
from tests.support.shipping import build_app, copy_image, save_and_load, tar_image_id


# --- definitions, no engine ----------------------------------------------------------

@pytest.fixture
def proj(offline_project, monkeypatch):
    monkeypatch.chdir(offline_project.root)
    monkeypatch.setenv("DOCKER_HOST", offline_project.docker_host)
    return offline_project


def test_docker_host_beside_docker_hosts_or_a_target_twice_is_a_definition_error(proj):
    proj.write("workflows/lab.yaml", """
        steps:
          load:
            kind: load
            tar: app.tar
            docker_host: ssh://a
            docker_hosts: [ssh://a, "ssh://b", ssh://a]
        """)
    with pytest.raises(WorkflowError) as caught:
        project_checks.checked_steps(".")
    assert caught.value.problems == [
        "workflows/lab.yaml:7:5: steps.load.docker_hosts: docker_host and docker_hosts are both set: list every "
        "target in docker_hosts",
        "workflows/lab.yaml:7:40: steps.load.docker_hosts.2: ssh://a is listed twice"]


def test_a_build_from_an_image_made_on_another_engine_names_both_steps(proj):
    proj.write("workflows/lab/base/Dockerfile", "FROM scratch\n")
    proj.write("workflows/lab/app/Dockerfile", "FROM lab/base:1\n")
    proj.write("workflows/lab.yaml", """
        steps:
          build_base: {kind: build, context: lab/base, image: "lab/base:1", docker_host: "ssh://root@builder"}
          build_app: {kind: build, context: lab/app, image: "lab/app:1"}
          app_on_builder: {kind: build, context: lab/app, image: "lab/app:2", docker_host: "ssh://root@builder"}
        """)
    with pytest.raises(WorkflowError) as caught:
        project_checks.checked_steps(".")
    assert caught.value.problems == [
        "workflows/lab.yaml:4:3: steps.build_app: reads image lab/base:1 from the engine "
        "unix:///nonexistent/docker.sock, but step 'build_base' (workflows/lab.yaml:3:3: steps.build_base) makes "
        "it on ssh://root@builder: give both steps the same docker_host, or load or pull the image into "
        "unix:///nonexistent/docker.sock first"]


def test_a_pull_reads_the_registry_and_a_load_a_file_not_an_engine(proj):
    """The push made the image on this engine and in the registry; the pull's hosts reach
    the registry: no engine-crossing, and the pull comes after the push. Files are this
    machine's: a load elsewhere of a tar saved here is no crossing either."""
    proj.write("workflows/lab.yaml", """
        steps:
          save: {kind: save, image: "lab/app:1", tar: app.tar}
          load: {kind: load, tar: app.tar, docker_hosts: ["ssh://root@b", "ssh://root@c"]}
          push: {kind: push, image: "lab/app:1", registry: "10.0.0.1:5000"}
          pull:
            kind: pull
            image: "10.0.0.1:5000/lab/app:1"
            docker_hosts: ["ssh://root@${host_a}", "ssh://root@b"]
            parallel: 2
        vars: {host_a: a}
        """)
    all_steps, deps = project_checks.checked_steps(".")
    assert deps["pull"] == ["push"] and deps["load"] == ["save"]


# --- real hosts ------------------------------------------------------------------------

@pytest.fixture
def clean_hosts(hosts, names):
    """The three hosts; their images of this test are removed afterwards, and a host a
    test broke is mended (its dockerd started, its key accepted) whatever happened."""
    yield hosts
    for host in hosts:
        host.refuse_key(False)
        if host._dockerd is None:
            host.start_dockerd()
        found = [line for line in host.docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()
                 if line.startswith(names) or ("/" + names) in line]
        if found:
            host.docker("rmi", "-f", *found, check=False)


def ship_flow(project, ref, hosts, extra=""):
    project.workflow(save_and_load(ref, ssh_fields(hosts) + extra))


def loaded_lines(output):
    """{ssh url: (shipped percent, layers sent, layers in all)} of each `loaded` line."""
    found = {}
    for match in re.finditer(r"loaded \S+ into (\S+): shipped .* of .* \(([0-9.]+)%\), (\d+) of (\d+) layers",
                             output):
        found[match.group(1)] = (float(match.group(2)), int(match.group(3)), int(match.group(4)))
    return found


def image_ids(hosts, ref):
    return [host.docker("image", "inspect", "-f", "{{.Id}}", ref, check=False).strip() for host in hosts]


@pytest.mark.engine
@pytest.mark.hostb
def test_fan_out_load_each_host_its_own_missing_layers(project, names, busybox_image, docker_cli, clean_hosts,
                                                        tmp_path):
    hosts = clean_hosts
    for host in hosts:  # cold: no layer of an earlier test left there
        host.docker("image", "prune", "--all", "--force")
    ref = names + "/app:1"
    build_app(docker_cli, busybox_image, ref, text="one", folder=str(tmp_path / "ctx"))
    copy_image(docker_cli, busybox_image, hosts[1].docker_host)  # one host has the base already
    ship_flow(project, ref, hosts, "\n    parallel: 2")
    cold = project.doit("load")
    assert cold.returncode == 0, cold.output
    shipped = loaded_lines(cold.output)
    assert {url: layers for url, (_, *layers) in shipped.items()} == {
        hosts[0].ssh_url: [2, 2], hosts[1].ssh_url: [1, 2], hosts[2].ssh_url: [2, 2]}, cold.output
    tar_id = tar_image_id(project.path("out/app.tar"))
    assert image_ids(hosts, ref) == [tar_id] * 3
    again = project.doit("load")
    assert again.returncode == 0 and "-- load" in again.output, again.output

    build_app(docker_cli, busybox_image, ref, text="two", folder=str(tmp_path / "ctx"))  # an app-only change
    changed = project.doit("load")
    assert changed.returncode == 0, changed.output
    shipped = loaded_lines(changed.output)
    assert sorted(shipped) == sorted(host.ssh_url for host in hosts), changed.output
    for percent, sent, layers in shipped.values():
        assert (sent, layers) == (1, 2) and percent < 5.0, changed.output
    assert image_ids(hosts, ref) == [tar_image_id(project.path("out/app.tar"))] * 3
    assert hosts[0].docker("run", "--rm", "--network", "none", ref, "cat", "/app/data.txt") == "two\n"


@pytest.mark.engine
@pytest.mark.hostb
def test_a_host_down_and_one_refusing_the_key_the_third_completes_and_a_rerun_mends_only_them(
        project, app, clean_hosts):
    hosts, ref = clean_hosts, app
    ship_flow(project, ref, hosts)
    hosts[1].stop_dockerd()
    hosts[2].refuse_key()
    broken = project.doit("load")
    assert broken.returncode == 1, broken.output
    assert "Traceback" not in broken.output
    assert list(loaded_lines(broken.output)) == [hosts[0].ssh_url], broken.output
    failure = broken.output[broken.output.index("2 of 3 targets failed"):]
    assert hosts[0].ssh_url not in failure
    down = next(line for line in failure.splitlines() if hosts[1].ssh_url in line)
    assert "cannot reach the Docker engine at %s" % hosts[1].ssh_url in down, failure
    refused = next(line for line in failure.splitlines() if hosts[2].ssh_url in line)
    assert "Permission denied" in refused, failure
    assert image_ids(hosts[:1], ref) == [tar_image_id(project.path("out/app.tar"))]

    hosts[1].start_dockerd()
    hosts[2].refuse_key(False)
    mended = project.doit("load")
    assert mended.returncode == 0, mended.output
    assert sorted(loaded_lines(mended.output)) == sorted([hosts[1].ssh_url, hosts[2].ssh_url]), mended.output
    assert "%s already has %s: up to date" % (hosts[0].ssh_url, ref) in mended.output
    assert image_ids(hosts, ref) == [tar_image_id(project.path("out/app.tar"))] * 3


@pytest.mark.engine
@pytest.mark.hostb
def test_build_on_host_b_over_ssh_then_save_it_from_the_same_engine(project, names, busybox_image, docker_cli,
                                                                      clean_hosts):
    hostb = clean_hosts[0]
    copy_image(docker_cli, busybox_image, hostb.docker_host)
    ref = names + "/remote:1"
    project.write("workflows/app/Dockerfile", "FROM %s\nRUN echo built-there > /where\n" % busybox_image)
    project.workflow("""
        steps:
          build:
            kind: build
            context: app
            image: %s%s
          save:
            kind: save
            image: %s
            tar: ../out/remote.tar%s
        """ % (ref, ssh_fields([hostb], 12), ref, ssh_fields([hostb], 12)))
    first = project.doit("save")
    assert first.returncode == 0, first.output
    assert docker_cli("images", "-q", ref).strip() == ""  # not built here
    built = hostb.docker("image", "inspect", "-f", "{{.Id}}", ref).strip()
    assert tar_image_id(project.path("out/remote.tar")) == built
    second = project.doit("save")
    assert second.returncode == 0, second.output
    assert "-- build" in second.output and "-- save" in second.output
    hostb.docker("rmi", ref)
    third = project.doit("save")  # the check asks host B's engine: gone there, built again
    assert third.returncode == 0, third.output
    assert "building %s: the engine has no such image" % ref in third.output


@pytest.mark.engine
@pytest.mark.hostb
def test_fan_out_transfer_one_host_refusing_the_key_then_a_rerun_copies_only_there(
        project, names, app, clean_hosts):
    hosts, ref = clean_hosts, app
    drops = ["%s/%s/" % (host.root, names) for host in hosts]  # the hosts share this machine's files
    settings = hosts[0].ssh_settings
    project.workflow("""
        steps:
          save: {kind: save, image: %s, tar: ../out/app.tar}
          transfer:
            kind: transfer
            tar: ../out/app.tar
            destinations: [%s]
            parallel: 3
            ssh: {identity_file: %s, strict_host_key_checking: "no", known_hosts_file: %s}
        """ % (ref, ", ".join("root@%s:%s" % (host.address, drop) for host, drop in zip(hosts, drops)),
               settings["identity_file"], settings["known_hosts_file"]))
    hosts[1].refuse_key()
    broken = project.doit("transfer")
    assert broken.returncode == 1, broken.output
    assert "Traceback" not in broken.output
    failure = broken.output[broken.output.index("1 of 3 targets failed"):]
    assert "root@%s:%sapp.tar: " % (hosts[1].address, drops[1]) in failure and "Permission denied" in failure
    copied = re.findall(r"copied app.tar to root@(\S+?):", broken.output)
    assert sorted(copied) == sorted([hosts[0].address, hosts[2].address]), broken.output
    hosts[1].refuse_key(False)
    mended = project.doit("transfer")
    assert mended.returncode == 0, mended.output
    assert re.findall(r"copied app.tar to root@(\S+?):", mended.output) == [hosts[1].address], mended.output
    with open(project.path("out/app.tar"), "rb") as tar:
        saved = tar.read()
    for drop in drops:
        with open(drop + "app.tar", "rb") as landed:
            assert landed.read() == saved
