"""import against a real engine: a root filesystem -> an image, no registry."""
import os
import tarfile

import pytest

from tests.conftest import BUSYBOX
from tests.support import image_id

pytestmark = pytest.mark.engine


def run_in(docker_cli, ref, *command):
    return docker_cli("run", "--rm", ref, *command)


def files_flow(project, names, extra=""):
    project.workflow("""
        steps:
          rootfs:
            kind: import
            doc: busybox from host files
            image: %s/base:1
            files: {bin/busybox: %s, etc/motd: ../motd}
            symlinks: {bin/sh: busybox, bin/cat: busybox}
            changes: ['CMD ["sh"]']
        %s""" % (names, BUSYBOX, extra))


def test_files_and_symlinks_run_twice(project, names, docker_cli):
    project.write("motd", "hello\n")
    files_flow(project, names)
    first = project.doit("rootfs")
    assert first.returncode == 0, first.output
    assert "importing %s/base:1: the engine has no such image" % names in first.output
    ref = names + "/base:1"
    assert run_in(docker_cli, ref, "cat", "/etc/motd") == "hello\n"
    assert run_in(docker_cli, ref, "sh", "-c", "echo from-sh") == "from-sh\n"
    first_id = image_id(docker_cli, ref)
    second = project.doit("rootfs")
    assert second.returncode == 0, second.output
    assert "-- rootfs" in second.output and "importing" not in second.output
    assert image_id(docker_cli, ref) == first_id


def test_changed_host_file_reimports(project, names, docker_cli):
    project.write("motd", "hello\n")
    files_flow(project, names)
    assert project.doit("rootfs").returncode == 0
    first_id = image_id(docker_cli, names + "/base:1")
    os.utime(project.path("motd"), (1, 1))  # touched, same content
    assert "-- rootfs" in project.doit("rootfs").output
    project.write("motd", "changed\n")
    again = project.doit("rootfs")
    assert again.returncode == 0, again.output
    assert "re-importing %s/base:1: its root filesystem or definition changed" % names in again.output
    assert image_id(docker_cli, names + "/base:1") != first_id
    assert run_in(docker_cli, names + "/base:1", "cat", "/etc/motd") == "changed\n"


def test_from_a_folder(project, names, docker_cli):
    os.makedirs(project.path("rootfs/bin"))
    os.makedirs(project.path("rootfs/srv/data"))
    with open(BUSYBOX, "rb") as source, open(project.path("rootfs/bin/busybox"), "wb") as target:
        target.write(source.read())
    os.chmod(project.path("rootfs/bin/busybox"), 0o755)
    os.symlink("busybox", project.path("rootfs/bin/cat"))
    project.write("rootfs/srv/data/file.txt", "in a folder\n")
    project.workflow("""
        steps:
          fromdir: {kind: import, image: %s/dir, rootfs: ../rootfs}
        """ % names)
    assert project.doit("fromdir").returncode == 0
    assert run_in(docker_cli, names + "/dir", "/bin/cat", "/srv/data/file.txt") == "in a folder\n"
    assert "-- fromdir" in project.doit("fromdir").output
    project.write("rootfs/srv/data/new.txt", "new\n")
    again = project.doit("fromdir")
    assert "re-importing" in again.output, again.output


def test_from_a_tar(project, names, docker_cli):
    tar_path = project.path("rootfs.tar")
    with tarfile.open(tar_path, "w") as archive:
        archive.add(BUSYBOX, arcname="bin/busybox")
        link = tarfile.TarInfo("bin/echo")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        archive.addfile(link)
    project.workflow("""
        steps:
          fromtar: {kind: import, image: %s/tar:2, tar: ../rootfs.tar, changes: ['ENV GREETING=hi']}
        """ % names)
    first = project.doit("fromtar")
    assert first.returncode == 0, first.output
    assert run_in(docker_cli, names + "/tar:2", "/bin/echo", "ok") == "ok\n"
    assert docker_cli("image", "inspect", "-f", "{{.Config.Env}}", names + "/tar:2").strip() == "[GREETING=hi]"
    assert "-- fromtar" in project.doit("fromtar").output


def test_removed_image_is_imported_again(project, names, docker_cli):
    project.write("motd", "hello\n")
    files_flow(project, names)
    assert project.doit("rootfs").returncode == 0
    docker_cli("rmi", names + "/base:1")
    again = project.doit("rootfs")
    assert "importing %s/base:1: the engine has no such image" % names in again.output
    assert image_id(docker_cli, names + "/base:1")


def test_missing_sources_fail_that_step_clearly(project, names):
    """A run-time failure of that step only (b7964e1), so other steps stay usable."""
    project.workflow("""
        steps:
          bad: {kind: import, image: %s/x, files: {bin/busybox: /no/such/busybox}, rootfs: ../nowhere}
        """ % names)
    done = project.doit("bad")
    assert done.returncode == 1, done.output
    assert "steps.bad.rootfs: ../nowhere does not exist" in done.output
    assert "steps.bad.files.bin/busybox: /no/such/busybox does not exist on this machine" in done.output
    assert "Traceback" not in done.output


def test_the_same_project_in_another_folder_imports_nothing(project, names, tmp_path):
    """A fresh clone elsewhere holds the same files: its import is already done."""
    import shutil
    import subprocess
    import sys

    project.write("root/etc/motd", "hello\n")
    project.workflow("""
        steps:
          base: {kind: import, image: %s/x, files: {etc/motd: ../root/etc/motd, bin/busybox: /bin/busybox}}
        """ % names)
    assert project.doit("base").returncode == 0
    clone = tmp_path.parent / (tmp_path.name + "-elsewhere")
    shutil.copytree(project.root, clone, ignore=shutil.ignore_patterns(".dockflow"))
    moved = subprocess.run([sys.executable, "-m", "doit", "base"], cwd=clone, capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(
                               os.path.abspath(__file__)))), DOCKER_HOST=project.docker_host))
    assert moved.returncode == 0, moved.stderr
    assert "-- base" in moved.stdout


def test_a_change_the_engine_refuses_is_a_clear_error(project, names, docker_cli):
    project.workflow("""
        steps:
          rootfs:
            kind: import
            image: %s/base:1
            files: {bin/busybox: %s}
            changes: ['CMD ["sh"]', 'FOO bar']
        """ % (names, BUSYBOX))
    done = project.doit("rootfs")
    assert done.returncode == 1, done.output
    assert "FAILED rootfs: import of %s/base:1: foo is not a valid change command" % names in done.output
    assert "Traceback" not in done.output
    assert not docker_cli("images", "-q", names + "/base:1").strip()
