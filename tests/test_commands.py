"""doit validate / plan / graph / layers, as a user types them in a project."""
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import REPO

with open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8") as _handle:
    _text = _handle.read()
# The project's own plugin table, copied into each throwaway project as a user would.
PLUGIN_TABLE = _text[_text.index("[tool.doit.plugins.command]"):].split("\n\n", 1)[0] + "\n"


def with_commands(project):
    project.write("pyproject.toml", PLUGIN_TABLE)
    return project


# --- validate (no engine) ------------------------------------------------------
def test_validate_ok_counts_files_and_steps(offline_project):
    project = with_commands(offline_project)
    project.write("c/Dockerfile", "FROM scratch\n")
    project.workflow("""
        steps:
          one: {kind: build, context: ../c, image: x/one}
          two: {kind: tag, source: x/one, tags: [x/one:1.0]}
        """)
    project.workflow("steps:\n  three: {kind: tag, source: x/one, tags: [x/one:2.0]}\n", name="more.yaml")
    done = project.doit("validate")
    assert done.returncode == 0, done.output
    assert "2 workflow files, 3 steps: OK" in done.output


def test_validate_reads_a_version_file_a_run_would_read_only_when_tagging(offline_project):
    project = with_commands(offline_project)
    project.write("VERSION", "v1.2\n")
    project.workflow("""
        vars:
          version: {file: ../VERSION, semver: true}
        steps:
          tag: {kind: tag, source: x/one, tags: ["x/one:${version}"]}
        """)
    done = project.doit("validate")
    assert done.returncode == 3, done.output
    assert ("workflows/flow.yaml:3:3: vars.version: VERSION holds 'v1.2', not a semantic version like 1.0.0"
            in done.output)


SEEDED = """\
# yaml-language-server: $schema=../schemas/workflow.schema.json
steps:
  build_app:
    kind: build
    context: ../nowhere
    image: x/app
    colour: blue
  tag_it:
    kind: tag
    source: x/app
    tags: "not-a-list"
  commit_it:
    kind: commit
    source: x/app
    image: x/app-test
  list:
    kind: copy_out
    source: x/app
    path: /VERSION
    target: ../build/VERSION
    why: ${undeclared}
"""


def test_validate_reports_every_error_with_line_numbers(offline_project):
    project = with_commands(offline_project)
    project.workflow(SEEDED, name="broken.yaml")
    done = project.doit("validate")
    assert done.returncode == 3, done.output
    lines = done.stdout.splitlines()
    expected = [  # (lines where it may be reported, path, words)
        ((7, 4), "steps.build_app", "colour"),         # unknown field (at the field, or at its step)
        ((11,), "steps.tag_it.tags", "array"),         # wrong type
        ((12, 13), "steps.commit_it", "'command'"),   # missing required field (at the step)
        ((21, 17), "steps.list", "why"),               # unknown field of copy_out
    ]
    for where, path, word in expected:
        assert any(re.match(r"workflows/broken\.yaml:(%s):\d+: " % "|".join(map(str, where)), line)
                   and path in line and word in line for line in lines), (where, path, word, done.output)
    # a field of the step's kind is not called unknown because another field failed
    assert "'source'" not in done.stdout and "'image'" not in done.stdout
    assert "Traceback" not in done.output
    assert "errors in 1 workflow file" in done.stderr


def test_validate_reports_static_and_step_errors_of_several_files(offline_project):
    project = with_commands(offline_project)
    project.workflow("""
        vars: {v: 1}
        steps:
          list: {kind: tag, source: x/app, tags: ["x/app:${nope}"]}
        """, name="a.yaml")
    project.workflow("""
        steps:
          build_app: {kind: build, context: ../nowhere, image: x/app}
          tag_it: {kind: tag, source: x/app, tags: [x/app:1], needs: [bulid_app]}
        """, name="b.yaml")
    done = project.doit("validate")
    assert done.returncode == 3, done.output
    out = done.stdout
    assert "workflows/a.yaml:4:" in out and "is a doit command" in out
    assert "undefined variable ${nope}" in out
    # b.yaml loads; its step-level problem is still reported in the same run
    assert "workflows/b.yaml:3:" in out and "steps.build_app.context" in out and "is not a folder" in out


