"""prune against a real engine. Other tests use the same engine at the same time:
every prune here is scoped with `labels: [<names>]` (every image these tests build
carries the label `<names>`), so it can only ever remove what this test made. The
one test of the default, unscoped policy is a dry run: it removes nothing."""
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time

import docker
import pytest

from tasks import lock
from tests.support.builds import LEGACY_BUILDER

pytestmark = pytest.mark.engine


def rebuild_lab(project, names, busybox_image, versions=("v1", "v2", "v3"), step="build_app", context="app",
                labels=None):
    """Exercise 3.01: build, edit a RUN line, build again; each rebuild leaves the
    previous image dangling, with its intermediate images under it. With the legacy
    builder (the lab's, and ours with DOCKER_BUILDKIT=0 or cache_from): BuildKit
    leaves no intermediate images."""
    labels = dict({names: "1"}, **(labels or {}))
    heads = []
    for version in versions:
        project.write(context + "/Dockerfile",
                      "FROM %s\nRUN echo %s-%s > /version && dd if=/dev/zero of=/blob bs=1k count=64\n"
                      "RUN echo more > /more\n" % (busybox_image, names, version))
        project.workflow(flow(names, step, context, labels), name=step + ".yaml")
        done = project.doit(step, env=LEGACY_BUILDER)
        assert done.returncode == 0, done.output
        heads.append(image_id("%s/%s" % (names, context)))
    return heads


def flow(names, step, context, labels):
    return """
        steps:
          %s:
            kind: build
            context: ../%s
            image: %s/%s
            labels: %s
        """ % (step, context, names, context, json.dumps(labels))


def prune_flow(project, names, **fields):
    spec = dict({"kind": "prune", "labels": [names]}, **fields)
    project.workflow(json.dumps({"steps": {"prune": spec}}), name="prune.yaml")


def api():
    return docker.APIClient(base_url=os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
                            version="auto")


def image_id(ref):
    try:
        return api().inspect_image(ref)["Id"]
    except docker.errors.ImageNotFound:
        return None


def exists(ref):
    return image_id(ref) is not None


def record(output):
    """The one JSON line of the run."""
    lines = [line for line in output.splitlines() if line.startswith("{") and '"dockflow.prune"' in line]
    assert len(lines) == 1, output
    return json.loads(lines[0])


def unique_bytes(image_ids):
    """What the engine itself says these images hold alone (system df: Size - SharedSize)."""
    usage = {image["Id"]: image for image in api().df()["Images"]}
    return sum(usage[i]["Size"] - usage[i]["SharedSize"] for i in image_ids)


def parents(image):
    chain, current = [], api().inspect_image(image)["Parent"]
    while current:
        info = api().inspect_image(current)
        if info["RepoTags"]:
            break
        chain.append(current)
        current = info["Parent"]
    return chain


def test_dry_run_then_prune_removes_exactly_the_dangling_images(project, names, busybox_image, docker_cli):
    v1, v2, v3 = rebuild_lab(project, names, busybox_image)
    intermediates = parents(v1) + parents(v2)
    assert intermediates, "the legacy builder keeps intermediate images"
    # not chosen by the policy (tagged), and protected (keep label) though dangling:
    project.write("other/Dockerfile", "FROM %s\nRUN echo %s-other > /o\n" % (busybox_image, names))
    docker_cli("build", "-q", "--label", names + "=1", "-t", names + "/other", project.path("other"))
    kept_v1, _kept_v2 = rebuild_lab(project, names, busybox_image, ("k1", "k2"), "build_keep", "keep",
                                    {"io.dockflow.keep": "yes"})
    prune_flow(project, names)
    expected = unique_bytes([v1, v2])
    assert expected > 2 * 64 * 1024

    dry = project.doit("prune", "dry_run=true")
    assert dry.returncode == 0, dry.output
    report = record(dry.output)
    assert report["dry_run"] is True
    assert {image["id"] for image in report["images"]} == {v1, v2}
    assert set(intermediates) <= set(report["intermediate"])
    assert report["bytes"] == report["image_bytes"] == expected
    assert "would remove image %s <none>" % v1[7:19] in dry.output
    assert "kept %s <none>: it has the keep label io.dockflow.keep" % kept_v1[7:19] in dry.output
    assert all(exists(i) for i in [v1, v2, v3, kept_v1] + intermediates), "a dry run removes nothing"

    real = project.doit("prune")
    assert real.returncode == 0, real.output
    report = record(real.output)
    assert report["dry_run"] is False
    assert {image["id"] for image in report["images"]} == {v1, v2}
    assert report["bytes"] == expected, "reclaimed bytes = what the engine said those images held alone"
    assert "(%d bytes:" % expected in real.output
    assert not any(exists(i) for i in [v1, v2] + intermediates)
    assert exists(names + "/app") and image_id(names + "/app") == v3
    assert exists(names + "/other") and exists(kept_v1)

    again = project.doit("prune")
    assert again.returncode == 0, again.output
    assert ".  prune" in again.output, "a prune is never up to date"
    assert record(again.output)["bytes"] == 0 and "reclaimed 0 B" in again.output


