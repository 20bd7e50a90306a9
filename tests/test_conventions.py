"""doit's own commands as a dockflow user types them: info, list, help, clean, dumpdb,
tabcompletion, `COMMAND --help`, plan --json / --exit-code (tasks/doit_commands.py)."""
import json
import os
import shutil
import subprocess

import pytest

from tests.test_commands import with_commands

ONE_STEP = """\
vars:
  user: {env: DOCKFLOW_TEST_USER, default: lab}
  version: 1.0.0
steps:
  build_app:
    kind: tag
    doc: "Tag x/one as <user>/one:<version> (the 3.07's way; `latest` warns)"
    source: x/one
    tags: ["${user}/one:${version}"]
"""


def offline(offline_project, text=ONE_STEP):
    project = with_commands(offline_project)
    project.workflow(text)
    return project


# --- unknown names, closed pipes ----------------------------------------------
@pytest.mark.parametrize("args", [["info", "buid_app"], ["list", "buid_app"], ["help", "buid_app"],
                                  ["clean", "buid_app"]])
def test_a_misspelt_step_gets_one_line_and_a_did_you_mean(offline_project, args):
    done = offline(offline_project).doit(*args)
    assert done.returncode == 3, done.output
    assert "'buid_app' is not a step (did you mean 'build_app'?)" in done.stderr
    assert "Traceback" not in done.output


@pytest.mark.parametrize("args", [["list"], ["info", "build_app"], ["help", "build_app"],
                                  ["tabcompletion", "--shell", "zsh"], ["layers", "--help"]])
def test_a_closed_pipe_ends_quietly_as_a_run_does(offline_project, args):
    """`doit list | head -1`: the reader is gone before the first line; exit 141, no traceback."""
    project = offline(offline_project)
    reader, writer = os.pipe()
    os.close(reader)  # gone before doit writes: its first write fails, every time
    try:
        process = project.start(*args, stdout=writer, stderr=subprocess.PIPE)
    finally:
        os.close(writer)
    errors = process.communicate()[1]
    assert process.returncode == 141, errors
    assert "Traceback" not in errors and "BrokenPipeError" not in errors


# --- info, help, --help, graph ------------------------------------------------
def test_info_of_a_prune_says_it_runs_every_time(offline_project):
    project = offline(offline_project, "steps:\n  nightly: {kind: prune, dry_run: true}\n")
    done = project.doit("info", "nightly")
    assert "runs every time" in done.stdout, done.output
    assert "False (args=None" not in done.stdout and "Traceback" not in done.output


def test_help_of_a_step_shows_its_fields_and_the_variables_it_reads(offline_project):
    project = offline(offline_project)
    done = project.doit("help", "build_app", "version=2.0.0", env={"DOCKFLOW_TEST_USER": "me"})
    assert done.returncode == 0, done.output
    lines = done.stdout.splitlines()
    assert lines[0].startswith("build_app  Tag x/one as <user>/one:<version>")
    assert "defined at workflows/flow.yaml:5:3" in lines
    assert "  kind    tag" in lines and "  source  x/one" in lines
    assert '  tags    ["${user}/one:${version}"]' in lines
    assert '          = ["me/one:2.0.0"]' in lines  # the value the run would use now
    assert "  user = me  (env DOCKFLOW_TEST_USER, default lab)" in lines
    assert "  version = 2.0.0  (the command line)" in lines


@pytest.mark.parametrize("command", ["layers", "plan", "graph", "validate", "info", "clean"])
def test_command_help_option_prints_the_commands_help(offline_project, command):
    done = offline(offline_project).doit(command, "--help")
    assert done.returncode == 0, done.output
    assert "PURPOSE" in done.stdout and "USAGE" in done.stdout


def test_graph_of_one_step_says_1_step(offline_project):
    project = offline(offline_project)
    done = project.doit("graph", "-o", "g.svg", "build_app")
    assert done.returncode == 0, done.output
    assert "graph: 1 step written to g.svg" in done.stdout