def test_validate_works_where_task_loading_stops(offline_project):
    project = with_commands(offline_project)
    project.workflow("steps:\n  a: {kind: build, context: ../missing, image: x/a}\n")
    listed = project.doit("list")
    assert listed.returncode == 3
    validated = project.doit("validate")
    assert validated.returncode == 3
    assert "workflows/flow.yaml:2:" in validated.stdout and "steps.a.context" in validated.stdout


def test_validate_of_the_repository_workflows():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "doit", "validate"], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO, DOCKER_HOST="unix:///nonexistent.sock"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "steps: OK" in done.stdout


# --- plan and graph (engine) ---------------------------------------------------
def chain(project, names, busybox_image):
    project.write("app/Dockerfile", "FROM %s\nWORKDIR /srv\nCOPY VERSION /srv/\n" % busybox_image)
    project.write("app/VERSION", "1.0.0\n")
    project.workflow("""
        steps:
          build_app:
            kind: build
            context: ../app
            image: %(n)s/app
          commit_data:
            kind: commit
            source: %(n)s/app
            image: %(n)s/app-test
            command: [sh, -c, "echo data > data.txt"]
          copy_version:
            kind: copy_out
            source: %(n)s/app
            path: /srv/VERSION
            target: ../build/VERSION
          tag_app:
            kind: tag
            source: %(n)s/app
            tags: [%(n)s/app:1.0.0]
        """ % {"n": names})