def test_protected_images_survive_an_unused_prune(project, names, busybox_image, docker_cli):
    """unused: true would remove every tagged image in scope; the three protections hold."""
    rebuild_lab(project, names, busybox_image, ("v1",))            # names/app: a workflow's output
    for what in ("inuse", "kept", "loose"):
        project.write(what + "/Dockerfile", "FROM %s\nRUN echo %s-%s > /w\n" % (busybox_image, names, what))
        extra = ["--label", "io.dockflow.keep="] if what == "kept" else []
        docker_cli("build", "-q", "--label", names + "=1", *extra, "-t", "%s/%s" % (names, what),
                   project.path(what))
    docker_cli("tag", names + "/loose", names + "/loose:two")      # two names: removed tag by tag
    container = names + "-running"
    docker_cli("run", "-d", "--name", container, names + "/inuse", "sleep", "3600")
    try:
        prune_flow(project, names, unused=True, dangling=False)
        done = project.doit("prune")
        assert done.returncode == 0, done.output
        report = record(done.output)
        assert [sorted(image["tags"]) for image in report["images"]] == \
            [[names + "/loose:latest", names + "/loose:two"]]
        assert not exists(names + "/loose") and not exists(names + "/loose:two")
        for ref in ("app", "inuse", "kept"):
            assert exists("%s/%s" % (names, ref)), done.output
        spared = {tuple(image["tags"]): image["reason"] for image in report["spared"]}
        assert spared[(names + "/app:latest",)].startswith("a workflow names it as an output")
        assert spared[(names + "/inuse:latest",)] == "running container %s uses it" % container
        assert spared[(names + "/kept:latest",)] == "it has the keep label io.dockflow.keep"
    finally:
        docker_cli("rm", "-f", container, check=False)


def test_keep_last_removes_old_tags_of_built_repositories(project, names, busybox_image, docker_cli):
    """The lab's tags: git-commit tags go by age; the version tags 1.0.0 and 1.0.1 are
    not counted by keep_last and stay, whatever their age."""
    for tag in ("1.0.0", "1.0.1", "abc1234", "def5678", "0a1b2c3"):
        project.write("old/Dockerfile", "FROM %s\nRUN echo %s-%s > /v\n" % (busybox_image, names, tag))
        docker_cli("build", "-q", "--label", names + "=1", "-t", "%s/app:%s" % (names, tag), project.path("old"))
        time.sleep(1.1)  # image creation times are in whole seconds: make "newest" unambiguous
    rebuild_lab(project, names, busybox_image, ("v1",))            # names/app:latest, the output
    old1, old2 = image_id(names + "/app:abc1234"), image_id(names + "/app:def5678")
    prune_flow(project, names, keep_last=2, dangling=False)
    dry = project.doit("prune", "dry_run=true")
    assert sorted(record(dry.output)["tags"]) == [names + "/app:abc1234", names + "/app:def5678"], dry.output
    expected = unique_bytes([old1, old2])
    done = project.doit("prune")
    assert done.returncode == 0, done.output
    report = record(done.output)
    assert sorted(report["tags"]) == [names + "/app:abc1234", names + "/app:def5678"]
    assert report["bytes"] == expected
    assert not exists(names + "/app:abc1234") and not exists(names + "/app:def5678")
    for kept in ("0a1b2c3", "latest", "1.0.0", "1.0.1"):
        assert exists("%s/app:%s" % (names, kept)), kept


