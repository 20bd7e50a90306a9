"""build against a real engine: up to date means what the engine holds."""
import os

import pytest

from tests.support import image_id
from tests.support.builds import BUILDER_IDS, BUILDERS, left_running

pytestmark = pytest.mark.engine


def chain(project, names, busybox_image):
    """base built FROM the busybox image, app built FROM base."""
    project.write("base/Dockerfile", "FROM %s\nRUN echo base > /base.txt\n" % busybox_image)
    project.write("app/Dockerfile", "FROM %s/base\nCOPY . /app/\nRUN cat /app/data.txt\n" % names)
    project.write("app/data.txt", "one\n")
    project.write("app/.dockerignore", "*.log\n")
    project.workflow("""
        steps:
          build_base:
            kind: build
            doc: the base
            context: ../base
            image: %(n)s/base
          build_app:
            kind: build
            context: ../app
            image: %(n)s/app
        """ % {"n": names})


def test_second_run_builds_nothing(project, names, busybox_image, docker_cli):
    chain(project, names, busybox_image)
    first = project.doit("build_app")
    assert first.returncode == 0, first.output
    assert "building %s/base" % names in first.output and "building %s/app" % names in first.output
    app_id = image_id(docker_cli, names + "/app")
    second = project.doit("build_app")
    assert second.returncode == 0, second.output
    assert "-- build_base" in second.output and "-- build_app" in second.output
    assert "Step 1/" not in second.output
    assert image_id(docker_cli, names + "/app") == app_id


def test_removed_image_is_rebuilt(project, names, busybox_image, docker_cli):
    chain(project, names, busybox_image)
    assert project.doit("build_app").returncode == 0
    docker_cli("rmi", names + "/app")
    again = project.doit("build_app")
    assert again.returncode == 0, again.output
    assert "-- build_base" in again.output
    assert "building %s/app: the engine has no such image" % names in again.output
    assert image_id(docker_cli, names + "/app")


def test_touch_without_change_rebuilds_nothing(project, names, busybox_image):
    chain(project, names, busybox_image)
    assert project.doit("build_app").returncode == 0
    path = project.path("app/data.txt")
    os.utime(path, (1, 1))
    again = project.doit("build_app")
    assert "-- build_app" in again.output, again.output


def test_changed_content_rebuilds_only_that_image_and_says_why(project, names, busybox_image):
    chain(project, names, busybox_image)
    assert project.doit("build_app").returncode == 0
    project.write("app/data.txt", "two\n")
    info = project.doit("info", "build_app")  # doit's own command says why, too
    assert "build_app: rebuilding %s/app: changed: data.txt" % names in info.output, info.output
    again = project.doit("build_app")
    assert again.returncode == 0, again.output
    assert "-- build_base" in again.output
    assert "rebuilding %s/app: changed: data.txt" % names in again.output


def test_a_file_made_private_rebuilds_and_says_its_mode(project, names, busybox_image, docker_cli):
    """COPY keeps read and write bits: after chmod 600 the image must not keep the file
    readable by all (tests/test_digest.py: test_a_permission_change_reaches_the_image)."""
    chain(project, names, busybox_image)
    os.chmod(project.path("app/data.txt"), 0o644)
    assert project.doit("build_app").returncode == 0
    os.chmod(project.path("app/data.txt"), 0o600)
    again = project.doit("build_app")
    assert again.returncode == 0, again.output
    assert "rebuilding %s/app: changed: data.txt (mode 644 -> 600)" % names in again.output
    mode = docker_cli("run", "--rm", names + "/app", "/bin/busybox", "stat", "-c", "%a", "/app/data.txt")
    assert mode.strip() == "600"


def test_ignored_file_rebuilds_nothing(project, names, busybox_image):
    chain(project, names, busybox_image)
    assert project.doit("build_app").returncode == 0
    project.write("app/debug.log", "noise\n")
    assert "-- build_app" in project.doit("build_app").output


def test_changed_base_cascades_to_app(project, names, busybox_image, docker_cli):
    chain(project, names, busybox_image)
    assert project.doit("build_app").returncode == 0
    app_id = image_id(docker_cli, names + "/app")
    project.write("base/Dockerfile", "FROM %s\nRUN echo base2 > /base.txt\n" % busybox_image)
    again = project.doit("build_app")
    assert again.returncode == 0, again.output
    assert "rebuilding %s/base" % names in again.output
    assert "base image %s/base is new" % names in again.output
    assert image_id(docker_cli, names + "/app") != app_id


