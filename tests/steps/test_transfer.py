"""transfer against real destinations: local folders and host B over ssh."""
import os
import subprocess

import pytest

from tests.support.shipping import build_app, doit_until, sha256

pytestmark = pytest.mark.engine


def flow(project, ref, destinations, extra=""):
    project.workflow("""
        steps:
          save:
            kind: save
            image: %s
            tar: ../out/app.tar
          transfer:
            kind: transfer
            tar: ../out/app.tar
            destinations: %s%s
        """ % (ref, destinations, extra))


@pytest.fixture
def app(names, busybox_image, docker_cli, tmp_path):
    ref = names + "/app:1"
    build_app(docker_cli, busybox_image, ref, folder=str(tmp_path / "ctx"))
    return ref


def test_local_twice(project, app):
    flow(project, app, '["../shipped/", "../elsewhere/copy.tar"]')
    first = project.doit("transfer")
    assert first.returncode == 0, first.output
    assert "copied app.tar to shipped/app.tar" in first.output
    expected = sha256(project.path("out/app.tar"))
    assert sha256(project.path("shipped/app.tar")) == expected
    assert sha256(project.path("elsewhere/copy.tar")) == expected
    second = project.doit("transfer")
    assert second.returncode == 0, second.output
    assert "-- transfer" in second.output and "copied" not in second.output


def test_changed_destination_is_copied_again(project, app):
    flow(project, app, '["../shipped/"]')
    assert project.doit("transfer").returncode == 0
    with open(project.path("shipped/app.tar"), "ab") as handle:
        handle.write(b"x")
    again = project.doit("transfer")
    assert again.returncode == 0, again.output
    assert "shipped/app.tar (differs)" in again.output
    assert sha256(project.path("shipped/app.tar")) == sha256(project.path("out/app.tar"))