def test_keep_versions_removes_the_lowest_versions(project, names, busybox_image, docker_cli):
    """Made in the order 1.10.0, 1.9.0, 1.2.0: by age 1.2.0 is newest, by version 1.10.0 is."""
    for tag in ("1.10.0", "1.9.0", "1.2.0"):
        project.write("old/Dockerfile", "FROM %s\nRUN echo %s-%s > /v\n" % (busybox_image, names, tag))
        docker_cli("build", "-q", "--label", names + "=1", "-t", "%s/app:%s" % (names, tag), project.path("old"))
    rebuild_lab(project, names, busybox_image, ("v1",))
    prune_flow(project, names, keep_versions=2, dangling=False)
    done = project.doit("prune")
    assert done.returncode == 0, done.output
    assert record(done.output)["tags"] == [names + "/app:1.2.0"]
    assert not exists(names + "/app:1.2.0") and exists(names + "/app:1.9.0") and exists(names + "/app:1.10.0")


def test_policy_fields_on_the_command_line(project, names, busybox_image):
    """Exercise 3.01's "prune now": `doit prune dry_run=true older_than=0s` over a step
    whose older_than keeps everything young."""
    v1, v2, _v3 = rebuild_lab(project, names, busybox_image)
    prune_flow(project, names, older_than="1h")
    waiting = project.doit("prune", "dry_run=true")
    assert record(waiting.output)["images"] == [], waiting.output
    now = project.doit("prune", "dry_run=true", "older_than=0s")
    assert now.returncode == 0, now.output
    assert {image["id"] for image in record(now.output)["images"]} == {v1, v2}
    assert exists(v1) and exists(v2)
    bad = project.doit("prune", "older_than=7x")
    assert bad.returncode == 3, bad.output
    assert "workflows/prune.yaml:1:12: steps.prune: command line older_than=7x: '7x' does not match" \
        in bad.output, bad.output
    assert "Traceback" not in bad.output and exists(v1)


def test_build_cache_with_an_age_in_days(project, names, busybox_image):
    """The engine's build-cache `until` takes Go durations only: 7d went to it as is and
    failed, after the images were removed, and the record of them was lost."""
    rebuild_lab(project, names, busybox_image, ("v1", "v2"))
    prune_flow(project, names, build_cache=True, older_than="7d")
    done = project.doit("prune")
    assert done.returncode == 0, done.output
    report = record(done.output)
    assert report["failures"] == [] and report["filtered"] >= 1  # v1: minutes old, it stays
    assert "Traceback" not in done.output


def test_project_scope_leaves_other_lineages(project, names, busybox_image, docker_cli, tmp_path):
    """Dangling images are engine-wide by default (the dry run says so); scope: project
    keeps to images built on what the workflows name."""
    v1, _v2 = rebuild_lab(project, names, busybox_image, ("v1", "v2"))
    stranger = None
    for content in ("one", "two"):  # an imported image of another lineage, left dangling by the second import
        rootfs = tmp_path / ("rootfs-" + content + ".tar")
        with tarfile.open(rootfs, "w") as archive:
            data = (names + content).encode()
            info = tarfile.TarInfo("stranger")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        docker_cli("import", "-c", "LABEL %s=1" % names, str(rootfs), names + "/stranger")
        stranger = stranger or image_id(names + "/stranger")
    prune_flow(project, names, dry_run=True)
    wide = project.doit("prune")
    assert {image["id"] for image in record(wide.output)["images"]} >= {v1, stranger}
    assert "dangling images are chosen engine-wide, not only this project's" in wide.output
    prune_flow(project, names, scope="project")
    scoped = project.doit("prune")
    assert scoped.returncode == 0, scoped.output
    assert [image["id"] for image in record(scoped.output)["images"]] == [v1]
    assert "1 dangling image is not of this project's lineage (scope: project) and stays" in scoped.output
    assert "engine-wide" not in scoped.output
    assert not exists(v1) and exists(stranger)
    docker_cli("rmi", stranger)


def test_filters_narrow_the_choice(project, names, busybox_image):
    a1, _a2 = rebuild_lab(project, names, busybox_image, ("v1", "v2"))
    b1, _b2 = rebuild_lab(project, names, busybox_image, ("w1", "w2"), "build_b", "b", {"tier": "b"})
    prune_flow(project, names, older_than="1h")                    # all of them are minutes old
    young = project.doit("prune")
    assert young.returncode == 0 and record(young.output)["images"] == [], young.output
    assert record(young.output)["filtered"] >= 2  # a1 and b1, which the dry run must account for
    assert re.search(r"\n.*prune: \d+ dangling images are younger than 1h and stay\n", young.output), young.output
    assert exists(a1) and exists(b1)
    prune_flow(project, names, not_labels=["tier=b"])
    done = project.doit("prune")
    assert [image["id"] for image in record(done.output)["images"]] == [a1], done.output
    assert not exists(a1) and exists(b1)