def test_changed_build_arg_rebuilds(project, names, busybox_image):
    project.write("c/Dockerfile", "FROM %s\nARG WHO\nRUN echo $WHO > /who\n" % busybox_image)
    flow = """
        steps:
          one:
            kind: build
            context: ../c
            image: %s/one
            args: {WHO: %s}
        """
    project.workflow(flow % (names, "ann"))
    assert project.doit("one").returncode == 0
    project.workflow(flow % (names, "bob"))
    again = project.doit("one")
    assert "the step's definition changed" in again.output, again.output


@pytest.mark.parametrize("builder", BUILDERS, ids=BUILDER_IDS)
def test_failing_build_names_instruction_and_output(project, names, busybox_image, docker_cli, builder):
    project.write("bad/Dockerfile", "FROM %s\nRUN echo about to fail && false\n" % busybox_image)
    project.workflow("""
        steps:
          broken:
            kind: build
            context: ../bad
            image: %s/broken
        """ % names)
    done = project.doit("broken", env=builder)
    assert done.returncode == 1
    assert ("FAILED broken: build of %s/broken from bad/Dockerfile failed at `RUN echo about to fail && false`"
            % names) in done.output
    assert "about to fail" in done.output
    assert "Traceback" not in done.output
    assert not docker_cli("images", "-q", names + "/broken").strip()


def test_dockerfile_outside_the_context_is_an_input(project, names, busybox_image):
    project.write("ctx/data.txt", "x\n")
    project.write("dockerfiles/Dockerfile.special", "FROM %s\nCOPY data.txt /data.txt\n" % busybox_image)
    project.workflow("""
        steps:
          special:
            kind: build
            context: ../ctx
            dockerfile: ../dockerfiles/Dockerfile.special
            image: %s/special
        """ % names)
    first = project.doit("special")
    assert first.returncode == 0, first.output
    assert "-- special" in project.doit("special").output
    project.write("dockerfiles/Dockerfile.special", "FROM %s\nCOPY data.txt /other.txt\n" % busybox_image)
    again = project.doit("special")
    assert again.returncode == 0, again.output
    assert "rebuilding %s/special: changed: ../dockerfiles/Dockerfile.special" % names in again.output


def test_the_context_sent_is_the_context_hashed(project, names, busybox_image, docker_cli):
    """Docker reads `[!a]bc` as "! or a, then bc": abc is ignored. The SDK's own reading
    would send it; the build must send exactly what the up-to-date check hashed."""
    project.write("c/Dockerfile", "FROM %s\nCOPY . /app/\n" % busybox_image)
    project.write("c/.dockerignore", "[!a]bc\n")
    project.write("c/abc", "ignored\n")
    project.write("c/kept.txt", "kept\n")
    project.workflow("""
        steps:
          sent:
            kind: build
            context: ../c
            image: %s/sent
        """ % names)
    assert project.doit("sent").returncode == 0
    listing = docker_cli("run", "--rm", names + "/sent", "ls", "/app").split()
    assert "kept.txt" in listing and "abc" not in listing
    project.write("c/abc", "still ignored\n")
    assert "-- sent" in project.doit("sent").output


def test_another_image_under_the_name_is_rebuilt(project, names, busybox_image, docker_cli):
    """Someone tags another image as ours: the engine's image is not the one this step built."""
    chain(project, names, busybox_image)
    assert project.doit("build_app").returncode == 0
    built = image_id(docker_cli, names + "/app")
    docker_cli("tag", busybox_image, names + "/app")
    again = project.doit("build_app")
    assert again.returncode == 0, again.output
    assert "rebuilding %s/app: the engine's image of that name" % names in again.output
    assert image_id(docker_cli, names + "/app") == built  # Docker's cache gives the same image back


def test_lost_state_costs_a_cached_build_and_keeps_the_image(project, names, busybox_image, docker_cli):
    chain(project, names, busybox_image)
    assert project.doit("build_app").returncode == 0
    built = {ref: image_id(docker_cli, ref) for ref in (names + "/base", names + "/app")}
    os.remove(project.path(".dockflow/doit.sqlite3"))
    again = project.doit("build_app")
    assert again.returncode == 0, again.output
    assert "no successful build of it is recorded in this project" in again.output
    assert "(cached)" in again.output  # BuildKit's word for it
    assert {ref: image_id(docker_cli, ref) for ref in built} == built
    assert "-- build_app" in project.doit("build_app").output


def test_no_label_step_is_added_to_the_build(project, names, busybox_image, docker_cli):
    """A label would make the legacy builder add a step (a container committed) to every build."""
    chain(project, names, busybox_image)
    done = project.doit("build_app")
    assert done.returncode == 0, done.output
    assert "LABEL" not in done.output
    labels = docker_cli("image", "inspect", "-f", "{{json .Config.Labels}}", names + "/app")
    assert "io.dockflow" not in labels