# --- dumpdb -------------------------------------------------------------------
def test_dumpdb_reads_the_sqlite3_state_file(offline_project):
    """doit's own dumpdb reads dbm files only; the records here are written by doit's sqlite3 backend."""
    from doit.dependency import JSONCodec, SqliteDB

    project = offline(offline_project)
    os.makedirs(project.path(".dockflow"))
    state = SqliteDB(project.path(".dockflow/doit.sqlite3"), JSONCodec())
    state.set("build_app", "_values_:", {"image_id": "sha256:abc"})
    state.dump()
    state._conn.close()
    done = project.doit("dumpdb")
    assert done.returncode == 0, done.output
    assert "sqlite3 .dockflow/doit.sqlite3 'select task_id, task_data from doit'" in done.stdout
    assert "build_app -> {'_values_:': {'image_id': 'sha256:abc'}}" in done.stdout


def test_dumpdb_before_any_run_says_so(offline_project):
    done = offline(offline_project).doit("dumpdb")
    assert done.returncode == 3
    assert "no state file .dockflow/doit.sqlite3: no step has run in this folder yet" in done.stderr
    assert "Traceback" not in done.output


# --- tabcompletion ------------------------------------------------------------
@pytest.mark.parametrize("hardcode", [False, True])
def test_zsh_completion_script_is_valid_zsh(offline_project, hardcode):
    """Apostrophes in command and step docs, and backquotes in an option's help, stay text."""
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (apt-get install zsh)")
    project = offline(offline_project)
    done = project.doit("tabcompletion", "--shell", "zsh", *(["--hardcode-tasks"] if hardcode else []))
    assert done.returncode == 0, done.output
    script = project.write("_doit", done.stdout)
    checked = subprocess.run([zsh, "-n", script], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "when \\`dot\\` is installed" in done.stdout  # would run `dot` at each Tab otherwise
    if hardcode:
        assert "3.07'\\''s way; \\`latest\\`" not in done.stdout  # single quotes keep backquotes as text
        assert "(the 3.07'\\''s way; `latest` warns)" in done.stdout


# --- clean (engine) -------------------------------------------------------------
def shipping_chain(project, names, busybox_image):
    project.write("app/Dockerfile", "FROM %s\nCOPY VERSION /srv/VERSION\n" % busybox_image)
    project.write("app/VERSION", "1.0.0\n")
    project.workflow("""
        steps:
          build_app: {kind: build, context: ../app, image: %(n)s/app}
          kept_app:
            kind: build
            context: ../app
            image: %(n)s/kept
            labels: {io.dockflow.keep: "yes"}
          tag_app: {kind: tag, source: %(n)s/app, tags: ["%(n)s/app:1.0.0"]}
          save: {kind: save, image: "%(n)s/app:1.0.0", tar: ../build/app.tar}
          transfer: {kind: transfer, tar: ../build/app.tar, destinations: [../shipped/]}
          load: {kind: load, needs: [transfer], tar: ../build/app.tar, image: "%(n)s/app:1.0.0"}
        """ % {"n": names})


@pytest.mark.engine
def test_clean_removes_what_steps_made_and_keeps_what_is_still_read(project, names, busybox_image, docker_cli):
    project = with_commands(project)
    shipping_chain(project, names, busybox_image)
    assert project.doit("save", "kept_app").returncode == 0
    tar = project.path("build/app.tar")
    assert os.path.exists(tar) and os.path.exists(tar + ".sha256")

    bare = project.doit("clean")
    assert bare.returncode == 3 and "name the steps" in bare.stderr, bare.output

    listed = project.doit("clean", "-n", "save", "build_app", "kept_app")
    assert listed.returncode == 0, listed.output
    assert listed.stdout.splitlines() == [
        "save: file build/app.tar: kept (step transfer reads it; clean that step too)",
        "build_app: image %s/app: kept (step tag_app reads it; clean that step too)" % names,
        "kept_app: image %s/kept: kept (it has the keep label io.dockflow.keep)" % names,
    ]

    container = docker_cli("create", names + "/app:1.0.0").strip()
    in_use = project.doit("clean", "-n", "tag_app", "save", "transfer", "load")
    docker_cli("rm", container)
    assert "tag_app: image %s/app:1.0.0: kept (stopped container " % names in in_use.stdout, in_use.output

    dry = project.doit("clean", "-n", "build_app", "tag_app", "save", "transfer", "load")
    assert dry.returncode == 0, dry.output
    assert dry.stdout.splitlines() == [
        "build_app: image %s/app: would be removed" % names,
        "tag_app: image %s/app:1.0.0: would be removed" % names,
        "save: file build/app.tar: would be removed",
        "transfer: file shipped/app.tar: nothing to remove (no such file)",
        "load: nothing to clean (a load step makes nothing here that clean removes)",
    ]
    assert os.path.exists(tar) and docker_cli("images", "-q", names + "/app").strip()  # -n removed nothing

    done = project.doit("clean", "build_app", "tag_app", "save", "transfer", "load")
    assert done.returncode == 0, done.output
    assert "save: file build/app.tar: removed" in done.stdout
    assert not os.path.exists(tar) and not os.path.exists(tar + ".sha256")
    assert not docker_cli("images", "-q", names + "/app").strip()
    assert docker_cli("images", "-q", names + "/kept").strip()
    plan = project.doit("plan", "save")
    assert "building %s/app: the engine has no such image" % names in plan.stdout, plan.output


# --- plan --json / --exit-code (engine) -----------------------------------------
@pytest.mark.engine
def test_plan_json_and_exit_code_for_ci(project, names, busybox_image):
    project = with_commands(project)
    shipping_chain(project, names, busybox_image)
    before = project.doit("plan", "--json", "--exit-code", "tag_app")
    assert before.returncode == 2, before.output
    report = json.loads(before.stdout)
    assert [(s["step"], s["state"]) for s in report["steps"]] == [("build_app", "will run"), ("tag_app", "may run")]
    assert report["steps"][1]["needs"] == ["build_app"] and report["would_run"] is True
    assert report["counts"] == {"up to date": 0, "will run": 1, "may run": 1, "fails": 0}
    assert project.doit("plan", "tag_app").returncode == 0  # without the flag: 0, as before

    assert project.doit("tag_app").returncode == 0
    after = project.doit("plan", "--json", "--exit-code", "tag_app")
    assert after.returncode == 0, after.output
    assert json.loads(after.stdout)["would_run"] is False


# --- Exercise 3.08 step 4 (engine): remove the image, then load it back --------
@pytest.mark.engine
def test_load_back_a_removed_image_with_doit_s_load(project, names, busybox_image, docker_cli):
    """`doit load` would re-tag first (tag_app makes the name again, so the load is up to
    date); `doit -s load` runs the load step alone and loads the tar back."""
    project = with_commands(project)
    shipping_chain(project, names, busybox_image)
    assert project.doit("load").returncode == 0
    ref = names + "/app:1.0.0"
    image_id = docker_cli("image", "inspect", "-f", "{{.Id}}", ref).strip()
    docker_cli("rmi", ref)

    alone = project.doit("-s", "load")
    assert alone.returncode == 0, alone.output
    assert "tag_app" not in alone.output and "transfer" not in alone.output  # only load ran
    assert "load: loading build/app.tar into %s: it has no %s" % (project.docker_host, ref) in alone.output
    assert docker_cli("image", "inspect", "-f", "{{.Id}}", ref).strip() == image_id

    docker_cli("rmi", ref)
    chained = project.doit("load")
    assert chained.returncode == 0, chained.output
    assert ".  tag_app" in chained.output and "-- load" in chained.output, chained.output  # re-tagged: no load
