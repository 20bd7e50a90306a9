"""copy_out against a real engine: a file or folder of an image into the project."""
import os

import pytest

pytestmark = pytest.mark.engine


def flow(project, names, busybox_image, path="/var/www/html/VERSION", target="../build/VERSION", version="1.0.0"):
    project.write("app/VERSION", version + "\n")
    project.write("app/Dockerfile", "FROM %s\nWORKDIR /var/www/html/\nADD VERSION /var/www/html/\n"
                                    "RUN mkdir -p sub && echo deep > sub/deep.txt\n" % busybox_image)
    project.workflow("""
        steps:
          build_app:
            kind: build
            context: ../app
            image: %(n)s/app
          copy_version:
            kind: copy_out
            source: %(n)s/app
            path: %(p)s
            target: %(t)s
        """ % {"n": names, "p": path, "t": target})


def containers_of(docker_cli, names):
    return docker_cli("ps", "-aq", "--filter", "ancestor=%s/app" % names).split()


def test_copy_twice_second_changes_nothing(project, names, busybox_image, docker_cli):
    flow(project, names, busybox_image)
    first = project.doit("copy_version")
    assert first.returncode == 0, first.output
    assert "the target does not exist" in first.output
    target = project.path("build/VERSION")
    with open(target) as handle:
        assert handle.read() == "1.0.0\n"
    stamp = os.stat(target).st_mtime_ns, os.stat(target).st_ino
    assert containers_of(docker_cli, names) == []

    second = project.doit("copy_version")
    assert second.returncode == 0, second.output
    assert "-- copy_version" in second.output
    assert (os.stat(target).st_mtime_ns, os.stat(target).st_ino) == stamp
    assert containers_of(docker_cli, names) == []
    assert [n for n in os.listdir(project.path("build")) if "partial" in n] == []


def test_new_source_image_copies_again(project, names, busybox_image):
    flow(project, names, busybox_image)
    assert project.doit("copy_version").returncode == 0
    project.write("app/VERSION", "1.0.1\n")
    again = project.doit("copy_version")
    assert again.returncode == 0, again.output
    assert "source image %s/app is new" % names in again.output
    with open(project.path("build/VERSION")) as handle:
        assert handle.read() == "1.0.1\n"


def test_removed_target_is_copied_again(project, names, busybox_image):
    flow(project, names, busybox_image)
    assert project.doit("copy_version").returncode == 0
    os.unlink(project.path("build/VERSION"))
    again = project.doit("copy_version")
    assert "the target does not exist" in again.output, again.output
    assert os.path.isfile(project.path("build/VERSION"))


def test_folder_copy(project, names, busybox_image):
    flow(project, names, busybox_image, path="/var/www/html", target="../build/html")
    done = project.doit("copy_version")
    assert done.returncode == 0, done.output
    with open(project.path("build/html/sub/deep.txt")) as handle:
        assert handle.read() == "deep\n"
    assert os.path.isfile(project.path("build/html/VERSION"))
    assert "-- copy_version" in project.doit("copy_version").output


def test_missing_path_fails_clearly_and_leaves_no_file(project, names, busybox_image, docker_cli):
    flow(project, names, busybox_image, path="/var/www/html/NOPE", target="../build/NOPE")
    done = project.doit("copy_version")
    assert done.returncode == 1, done.output
    assert "steps.copy_version.path: /var/www/html/NOPE is not in image %s/app" % names in done.output
    assert "Traceback" not in done.output
    assert not os.path.lexists(project.path("build/NOPE"))
    leftovers = os.listdir(project.path("build")) if os.path.isdir(project.path("build")) else []
    assert leftovers == []
    assert containers_of(docker_cli, names) == []