def test_cache_from_step_stays_up_to_date_when_the_state_is_lost(project, names, busybox_image, docker_cli):
    """With --cache-from the legacy builder rebuilds the step's own layers (a new id),
    so the digest lives on the image as a label and a lost state rebuilds nothing."""
    project.write("base/Dockerfile", "FROM %s\nRUN echo one > /one\n" % busybox_image)
    project.write("app/Dockerfile", "FROM %s\nRUN echo one > /one\nRUN echo two > /two\n" % busybox_image)
    project.workflow("""
        steps:
          base: {kind: build, context: ../base, image: %(n)s/cbase}
          app: {kind: build, context: ../app, image: %(n)s/capp, cache_from: ["%(n)s/cbase"], needs: [base]}
        """ % {"n": names})
    assert project.doit("app").returncode == 0
    built = image_id(docker_cli, names + "/capp")
    os.remove(project.path(".dockflow/doit.sqlite3"))
    again = project.doit("app")
    assert again.returncode == 0, again.output
    assert "-- app" in again.output
    assert image_id(docker_cli, names + "/capp") == built


@pytest.mark.parametrize("door", ["socket", "sdk"])
def test_target_labels_and_args_reach_the_engine(project, names, busybox_image, docker_cli, tmp_path, door):
    """The build request goes over the engine's socket, or through the SDK when the
    docker config holds registry credentials (only the SDK forwards them): each
    sends the step's target, build args and labels."""
    project.write("m/Dockerfile", "FROM %s AS first\nARG WHO\nRUN echo $WHO > /who\n"
                                  "FROM first AS second\nRUN echo second stage > /second\n" % busybox_image)
    project.workflow("""
        steps:
          multi:
            kind: build
            context: ../m
            image: %s/multi
            target: first
            args: {WHO: ann}
            labels: {io.example.team: lab}
        """ % names)
    config = tmp_path / "docker-config"
    config.mkdir()
    if door == "sdk":
        (config / "config.json").write_text('{"auths": {"registry.invalid": {"auth": "dTpw"}}}')
    done = project.doit("multi", env={"DOCKER_CONFIG": str(config)})
    assert done.returncode == 0, done.output
    ref = names + "/multi"
    assert docker_cli("run", "--rm", ref, "cat", "/who").strip() == "ann"
    assert docker_cli("image", "inspect", "-f", '{{index .Config.Labels "io.example.team"}}', ref).strip() == "lab"
    assert "second stage" not in done.output  # the target's stage is the last one built


def test_a_dockerfile_the_engine_refuses_is_a_clear_error(project, names):
    project.write("bad/Dockerfile", "FROMM nothing\n")
    project.workflow("""
        steps:
          refused:
            kind: build
            context: ../bad
            image: %s/refused
        """ % names)
    done = project.doit("refused")
    assert done.returncode == 1, done.output
    # the legacy builder refuses the request, BuildKit fails in its stream: the same words
    assert ("refused: build of %s/refused from bad/Dockerfile" % names) in done.output
    assert "dockerfile parse error line 1: unknown instruction: FROMM" in done.output
    assert "failed to solve" not in done.output and "LLB" not in done.output
    assert "Traceback" not in done.output


@pytest.mark.parametrize("builder", BUILDERS, ids=BUILDER_IDS)
def test_ctrl_c_during_a_build_stops_it_in_one_line(project, names, busybox_image, docker_cli, builder):
    """SIGINT while the engine builds: doit exits 130 with one line and no traceback,
    the RUN is stopped (the legacy builder's container removed), no image is made, the
    next run builds."""
    import signal

    project.write("slow/Dockerfile", "FROM %s\nRUN echo started && echo %s-marker && sleep 3600\n"
                  % (busybox_image, names))
    project.workflow("""
        steps:
          slow: {kind: build, context: ../slow, image: %s/slow}
        """ % names)
    process = project.start("slow", env=builder)
    with process.stdout:
        seen = []
        for line in process.stdout:  # the RUN has started once the container says so
            seen.append(line)
            if "| started" in line:
                break
        process.send_signal(signal.SIGINT)
        output = "".join(seen) + process.stdout.read()
    assert process.wait(timeout=300) == 130, output  # a hang guard, not a measure
    assert "interrupted (Ctrl-C)" in output and "Traceback" not in output, output
    assert not docker_cli("images", "-q", names + "/slow").strip()
    # the legacy builder would let the RUN sleep on for an hour: its container is gone
    assert left_running(docker_cli, names + "-marker") == []
    project.write("slow/Dockerfile", "FROM %s\nRUN echo started\n" % busybox_image)
    again = project.doit("slow")
    assert again.returncode == 0 and ".  slow" in again.output, again.output


