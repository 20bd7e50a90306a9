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


def test_modes_follow_the_umask_and_links_stay_links(project, names, busybox_image):
    """A 0777 file and folder of the image land 0700 under umask 077 (as tar unpacks for a
    user; `docker cp` would keep 0777); an absolute link, which Python's `data` filter
    refused with a traceback, is copied as the link it is, as a relative one is."""
    project.write("app/Dockerfile", "FROM %s\nRUN mkdir -p /d/sub && echo x > /d/f && echo y > /d/sub/g "
                                    "&& chmod 0777 /d/f /d/sub /d && chmod 0750 /d/sub/g "
                                    "&& ln -s /bin/busybox /d/abs && ln -s ../etc /d/rel\n" % busybox_image)
    project.workflow("""
        steps:
          build_app: {kind: build, context: ../app, image: %(n)s/app}
          copy_folder: {kind: copy_out, source: %(n)s/app, path: /d, target: ../build/d}
          copy_file: {kind: copy_out, source: %(n)s/app, path: /d/f, target: ../build/f}
        """ % {"n": names})
    saved = os.umask(0o077)
    try:
        done = project.doit("copy_folder", "copy_file")
    finally:
        os.umask(saved)
    assert done.returncode == 0, done.output
    assert "Traceback" not in done.output

    def mode(relpath):
        return oct(os.lstat(project.path(relpath)).st_mode & 0o7777)

    assert [mode(p) for p in ("build/f", "build/d", "build/d/f", "build/d/sub", "build/d/sub/g")] == \
        [oct(0o700), oct(0o700), oct(0o700), oct(0o700), oct(0o700 & 0o750)]
    assert os.readlink(project.path("build/d/abs")) == "/bin/busybox"
    assert os.readlink(project.path("build/d/rel")) == "../etc"


def test_a_whole_bin_folder_of_links(project, names, busybox_image):
    """/bin of the busybox image: one binary and a folder of links to it."""
    flow(project, names, busybox_image, path="/bin", target="../build/bin")
    done = project.doit("copy_version")
    assert done.returncode == 0, done.output
    assert os.readlink(project.path("build/bin/sh")) == "busybox"
    assert os.path.isfile(project.path("build/bin/busybox"))


HOLD_UNPACK = '''
import os

from tasks.steps import copy_out

_write_folder = copy_out._write_folder


def _held(step, tar, target):
    """Unpack as usual, but stop before the swap until the test kills this run."""
    real = copy_out.os.rename

    def rename(source, destination):
        copy_out.os.rename = real
        open(%(ready)r, "w").close()
        with open(%(fifo)r) as pipe:
            pipe.read()
        return real(source, destination)

    copy_out.os.rename = rename
    return _write_folder(step, tar, target)


copy_out._write_folder = _held
'''


def test_a_killed_folder_copy_is_swept_by_the_next_run(project, names, busybox_image, docker_cli):
    """kill -9 between unpacking and the swap leaves the unpacked folder and the
    temporary container; the next run of the step removes both, then copies."""
    import signal
    import subprocess
    import sys
    import time

    flow(project, names, busybox_image, path="/var/www/html", target="../build/html")
    assert project.doit("build_app").returncode == 0
    ready, fifo = project.path("ready"), project.path("go")
    os.mkfifo(fifo)
    project.write("hold_unpack.py", HOLD_UNPACK % {"ready": ready, "fifo": fifo})
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([project.root, repo]), DOCKER_HOST=project.docker_host)
    held = subprocess.Popen([sys.executable, "-c", "import hold_unpack, runpy, sys; sys.argv = ['doit', "
                             "'copy_version']; runpy.run_module('doit', run_name='__main__')"],
                            cwd=project.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while not os.path.exists(ready):
            assert held.poll() is None, "the run ended before it unpacked"
            time.sleep(0.05)
    finally:
        os.killpg(held.pid, signal.SIGKILL)
        held.wait()
    partials = [n for n in os.listdir(project.path("build")) if n.startswith(".html.partial-%d-" % held.pid)]
    assert len(partials) == 1 and not os.path.exists(project.path("build/html"))
    left = docker_cli("ps", "-aq", "--filter", "label=io.dockflow.temporary=copy_version",
                      "--filter", "label=io.dockflow.project=" + os.path.realpath(project.root)).split()
    assert len(left) == 1

    again = project.doit("copy_version")
    assert again.returncode == 0, again.output
    assert os.listdir(project.path("build")) == ["html"]
    assert containers_of(docker_cli, names) == []
