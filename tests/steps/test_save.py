"""save against a real engine: a streamed tar, its sha256 beside it, up to date
only while the tar holds the image id the engine has now."""
import gzip
import os

import pytest

from tests.support.shipping import build_app, sha256, tar_image_id

pytestmark = pytest.mark.engine


def save_flow(project, ref, extra=""):
    project.workflow("""
        steps:
          save:
            kind: save
            image: %s
            tar: ../out/app.tar%s
        """ % (ref, extra))
    return project.path("out/app.tar")


def test_second_run_saves_nothing(project, names, busybox_image, docker_cli, tmp_path):
    ref = names + "/app:1"
    image_id = build_app(docker_cli, busybox_image, ref, folder=str(tmp_path / "ctx"))
    tar = save_flow(project, ref)
    first = project.doit("save")
    assert first.returncode == 0, first.output
    assert "saved %s" % ref in first.output
    assert tar_image_id(tar) == image_id
    with open(tar + ".sha256") as handle:
        assert handle.read() == "%s  app.tar\n" % sha256(tar)
    assert not [n for n in os.listdir(project.path("out")) if "partial" in n]
    mtime = os.stat(tar).st_mtime_ns
    second = project.doit("save")
    assert second.returncode == 0, second.output
    assert "-- save" in second.output and "saved" not in second.output
    assert os.stat(tar).st_mtime_ns == mtime


def test_new_image_under_the_same_name_is_saved_again(project, names, busybox_image, docker_cli, tmp_path):
    ref = names + "/app:1"
    build_app(docker_cli, busybox_image, ref, text="one", folder=str(tmp_path / "ctx"))
    tar = save_flow(project, ref)
    assert project.doit("save").returncode == 0
    new_id = build_app(docker_cli, busybox_image, ref, text="two", folder=str(tmp_path / "ctx"))
    again = project.doit("save")
    assert again.returncode == 0, again.output
    assert "saving %s again: it is now %s" % (ref, new_id[7:19]) in again.output
    assert tar_image_id(tar) == new_id


def test_tar_changed_on_disk_is_saved_again(project, names, busybox_image, docker_cli, tmp_path):
    ref = names + "/app:1"
    build_app(docker_cli, busybox_image, ref, folder=str(tmp_path / "ctx"))
    tar = save_flow(project, ref)
    assert project.doit("save").returncode == 0
    good = sha256(tar)
    with open(tar, "r+b") as handle:
        handle.seek(4000)
        byte = handle.read(1)
        handle.seek(4000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    again = project.doit("save")
    assert again.returncode == 0, again.output
    assert "does not match its checksum file" in again.output
    assert sha256(tar) == good


def test_lost_state_still_up_to_date(project, names, busybox_image, docker_cli, tmp_path):
    """Without doit's records the tar itself says which image it holds."""
    ref = names + "/app:1"
    build_app(docker_cli, busybox_image, ref, folder=str(tmp_path / "ctx"))
    save_flow(project, ref)
    assert project.doit("save").returncode == 0
    removed = [name for name in os.listdir(project.path(".dockflow")) if name.startswith("doit")]
    assert removed  # doit's state file is there to lose
    for name in removed:
        os.unlink(project.path(".dockflow/" + name))
    again = project.doit("save")
    assert "-- save" in again.output, again.output


def test_gzip(project, names, busybox_image, docker_cli, tmp_path):
    ref = names + "/app:1"
    image_id = build_app(docker_cli, busybox_image, ref, folder=str(tmp_path / "ctx"))
    project.workflow("""
        steps:
          save:
            kind: save
            image: %s
            tar: ../out/app.tar.gz
            gzip: true
        """ % ref)
    first = project.doit("save")
    assert first.returncode == 0, first.output
    tar = project.path("out/app.tar.gz")
    with gzip.open(tar) as unpacked:
        unpacked.read(512)
    assert tar_image_id(tar) == image_id
    assert "-- save" in project.doit("save").output


def test_missing_image_is_one_clear_line(project, names):
    save_flow(project, names + "/nothing:1")
    done = project.doit("save")
    assert done.returncode != 0
    assert "image %s/nothing:1 is not in the engine" % names in done.output
    assert "Traceback" not in done.output
    assert not os.path.exists(project.path("out/app.tar"))


def test_engine_down(project, tmp_path, names):
    save_flow(project, names + "/app:1", extra="\n            docker_host: unix://%s/nothing.sock" % tmp_path)
    done = project.doit("save")
    assert done.returncode == 1, done.output
    assert "cannot reach the Docker engine at unix://%s/nothing.sock" % tmp_path in done.output
    assert "Traceback" not in done.output