def test_a_run_s_stderr_reaches_the_output_without_terminal_colours(project, names, busybox_image):
    """The legacy builder wraps a RUN's stderr in red escapes; a log file must not hold them."""
    project.write("bad/Dockerfile", "FROM %s\nRUN ls /nope\n" % busybox_image)
    project.workflow("""
        steps:
          colours: {kind: build, context: ../bad, image: %s/colours}
        """ % names)
    done = project.doit("colours")
    assert done.returncode == 1, done.output
    assert "| ls: /nope: No such file or directory" in done.output
    assert "\x1b" not in done.output


def test_a_reader_that_goes_away_stops_the_run_quietly(project, names, busybox_image, docker_cli):
    """`doit slow | head -3`: like a command SIGPIPE stops, exit 141, no traceback or
    logging error on stderr, and the RUN's container is not left running."""
    import subprocess

    project.write("slow/Dockerfile", "FROM %s\nRUN echo one && sleep 1 && echo two && sleep 1 && echo three "
                                     "&& echo %s-marker && sleep 3600\n" % (busybox_image, names))
    project.workflow("""
        steps:
          slow: {kind: build, context: ../slow, image: %s/piped}
        """ % names)
    process = project.start("slow", stderr=subprocess.PIPE)
    for line in process.stdout:
        if "| one" in line:
            break
    process.stdout.close()  # the reader goes; the build goes on printing
    with process.stderr:
        errors = process.stderr.read()
    assert process.wait(timeout=300) == 141, errors  # a hang guard, not a measure
    assert "Traceback" not in errors and "Logging error" not in errors, errors
    assert left_running(docker_cli, names + "-marker") == []


def test_folders_reach_the_build_as_docker_build_sends_them(project, names, busybox_image, docker_cli):
    """An empty folder and a folder's mode reach the image as they do with `docker build`
    (compared with the CLI's own build of the same context); a folder excluded but
    entered for a `!` pattern is sent by neither, so the engine makes it 0755. An
    empty folder added later rebuilds."""
    project.write("c/Dockerfile", "FROM %s\nCOPY . /ctx/\n" % busybox_image)
    project.write("c/.dockerignore", "hidden\n!hidden/keep.txt\n")
    project.write("c/private/data.txt", "data\n")
    project.write("c/hidden/keep.txt", "kept\n")
    os.makedirs(project.path("c/empty"))
    os.makedirs(project.path("c/open/inner"))
    for folder, mode in (("private", 0o700), ("hidden", 0o700), ("empty", 0o750), ("open", 0o777)):
        os.chmod(project.path("c/" + folder), mode)
    project.workflow("""
        steps:
          folders:
            kind: build
            context: ../c
            image: %s/ours
        """ % names)
    assert project.doit("folders").returncode == 0

    def modes(image):
        """(mode, path) of every folder under /ctx, as ls shows them."""
        listing = docker_cli("run", "--rm", image, "ls", "-ldR", "/ctx", "/ctx/empty", "/ctx/private",
                             "/ctx/hidden", "/ctx/open", "/ctx/open/inner")
        return sorted((line.split()[0], line.split()[-1]) for line in listing.splitlines())

    docker_cli("build", "-q", "-t", names + "/cli", project.path("c"))
    ours = modes(names + "/ours")
    assert ours == modes(names + "/cli")
    assert ("drwxr-x---", "/ctx/empty") in ours and ("drwx------", "/ctx/private") in ours
    assert ("drwxrwxrwx", "/ctx/open") in ours and ("drwxr-xr-x", "/ctx/hidden") in ours

    os.makedirs(project.path("c/later"))
    again = project.doit("folders")
    assert again.returncode == 0 and "later (new)" in again.output, again.output


def test_dockerfile_syntax_of_buildkit_builds(project, names, busybox_image, docker_cli):
    """RUN --mount, which `docker build` reads since Engine 23 made BuildKit its builder
    (the legacy builder: `Unknown flag: mount`)."""
    project.write("modern/Dockerfile", "FROM %s\nRUN --mount=type=cache,target=/cache "
                  "echo kept > /cache/note && cat /cache/note > /seen\n" % busybox_image)
    project.workflow("""
        steps:
          modern: {kind: build, context: ../modern, image: %s/modern}
        """ % names)
    done = project.doit("modern")
    assert done.returncode == 0, done.output
    assert docker_cli("run", "--rm", names + "/modern", "cat", "/seen").strip() == "kept"
    assert docker_cli("run", "--rm", names + "/modern", "ls", "/cache").strip() == ""  # the cache is not in the image