def test_local_copy_killed_half_way(project, app):
    flow(project, app, '["../shipped/"]', "\n            bwlimit: 256")
    assert project.doit("save").returncode == 0
    full = os.path.getsize(project.path("out/app.tar"))
    folder = project.path("shipped")

    def half_copied():
        partials = [n for n in os.listdir(folder) if ".partial-" in n] if os.path.isdir(folder) else []
        return any(0 < os.path.getsize(os.path.join(folder, n)) < full // 2 for n in partials)

    doit_until(project, ["transfer"], half_copied, "the copy was half way")
    assert not os.path.exists(os.path.join(folder, "app.tar"))
    flow(project, app, '["../shipped/"]')  # no bandwidth limit for the rerun
    again = project.doit("transfer")
    assert again.returncode == 0, again.output
    assert sha256(os.path.join(folder, "app.tar")) == sha256(project.path("out/app.tar"))
    assert os.listdir(folder) == ["app.tar"]  # the killed copy's temp file is gone too


def test_tar_not_matching_its_checksum_is_not_shipped(project, app):
    flow(project, app, '["../shipped/"]')
    assert project.doit("save").returncode == 0
    with open(project.path("out/app.tar"), "ab") as handle:
        handle.write(b"\0" * 512)
    done = project.doit("-s", "transfer")  # -s: this task only, not its save
    assert done.returncode == 1, done.output
    assert "does not match its checksum file" in done.output and "Traceback" not in done.output
    assert not os.path.exists(project.path("shipped/app.tar"))


def _remote(hostb, *argv):
    return subprocess.run(hostb.ssh_argv() + list(argv), capture_output=True, text=True)


def _ssh_field(hostb):
    s = hostb.ssh_settings
    return ("\n            ssh: {identity_file: %s, strict_host_key_checking: \"no\", known_hosts_file: %s}"
            % (s["identity_file"], s["known_hosts_file"]))


@pytest.mark.hostb
def test_to_host_b_twice(project, app, hostb, names):
    dest = "/tmp/dockflow-%s/" % names
    flow(project, app, '["root@%s:%s"]' % (hostb.address, dest), _ssh_field(hostb))
    try:
        first = project.doit("transfer")
        assert first.returncode == 0, first.output
        assert "copied app.tar to root@%s:%sapp.tar" % (hostb.address, dest) in first.output
        remote_sum = _remote(hostb, "sha256sum", dest + "app.tar").stdout.split()[0]
        assert remote_sum == sha256(project.path("out/app.tar"))
        second = project.doit("transfer")
        assert second.returncode == 0, second.output
        assert "-- transfer" in second.output
    finally:
        _remote(hostb, "rm", "-rf", dest)


@pytest.mark.hostb
def test_to_host_b_killed_half_way(project, names, busybox_image, docker_cli, tmp_path, hostb):
    ref = names + "/big:1"
    build_app(docker_cli, busybox_image, ref, folder=str(tmp_path / "big"), size=4 << 20)
    dest = "/tmp/dockflow-%s/" % names
    flow(project, ref, '["root@%s:%s"]' % (hostb.address, dest), _ssh_field(hostb) + "\n            bwlimit: 512")
    assert project.doit("save").returncode == 0
    full = os.path.getsize(project.path("out/app.tar"))
    temp = dest + ".app.tar.partial"

    def half_copied():
        size = _remote(hostb, "stat", "-c", "%s", temp).stdout.strip()
        return size.isdigit() and 0 < int(size) < full // 2

    try:
        doit_until(project, ["transfer"], half_copied, "the copy was half way")
        assert _remote(hostb, "test", "-e", dest + "app.tar").returncode == 1  # nothing under the final name
        flow(project, ref, '["root@%s:%s"]' % (hostb.address, dest), _ssh_field(hostb))
        again = project.doit("transfer")
        assert again.returncode == 0, again.output
        remote_sum = _remote(hostb, "sha256sum", dest + "app.tar").stdout.split()[0]
        assert remote_sum == sha256(project.path("out/app.tar"))
        assert _remote(hostb, "ls", "-A", dest).stdout.split() == ["app.tar"]
    finally:
        _remote(hostb, "rm", "-rf", dest)


@pytest.mark.hostb
def test_unreachable_host_is_one_clear_line(project, app, hostb, tmp_path):
    flow(project, app, '["root@%s:/tmp/x/"]' % hostb.address,
         "\n            ssh: {identity_file: %s, port: 2, connect_timeout: 3}" % hostb.identity_file)
    done = project.doit("transfer")
    assert done.returncode == 1, done.output
    assert "ssh could not connect" in done.output and "Traceback" not in done.output


def test_destinations_read_as_cp_reads_them(project, app):
    """An existing folder without its `/` is "into it"; a missing path with a `/` is made
    as a folder; a missing path without one is a file name, and the plan says so."""
    os.makedirs(project.path("ship"))
    flow(project, app, '["../ship", "../made/", "../named"]')
    assert project.doit("save").returncode == 0
    plan = project.doit("plan", "transfer")
    assert plan.returncode == 0, plan.output
    assert "ship/app.tar (missing)" in plan.output
    assert "made/app.tar (missing)" in plan.output
    assert "named (missing: a new file of that name; end the destination with / for a folder)" in plan.output
    done = project.doit("transfer")
    assert done.returncode == 0, done.output
    expected = sha256(project.path("out/app.tar"))
    assert sha256(project.path("ship/app.tar")) == expected
    assert sha256(project.path("made/app.tar")) == expected
    assert os.path.isfile(project.path("named")) and sha256(project.path("named")) == expected
    again = project.doit("transfer")
    assert again.returncode == 0 and "-- transfer" in again.output, again.output


@pytest.mark.hostb
def test_host_b_destinations_read_as_scp_reads_them(project, app, hostb, names):
    """host:/folder without its `/`, when the folder exists there, is "into it"; a missing
    host:/path without one is a file name, and the plan says so."""
    base = "/tmp/dockflow-%s" % names
    assert _remote(hostb, "mkdir", "-p", base + "/ship").returncode == 0
    target = "root@%s:" % hostb.address
    flow(project, app, '["%s%s/ship", "%s%s/named"]' % (target, base, target, base), _ssh_field(hostb))
    try:
        assert project.doit("save").returncode == 0
        plan = project.doit("plan", "transfer")
        assert "%s%s/ship/app.tar (missing)" % (target, base) in plan.output, plan.output
        assert "%s%s/named (missing: a new file of that name" % (target, base) in plan.output, plan.output
        done = project.doit("transfer")
        assert done.returncode == 0, done.output
        expected = sha256(project.path("out/app.tar"))
        for path in ("/ship/app.tar", "/named"):
            assert _remote(hostb, "sha256sum", base + path).stdout.split()[0] == expected
        again = project.doit("transfer")
        assert again.returncode == 0 and "-- transfer" in again.output, again.output
    finally:
        _remote(hostb, "rm", "-rf", base)
