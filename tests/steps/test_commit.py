"""commit against a real engine: run a command in a container, keep the result."""
import pytest

pytestmark = pytest.mark.engine

DATA = "This is a sample production piece of data"


def flow(project, names, busybox_image, command=None):
    project.write("app/Dockerfile", 'FROM %s\nWORKDIR /data\nCMD ["sh", "-c", "echo default"]\n' % busybox_image)
    command = command or '[sh, -c, "echo %s > prod_test_data.txt"]' % DATA
    project.workflow("""
        steps:
          build_app:
            kind: build
            context: ../app
            image: %(n)s/app
          commit_test_data:
            kind: commit
            source: %(n)s/app
            image: %(n)s/app-test
            command: %(c)s
            message: test data
        """ % {"n": names, "c": command})


def our_containers(docker_cli, names):
    return docker_cli("ps", "-aq", "--filter", "ancestor=%s/app" % names).split()


def test_commit_twice_second_changes_nothing(project, names, busybox_image, docker_cli):
    flow(project, names, busybox_image)
    first = project.doit("commit_test_data")
    assert first.returncode == 0, first.output
    assert "committing %s/app-test: the engine has no such image" % names in first.output
    image_id = docker_cli("image", "inspect", "-f", "{{.Id}}", names + "/app-test").strip()
    out = docker_cli("run", "--rm", names + "/app-test", "cat", "prod_test_data.txt")
    assert out.strip() == DATA
    # the source's CMD is kept, not the command that wrote the data
    assert docker_cli("run", "--rm", names + "/app-test").strip() == "default"
    assert "test data" in docker_cli("history", "--format", "{{.Comment}}", names + "/app-test")
    assert our_containers(docker_cli, names) == []

    second = project.doit("commit_test_data")
    assert second.returncode == 0, second.output
    assert "-- build_app" in second.output and "-- commit_test_data" in second.output
    assert docker_cli("image", "inspect", "-f", "{{.Id}}", names + "/app-test").strip() == image_id
    assert our_containers(docker_cli, names) == []


def test_changed_command_commits_again_and_says_why(project, names, busybox_image):
    flow(project, names, busybox_image)
    assert project.doit("commit_test_data").returncode == 0
    flow(project, names, busybox_image, command='[sh, -c, "echo other > prod_test_data.txt"]')
    again = project.doit("commit_test_data")
    assert again.returncode == 0, again.output
    assert "the step's definition changed" in again.output


def test_failing_command_commits_nothing_and_removes_container(project, names, busybox_image, docker_cli):
    flow(project, names, busybox_image, command='[sh, -c, "echo about to fail; exit 3"]')
    done = project.doit("commit_test_data")
    assert done.returncode == 1, done.output
    assert "exited with 3" in done.output and "about to fail" in done.output
    assert "Traceback" not in done.output
    assert not docker_cli("images", "-q", names + "/app-test").strip()
    assert our_containers(docker_cli, names) == []


def test_a_killed_run_leaves_a_container_that_prune_removes(project, names, busybox_image, docker_cli):
    """A run killed half way cannot remove its temporary container; the container
    carries the project's label, so `prune` with `containers: true` takes it."""
    import os
    import signal
    import subprocess
    import time

    flow(project, names, busybox_image, command="[sleep, '600']")
    project.workflow("""
        steps:
          tidy:
            kind: prune
            dangling: false
            containers: true
        """, name="prune.yaml")
    assert project.doit("build_app").returncode == 0
    run = project.start("commit_test_data", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        start_new_session=True)
    left = []
    try:
        for _ in range(600):  # until the step's container runs (not a time bound on the result)
            left = docker_cli("ps", "-q", "--filter", "ancestor=%s/app" % names).split()  # running ones
            if left:
                break
            time.sleep(0.1)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert len(left) == 1
    try:
        labels = docker_cli("inspect", "-f", '{{index .Config.Labels "io.dockflow.project"}}', left[0]).strip()
        assert labels == os.path.realpath(project.root)
        docker_cli("stop", "-t", "1", left[0])
        done = project.doit("tidy")
        assert done.returncode == 0, done.output
        assert our_containers(docker_cli, names) == []
    finally:
        docker_cli("rm", "-f", *left, check=False)