def engine_state(docker_cli, names):
    """Everything a run of this project could make or leave: its images, and containers of them."""
    images = sorted(docker_cli("images", "-a", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").split("\n"))
    ours = [line for line in images if line.startswith(names)]
    containers = sorted(docker_cli("ps", "-a", "--no-trunc", "--filter", "label=io.dockflow.temporary",
                                   "--format", "{{.ID}}").split())
    for ref in ("%s/app" % names, "%s/app-test" % names):
        if docker_cli("images", "-q", ref).strip():
            containers += docker_cli("ps", "-aq", "--filter", "ancestor=" + ref).split()
    return ours, containers, len(images)


@pytest.mark.engine
def test_plan_exits_1_when_a_step_would_fail(project, names):
    project = with_commands(project)
    project.workflow("""
        steps:
          tag_it: {kind: tag, source: %s/nowhere, tags: ["%s/nowhere:1"]}
        """ % (names, names))
    done = project.doit("plan", "tag_it")
    assert done.returncode == 1, done.output
    assert "fails" in done.output and "%s/nowhere" % names in done.output


@pytest.mark.engine
def test_plan_says_what_and_why_and_changes_nothing(project, names, busybox_image, docker_cli):
    project = with_commands(project)
    chain(project, names, busybox_image)
    before = engine_state(docker_cli, names)
    done = project.doit("plan", "copy_version", "commit_data")
    assert done.returncode == 0, done.output
    assert "build_app" in done.output and "will run" in done.output
    assert "building %s/app: the engine has no such image" % names in done.output
    # the steps that read the app image wait for it
    assert "checked again after build_app" in done.output
    lines = done.stdout.splitlines()
    order = [line.split()[1] for line in lines if re.match(r"\s*\d+\. ", line)]
    assert order[0] == "build_app" and set(order) == {"build_app", "commit_data", "copy_version"}
    after = engine_state(docker_cli, names)
    assert before[:2] == after[:2] == ([], [])
    assert not os.path.exists(project.path("build/VERSION"))

    assert project.doit("copy_version").returncode == 0
    before = engine_state(docker_cli, names)
    again = project.doit("plan", "tag_app", "commit_data", "copy_version")
    assert again.returncode == 0, again.output
    assert "1 up to date" not in again.output
    assert "tagging %s/app" % names in again.output
    assert "committing %s/app-test: the engine has no such image" % names in again.output
    assert "2 will run, 2 up to date. Nothing was run." in again.output
    assert engine_state(docker_cli, names)[:2] == before[:2]


@pytest.mark.engine
def test_graph_is_svg_naming_every_step_with_its_state(project, names, busybox_image):
    project = with_commands(project)
    chain(project, names, busybox_image)
    assert project.doit("build_app").returncode == 0
    done = project.doit("graph", "-o", "out/graph.svg")
    assert done.returncode == 0, done.output
    root = ET.parse(project.path("out/graph.svg")).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    ns = {"svg": "http://www.w3.org/2000/svg"}
    titles = {g.get("id"): g.find("svg:title", ns).text for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert set(titles) == {"step-build_app", "step-commit_data", "step-copy_version", "step-tag_app"}
    assert titles["step-build_app"].startswith("build_app (build): up to date")
    assert "will run" in titles["step-commit_data"]
    arrows = root.findall("svg:line", ns)
    assert len(arrows) == 3  # build_app -> each of the others
    png = project.path("out/graph.png")
    if shutil.which("dot"):  # Graphviz: bootstrap --tests installs it
        with open(png, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    else:
        assert not os.path.exists(png)


# --- layers (engine) -----------------------------------------------------------
@pytest.mark.engine
def test_layers_report_with_base_share_and_dangling(project, names, busybox_image, docker_cli, tmp_path):
    project = with_commands(project)
    project.write("base/Dockerfile", "FROM %s\nRUN echo base > /base.txt\n" % busybox_image)
    project.write("app/Dockerfile", "FROM %s/base\nRUN echo app > /app.txt\nCMD [\"sh\"]\n" % names)
    project.workflow("""
        steps:
          build_base: {kind: build, context: ../base, image: %(n)s/base}
          build_app: {kind: build, context: ../app, image: %(n)s/app}
        """ % {"n": names})
    assert project.doit("build_app").returncode == 0
    # A rebuild of the app leaves its first image untagged: a dangling image to be listed.
    first_app = docker_cli("image", "inspect", "-f", "{{.Id}}", names + "/app").strip()
    project.write("app/Dockerfile", "FROM %s/base\nRUN echo app2 > /app.txt\nCMD [\"sh\"]\n" % names)
    assert project.doit("build_app").returncode == 0
    done = project.doit("layers", names + "/app", "--json", "report.json")
    assert done.returncode == 0, done.output
    with open(project.path("report.json")) as handle:
        report = json.load(handle)
    history = docker_cli("history", "--no-trunc", "--format", "{{.CreatedBy}}\t{{.Size}}", names + "/app")
    expected = [line.split("\t") for line in history.strip().splitlines()]
    from tasks.progress import human_size
    assert [[e["created_by"], human_size(e["size"], between="")] for e in report["history"]] == expected
    assert report["base"]["image"] == "%s/base:latest" % names
    base_entries = len(docker_cli("history", "-q", names + "/base").split())
    assert report["shared_entries"] == base_entries
    assert report["own_size"] == report["total_size"] - report["base"]["size"]
    assert sum(e["size"] for e in report["history"]) == report["total_size"]
    dangling = docker_cli("images", "-q", "--no-trunc", "--filter", "dangling=true").split()
    assert set(dangling) <= {d["id"] for d in report["dangling"]}  # listed at least those seen after
    assert first_app in {d["id"] for d in report["dangling"]}
    assert "shared with base %s/base:latest" % names in done.stdout
    assert "dangling images (<none>:<none>)" in done.stdout


@pytest.mark.engine
def test_layers_of_missing_image_fails_clearly(project, names):
    done = with_commands(project).doit("layers", names + "/nothing")
    assert done.returncode == 1
    assert "has no image %s/nothing" % names in done.output
    assert "Traceback" not in done.output


def test_a_misspelt_step_on_the_command_line_gets_a_did_you_mean(offline_project):
    project = with_commands(offline_project)
    project.workflow("steps:\n  build_app: {kind: tag, source: x/one, tags: [x/one:1.0]}\n")
    for args, expected in ((["biuld_app"], 'Invalid parameter: "biuld_app". Must be a command, task, or a '
                                           "target. (did you mean 'build_app'?)"),
                           (["plan", "biuld_app"], "'biuld_app' is not a step (did you mean 'build_app'?)")):
        done = project.doit(*args)
        assert done.returncode == 3, done.output
        assert expected in done.output and "Traceback" not in done.output, done.output
