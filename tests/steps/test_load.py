"""load into real engines: host B's, directly and over ssh://, and a dead one."""
import os
import re

import pytest

from tests.support.shipping import build_app, copy_image, save_and_load, tar_image_id

pytestmark = pytest.mark.engine


def flow(project, ref, docker_host, extra=""):
    project.workflow(save_and_load(ref, "\n    docker_host: %s%s" % (docker_host, extra)))


def shipped_percent(output):
    match = re.search(r"shipped .* of .* \(([0-9.]+)%\), (\d+) of (\d+) layers", output)
    assert match, output
    return float(match.group(1)), int(match.group(2)), int(match.group(3))


@pytest.fixture
def clean_hostb(hostb, names):
    """host B's images of this test are removed afterwards."""
    yield hostb
    refs = [line for line in hostb.docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()
            if line.startswith(names)]
    if refs:
        hostb.docker("rmi", "-f", *refs, check=False)


@pytest.mark.hostb
def test_a_save_and_a_load_go_over_the_sockets_without_importing_the_sdk(project, app, clean_hostb, tmp_path):
    """Importing the Docker SDK costs 0.15 to 0.27 s of processor, a tenth of a save and
    fan-out load of an app on a busy machine: both are sent over the engines' sockets."""
    flow(project, app, clean_hostb.docker_host)
    empty_config = tmp_path / "docker-config"  # credentials in a docker config send a build through the SDK
    empty_config.mkdir()
    done = project.doit("load", env={"PYTHONPROFILEIMPORTTIME": "1", "DOCKER_CONFIG": str(empty_config)})
    assert done.returncode == 0, done.output
    assert "loaded %s into %s" % (app, clean_hostb.docker_host) in done.output
    assert "tasks.imagetar" in done.output, done.output[-3000:]  # the import report is there
    assert not re.search(r"\|\s+docker$", done.output, re.M)


@pytest.mark.hostb
def test_load_into_host_b_twice(project, app, clean_hostb, docker_cli):
    flow(project, app, clean_hostb.docker_host)
    first = project.doit("load")
    assert first.returncode == 0, first.output
    assert "loaded %s into %s" % (app, clean_hostb.docker_host) in first.output
    local_id = docker_cli("image", "inspect", "-f", "{{.Id}}", app).strip()
    assert clean_hostb.docker("image", "inspect", "-f", "{{.Id}}", app).strip() == local_id
    second = project.doit("load")
    assert second.returncode == 0, second.output
    assert "-- save" in second.output and "-- load" in second.output


@pytest.mark.hostb
def test_only_missing_layers_over_ssh(project, app, clean_hostb, busybox_image, docker_cli):
    """The base is on host B already: the app costs a small fraction of its tar."""
    copy_image(docker_cli, busybox_image, clean_hostb.docker_host)
    s = clean_hostb.ssh_settings
    flow(project, app, "ssh://root@%s" % clean_hostb.address,
         "\n    remote_socket: %s"
         "\n    ssh: {identity_file: %s, strict_host_key_checking: \"no\", known_hosts_file: %s}"
         % (clean_hostb.socket, s["identity_file"], s["known_hosts_file"]))
    first = project.doit("load")
    assert first.returncode == 0, first.output
    percent, sent_layers, all_layers = shipped_percent(first.output)
    assert (sent_layers, all_layers) == (1, 2)
    assert percent < 5.0, first.output
    tar_id = tar_image_id(project.path("out/app.tar"))
    assert clean_hostb.docker("image", "inspect", "-f", "{{.Id}}", app).strip() == tar_id
    assert clean_hostb.docker("run", "--rm", "--network", "none", app, "cat", "/app/data.txt") == "one\n"
    assert "-- load" in project.doit("load").output


@pytest.mark.hostb
def test_full_tar_when_asked(project, app, clean_hostb, busybox_image, docker_cli):
    copy_image(docker_cli, busybox_image, clean_hostb.docker_host)
    flow(project, app, clean_hostb.docker_host, "\n    only_missing_layers: false")
    first = project.doit("load")
    assert first.returncode == 0, first.output
    assert shipped_percent(first.output)[:2] == (100.0, 2)


def _damage(path, how):
    if how == "truncated":
        with open(path, "r+b") as handle:
            handle.truncate(os.path.getsize(path) // 2)
    else:
        with open(path, "r+b") as handle:
            handle.seek(os.path.getsize(path) // 3)
            byte = handle.read(1)
            handle.seek(-1, os.SEEK_CUR)
            handle.write(bytes([byte[0] ^ 0x01]))


@pytest.mark.hostb
@pytest.mark.parametrize("how", ["truncated", "one byte changed"])
def test_damaged_tar_is_refused(project, names, busybox_image, docker_cli, clean_hostb, tmp_path, how):
    ref = names + "/app:1"
    build_app(docker_cli, busybox_image, ref, text="one", folder=str(tmp_path / "ctx"))
    flow(project, ref, clean_hostb.docker_host)
    assert project.doit("load").returncode == 0
    old_id = clean_hostb.docker("image", "inspect", "-f", "{{.Id}}", ref).strip()
    images_before = clean_hostb.docker("images", "-a", "-q", "--no-trunc")
    build_app(docker_cli, busybox_image, ref, text="two", folder=str(tmp_path / "ctx"))
    assert project.doit("save").returncode == 0
    _damage(project.path("out/app.tar"), how)
    done = project.doit("-s", "load")  # the load alone: its save would notice and save again
    assert done.returncode == 1, done.output
    assert "does not match its checksum" in done.output and "nothing was loaded" in done.output
    assert "Traceback" not in done.output
    assert clean_hostb.docker("image", "inspect", "-f", "{{.Id}}", ref).strip() == old_id
    assert clean_hostb.docker("images", "-a", "-q", "--no-trunc") == images_before


def test_target_engine_down(project, app, tmp_path):
    dead = "unix://%s/nothing.sock" % tmp_path
    flow(project, app, dead)
    assert project.doit("save").returncode == 0
    done = project.doit("load")
    assert done.returncode == 1, done.output
    lines = [line for line in done.output.splitlines() if "cannot reach" in line]
    assert len(lines) == 1 and dead in lines[0], done.output
    assert "Traceback" not in done.output


def test_into_the_local_engine_is_up_to_date(project, app):
    """The lab's default: the image is already in the engine it would load into."""
    flow(project, app, project.docker_host)
    done = project.doit("load")
    assert done.returncode == 0, done.output
    assert "-- load" in done.output