def test_stopped_containers_of_our_runs_only(project, names, busybox_image, docker_cli):
    ours, theirs = names + "-ours", names + "-theirs"
    root = os.path.realpath(project.root)
    try:
        docker_cli("create", "--name", ours, "--label", "io.dockflow.project=" + root, busybox_image, "true")
        docker_cli("create", "--name", theirs, "--label", "io.dockflow.project=/elsewhere", busybox_image, "true")
        prune_flow(project, names, containers=True, dangling=False)
        done = project.doit("prune")
        assert done.returncode == 0, done.output
        assert [c["name"] for c in record(done.output)["containers"]] == [ours]
        assert "removed stopped container %s" % ours in done.output
        listed = docker_cli("ps", "-a", "--format", "{{.Names}}").split()
        assert ours not in listed and theirs in listed
    finally:
        docker_cli("rm", "-f", ours, theirs, check=False)


def test_default_policy_dry_run_sees_our_dangling_images(project, names, busybox_image):
    """The default policy, unscoped: only as a dry run, since a real one would remove
    other people's dangling images on this shared engine."""
    v1, v2, _v3 = rebuild_lab(project, names, busybox_image)
    project.workflow("steps:\n  prune:\n    kind: prune\n    dry_run: true\n", name="prune.yaml")
    done = project.doit("prune")
    assert done.returncode == 0, done.output
    chosen = {image["id"] for image in record(done.output)["images"]}
    assert {v1, v2} <= chosen
    assert exists(v1) and exists(v2)


def test_prune_refuses_beside_a_build_that_holds_the_lock(project, names, busybox_image):
    v1, _v2 = rebuild_lab(project, names, busybox_image, ("v1", "v2"))
    prune_flow(project, names, lock_wait=0)
    with lock.held(project.root, "build_app"):           # what run_step takes around a build
        done = project.doit("prune")
    assert done.returncode == 1, done.output
    assert "another run of this project holds its lock (pid %d running build_app (shared lock" % os.getpid() \
        in done.output
    assert "Traceback" not in done.output
    assert exists(v1), "a refused prune removes nothing"


def test_prune_waits_for_a_real_build_then_runs(project, names, busybox_image):
    """A build that is blocked inside its RUN (on a pipe the test holds) keeps the
    lock; the prune started meanwhile says whom it waits for and runs after it."""
    v1, _v2 = rebuild_lab(project, names, busybox_image, ("v1", "v2"))
    fifo = project.path("go")
    os.mkfifo(fifo)
    project.write("slow/Dockerfile", "FROM %s\nRUN echo %s-slow > /s\n" % (busybox_image, names))
    # The build step's run() blocks until the test writes to the fifo: a slow build, no timing.
    project.write("slow_build.py", SLOW_BUILD % {"fifo": fifo})
    project.write("dodo.py", "import slow_build  # noqa: F401\n"
                  "from tasks.dodo import DOIT_CONFIG, task_workflows  # noqa: F401\n")
    project.workflow(flow(names, "build_slow", "slow", {names: "1"}), name="build_slow.yaml")
    prune_flow(project, names, lock_wait=3600)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([project.root, REPO]), DOCKER_HOST=project.docker_host)
    build = subprocess.Popen([sys.executable, "-m", "doit", "build_slow"], cwd=project.root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    prune = None
    try:
        while not any(n["task"] == "build_slow" for n in lock.holders(project.root)):
            assert build.poll() is None, build.stdout.read()
            time.sleep(0.05)
        prune = subprocess.Popen([sys.executable, "-m", "doit", "prune"], cwd=project.root, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        waiting = prune.stdout.readline() + prune.stdout.readline()
        assert "waiting up to 3600s for the project's exclusive lock: held by pid %d running build_slow" \
            % build.pid in waiting, waiting
        assert exists(v1), "nothing is removed while the build runs"
        with open(fifo, "w") as pipe:
            pipe.write("go\n")
        assert build.wait() == 0, build.stdout.read()
        rest = prune.stdout.read()
        assert prune.wait() == 0, rest
        assert "the project's lock is free; going on" in rest
        assert v1 in {image["id"] for image in record(rest)["images"]}
        assert not exists(v1) and exists(names + "/slow")
    finally:
        for process in (build, prune):
            if process is not None:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                process.stdout.close()


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOW_BUILD = '''
from tasks.steps import build

_run = build.run


def run(step, verdict):
    with open(%(fifo)r) as pipe:
        pipe.read()
    return _run(step, verdict)


build.run = run
'''
