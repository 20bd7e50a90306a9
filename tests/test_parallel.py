"""Steps run at once (doit -n N, and by default where a run has independent steps):
output a person can read, one FAILED line per failed step, two runs of one step that
build once, and Ctrl-C, a closed pipe or a killed worker that stop every running step."""
import os
import re
import signal
import subprocess

import pytest

from tasks import workers
from tests.support.builds import LEGACY_BUILDER, left_running

# Every line a run prints: doit's `.  step` / `-- step`, a step's own `   step: ...`, or a
# tool's line tagged with its step's name, padded so that the bars line up.
HEADER = re.compile(r"^(\.  |-- )\w+$")
SAID = re.compile(r"^   \w+: ")
TAGGED = re.compile(r"^   (?P<step>\w+) *\| ")
RUNNING_IN = re.compile(r"Running in ([0-9a-f]{12})")


def lab_like(project, names, busybox_image):
    """The issue's run: slow_app beside build_app, and two steps that read build_app's image."""
    project.write("slow/Dockerfile", "FROM %s\nRUN echo slow-one && sleep 1 && echo slow-two\n" % busybox_image)
    project.write("app/Dockerfile", "FROM %s\nRUN echo app-one && echo 1.0.0 > /VERSION && echo app-two\n"
                  % busybox_image)
    project.write("broken/Dockerfile", "FROM %s\nRUN echo about to fail && false\n" % busybox_image)
    project.workflow("""
        steps:
          slow_app: {kind: build, context: ../slow, image: %(n)s/slow}
          build_app: {kind: build, context: ../app, image: %(n)s/app}
          commit_test_data:
            kind: commit
            source: %(n)s/app
            image: %(n)s/app-test
            command: [sh, -c, "echo commit-output && echo data > /data.txt"]
          copy_version: {kind: copy_out, source: %(n)s/app, path: /VERSION, target: ../build/VERSION}
          broken: {kind: build, context: ../broken, image: %(n)s/broken}
          broken_too: {kind: build, context: ../broken, image: %(n)s/broken-too}
        """ % {"n": names})


@pytest.mark.engine
@pytest.mark.parametrize("parallel_type", [[], ["-P", "thread"]], ids=["process", "thread"])
def test_each_line_of_a_parallel_run_names_its_step(project, names, busybox_image, parallel_type):
    lab_like(project, names, busybox_image)
    done = project.doit("-n", "2", *parallel_type, "slow_app", "commit_test_data", "copy_version")
    assert done.returncode == 0, done.output
    lines = done.stdout.splitlines()
    assert [line for line in lines if not (HEADER.match(line) or SAID.match(line) or TAGGED.match(line))] == []
    tagged = [line for line in lines if TAGGED.match(line)]
    # aligned: the bar after the longest name of the run (commit_test_data) on every line
    assert {line.index("|") for line in tagged} == {len("   commit_test_data ")}, tagged
    whose = {word: {TAGGED.match(line).group("step") for line in tagged if word in line}
             for word in ("slow-one", "slow-two", "app-one", "app-two", "commit-output")}
    assert whose == {"slow-one": {"slow_app"}, "slow-two": {"slow_app"}, "app-one": {"build_app"},
                     "app-two": {"build_app"}, "commit-output": {"commit_test_data"}}, done.stdout
    with open(project.path("build/VERSION")) as handle:
        assert handle.read() == "1.0.0\n"

    failed = project.doit("-n", "2", *parallel_type, "--continue", "broken", "broken_too")
    assert failed.returncode == 1, failed.output
    failures = [line for line in failed.stderr.splitlines() if line.startswith("FAILED")]
    assert sorted(line.split(":")[0] for line in failures) == ["FAILED broken", "FAILED broken_too"], failed.stderr
    assert "Traceback" not in failed.output and "TaskFailed" not in failed.output, failed.output


def read_until(stream, wanted, seen):
    """Lines of `stream` up to the first for which wanted(line) is true (appended to `seen`)."""
    for line in stream:
        seen.append(line)
        if wanted(line):
            return line
    raise AssertionError("the run ended before the line looked for:\n" + "".join(seen))


# The gate below is opened with `docker exec`: only the legacy builder runs a RUN in a
# container the engine lists (BuildKit's are its own). The lock is the builders' same.


def gated_build(project, names, busybox_image):
    """A build whose RUN waits until /go exists in its container (docker exec touch /go)."""
    project.write("gate/Dockerfile", "FROM %s\nRUN echo started && while [ ! -e /go ]; do sleep 0.1; done "
                  "&& echo %s-built\n" % (busybox_image, names))
    project.workflow("""
        steps:
          build_app: {kind: build, context: ../gate, image: %s/gated}
        """ % names)


@pytest.mark.engine
def test_a_second_run_of_a_step_waits_for_the_first_then_finds_it_up_to_date(project, names, busybox_image,
                                                                              docker_cli):
    gated_build(project, names, busybox_image)
    first_lines, second_lines, gates = [], [], []
    first = project.start("build_app", env=LEGACY_BUILDER)
    second = None
    try:
        read_until(first.stdout, lambda line: "| started" in line, first_lines)
        gates.append(RUNNING_IN.search("".join(first_lines)).group(1))
        second = project.start("build_app", env=LEGACY_BUILDER)
        seen = read_until(second.stdout, lambda line: "waiting" in line or "Running in" in line, second_lines)
        if "Running in" in seen:
            gates.append(RUNNING_IN.search(seen).group(1))  # it builds too: let it end
        assert "waiting up to 300s for another run of this step to end" in seen, "".join(second_lines)
    finally:
        for container in gates:
            docker_cli("exec", container, "touch", "/go", check=False)
        with first.stdout:
            first_output = "".join(first_lines) + first.stdout.read()
        assert first.wait(timeout=300) == 0, first_output  # a hang guard, not a measure
        if second is not None:
            with second.stdout:
                second_output = "".join(second_lines) + second.stdout.read()
            second.wait(timeout=300)
    assert second.returncode == 0, second_output
    assert "%s-built" % names in first_output
    assert "Step 1/" not in second_output and "%s-built" % names not in second_output, second_output
    assert "up to date: another run did this step while this one waited" in second_output
    built = re.search(r"Successfully built ([0-9a-f]{12})", first_output).group(1)
    assert docker_cli("images", "-q", names + "/gated").strip() == built
    # and doit recorded the step for the second run too: its next run is a no-op
    again = project.doit("build_app")
    assert again.returncode == 0 and "-- build_app" in again.output, again.output


def two_slow_builds(project, names, busybox_image, after_start=""):
    for name in ("slow_a", "slow_b"):
        project.write(name + "/Dockerfile", "FROM %s\nRUN echo started %s && %secho %s-marker && sleep 3600\n"
                      % (busybox_image, name, after_start, names))
    project.workflow("""
        steps:
          slow_a: {kind: build, context: ../slow_a, image: %(n)s/slow-a}
          slow_b: {kind: build, context: ../slow_b, image: %(n)s/slow-b}
        """ % {"n": names})


def both_started(process, seen):
    started = set()
    while started != {"slow_a", "slow_b"}:
        line = read_until(process.stdout, lambda line: "| started" in line, seen)
        started.add(TAGGED.match(line).group("step"))


@pytest.mark.engine
def test_ctrl_c_stops_every_running_step_of_a_parallel_run(project, names, busybox_image, docker_cli):
    """SIGINT to doit's process alone (as `kill -INT` sends it): every worker's build
    unwinds, its RUN container is removed, one message, exit 130."""
    two_slow_builds(project, names, busybox_image)
    process = project.start("-n", "2", "slow_a", "slow_b")
    seen = []
    with process.stdout:
        both_started(process, seen)
        process.send_signal(signal.SIGINT)
        output = "".join(seen) + process.stdout.read()
    assert process.wait(timeout=300) == 130, output  # a hang guard, not a measure
    assert output.count("interrupted (Ctrl-C)") == 1 and "Traceback" not in output, output
    assert left_running(docker_cli, names + "-marker") == []
    assert not docker_cli("images", "-q", names + "/slow-*").strip()


@pytest.mark.engine
def test_a_closed_pipe_stops_every_running_step_of_a_parallel_run(project, names, busybox_image, docker_cli):
    """`doit -n 2 slow_a slow_b | head` (as `doit slow_a slow_b` runs by default): each
    worker's next line finds the reader gone; the run exits 141 with no traceback, and
    no RUN container is left."""
    two_slow_builds(project, names, busybox_image, after_start="sleep 1 && echo more && ")
    process = project.start("-n", "2", "slow_a", "slow_b", stderr=subprocess.PIPE)
    both_started(process, [])
    process.stdout.close()
    with process.stderr:
        errors = process.stderr.read()
    assert process.wait(timeout=300) == 141, errors  # a hang guard, not a measure
    assert "Traceback" not in errors and "Logging error" not in errors and "Exception" not in errors, errors
    assert left_running(docker_cli, names + "-marker") == []


@pytest.mark.engine
def test_a_worker_killed_by_a_signal_stops_the_run(project, names, busybox_image, docker_cli):
    """kill -9 of the worker running slow_a (as the OOM killer would): doit says so and
    ends (it would wait for that worker forever); slow_b's build unwinds."""
    two_slow_builds(project, names, busybox_image)
    process = project.start("-n", "2", "slow_a", "slow_b")
    seen = []
    try:
        with process.stdout:
            both_started(process, seen)
            notes = os.listdir(project.path(".dockflow/locks"))
            worker = int([note for note in notes if note.endswith("-slow_a.json")][0].split("-")[0])
            os.kill(worker, signal.SIGKILL)
            output = "".join(seen) + process.stdout.read()
        assert process.wait(timeout=300) == 1, output  # a hang guard, not a measure
    finally:
        for container in RUNNING_IN.findall("".join(seen)):  # slow_a's was left running by the kill
            docker_cli("rm", "-f", container, check=False)
    assert ("FAILED slow_a: its worker process (pid %d) was killed by SIGKILL; the run stops here" % worker) \
        in output, output
    assert "Traceback" not in output
    assert [command for command in left_running(docker_cli, names + "-marker") if "slow_b" in command] == []


def test_a_chain_runs_one_step_at_a_time_and_independent_steps_at_once():
    chain = {"base": [], "app": ["base"], "tag": ["app"], "registry": [], "push": ["tag", "registry"]}
    assert workers.one_at_a_time({"base", "app", "tag"}, chain)
    assert not workers.one_at_a_time({"base", "app", "tag", "registry", "push"}, chain)
    assert workers.run_config(chain, ["push"], ["doit", "tag"]) == {}
    assert workers.run_config(chain, ["push"], ["doit", "-n", "0", "base"]) == {}
    assert workers.run_config(chain, ["push"], ["doit", "push"])["par_type"] == "process"
    assert workers.run_config(chain, ["push"], ["doit"])["num_process"] >= 2  # the default steps
