"""Steps -> dependencies: implied by images and files, explicit `needs:`, and the
definition errors found before anything runs (no engine is touched here)."""
import textwrap

import pytest

from tasks import project_checks
from tasks.errors import WorkflowError


@pytest.fixture
def proj(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    class Proj:
        def write(self, relpath, text):
            path = tmp_path / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))

        def deps(self):
            return project_checks.dependencies(project_checks.load(str(tmp_path)))

        def problems(self):
            with pytest.raises(WorkflowError) as caught:
                self.deps()
            return caught.value.problems

    return Proj()


def lab(proj, extra=""):
    proj.write("workflows/base/Dockerfile", "ARG BASE=lab/busybox:1\nFROM ${BASE}\n")
    proj.write("workflows/app/Dockerfile", "FROM docker.io/library/basic-base:latest AS b\nFROM b\n")
    proj.write("workflows/lab.yaml", """
        steps:
          rootfs: {kind: import, image: lab/busybox:1, files: {bin/sh: /bin/sh}}
          build_base: {kind: build, context: base, image: basic-base}
          build_app: {kind: build, context: app, image: basic-app}
          tag: {kind: tag, source: basic-app, tags: ["me/basic-app:1.0.0"]}
          other: {kind: tag, source: somewhere/else, tags: ["x:1"]}
        """ + textwrap.indent(textwrap.dedent(extra), "  "))


def test_implied_dependencies(proj):
    lab(proj)
    assert proj.deps() == {"rootfs": [], "build_base": ["rootfs"], "build_app": ["build_base"],
                           "tag": ["build_app"], "other": []}


def test_copy_from_an_image_is_an_implied_dependency(proj):
    lab(proj, "  tool: {kind: build, context: tool, image: me/tool}\n")
    proj.write("workflows/tool/Dockerfile", "FROM lab/busybox:1\n")
    proj.write("workflows/app/Dockerfile", "FROM basic-base AS b\nCOPY --from=me/tool /bin/sh /x\n"
                                           "COPY --from=b /a /a\nCOPY --from=0 /c /c\n")
    assert proj.deps()["build_app"] == ["build_base", "tool"]


def test_explicit_needs_add_to_implied(proj):
    lab(proj, "  late: {kind: tag, source: a, tags: [b], needs: [other, tag]}\n")
    assert proj.deps()["late"] == ["other", "tag"]


def test_unknown_needs_with_did_you_mean(proj):
    lab(proj, "  late: {kind: tag, source: a, tags: [b], needs: [buld_app, zzz]}\n")
    assert proj.problems() == [
        "workflows/lab.yaml:8:51: steps.late.needs.0: unknown step 'buld_app' (did you mean 'build_app'?)",
        "workflows/lab.yaml:8:61: steps.late.needs.1: unknown step 'zzz'",
    ]


def test_cycle_through_needs_and_images(proj):
    proj.write("workflows/lab.yaml", """
        steps:
          build_a: {kind: tag, source: img/b, tags: [img/a], doc: makes a from b}
          build_b: {kind: tag, source: img/a, tags: [img/b]}
          c: {kind: tag, source: x, tags: [y], needs: [c]}
        """)
    assert proj.problems() == [
        "workflows/lab.yaml:3:3: steps.build_a: dependency cycle: build_a -> build_b -> build_a",
    ]


def test_self_need_is_a_cycle(proj):
    proj.write("workflows/lab.yaml", "steps:\n  c: {kind: tag, source: x, tags: [y], needs: [c]}\n")
    assert proj.problems() == ["workflows/lab.yaml:2:3: steps.c: dependency cycle: c -> c"]


def test_names_unique_across_files(proj):
    proj.write("workflows/a.yaml", "steps:\n  tag: {kind: tag, source: x, tags: [y]}\n")
    proj.write("workflows/b.yaml", "\nsteps:\n  tag: {kind: tag, source: x, tags: [z]}\n")
    with pytest.raises(WorkflowError) as caught:
        project_checks.load(".")
    assert caught.value.problems == [
        "workflows/b.yaml:3:3: steps.tag: step 'tag' is also defined at workflows/a.yaml:2:3: steps.tag; "
        "step names are doit task names and must be unique across workflows/"]


def test_cycle_through_doit_before_anything_runs(offline_project):
    """`doit build_a` on a cycle: exit 3, the cycle spelled out, no engine asked."""
    offline_project.workflow("""
        steps:
          build_a: {kind: tag, source: img/b, tags: [img/a]}
          build_b: {kind: tag, source: img/a, tags: [img/b], needs: [build_c]}
        """)
    done = offline_project.doit("build_a")
    assert done.returncode == 3, done.output
    assert "workflows/flow.yaml:3:3: steps.build_a: dependency cycle: build_a -> build_b -> build_a" in done.output
    assert "unknown step 'build_c' (did you mean 'build_b'?)" in done.output
    assert "Traceback" not in done.output and "docker.sock" not in done.output


def test_copy_from_flags_as_docker_reads_them():
    from tasks.steps.build import parse_from_lines

    text = ("FROM a AS b\nCOPY --from=\"img\" /x /y\nCOPY --from='i2' /a /b\nCOPY --from= f /f\n"
            "COPY /src --from=not-a-flag /y\nCOPY --chown=1 --from=B /a /b\nCOPY --from=0 /a /b\n")
    assert parse_from_lines(text, {}) == ["a", "img", "i2"]
    # build args reach COPY --from as they reach FROM; scratch is no image either way
    text = "ARG TOOLS=tools:1\nFROM scratch AS s\nCOPY --from=${TOOLS} /t /t\nCOPY --from=scratch /a /b\n"
    assert parse_from_lines(text, {}) == ["tools:1"]
    assert parse_from_lines(text, {"TOOLS": "tools:2"}) == ["tools:2"]


def test_two_steps_making_one_image_or_file_is_a_definition_error(proj):
    """They would rebuild each other on every run; the same name in other words counts too."""
    proj.write("workflows/lab.yaml", """
        steps:
          one: {kind: tag, source: x, tags: [lab/app]}
          two: {kind: tag, source: y, tags: ["docker.io/lab/app:latest"]}
          elsewhere: {kind: tag, source: y, tags: [lab/app], docker_host: "ssh://me@hostb"}
          save_a: {kind: save, image: x, tar: out/app.tar}
          save_b: {kind: save, image: y, tar: ./out/../out/app.tar}
        """)
    assert proj.problems() == [
        "workflows/lab.yaml:4:3: steps.two: image docker.io/lab/app:latest is also made by step 'one' "
        "(workflows/lab.yaml:3:3: steps.one); two steps that make one image undo each other's work on every "
        "run: give one of them another name",
        "workflows/lab.yaml:7:3: steps.save_b: file workflows/out/app.tar is also made by step 'save_a' "
        "(workflows/lab.yaml:6:3: steps.save_a); two steps that make one file undo each other's work on every "
        "run: give one of them another path",
    ]


def test_pushing_an_image_under_its_own_name_is_no_second_maker(proj):
    """docker tag + docker push: the push step's target is the tag step's image."""
    proj.write("workflows/lab.yaml", """
        vars:
          prod_a: {env: DOCKFLOW_TEST_UNSET_A}
          prod_b: {env: DOCKFLOW_TEST_UNSET_B}
        steps:
          push: {kind: push, image: "localhost:5000/lab/app:1", registry: "localhost:5000"}
          tag: {kind: tag, source: x, tags: ["localhost:5000/lab/app:1"]}
          a: {kind: tag, source: x, tags: [lab/app], docker_host: "${prod_a}"}
          b: {kind: tag, source: x, tags: [lab/app], docker_host: "${prod_b}"}
        """)
    all_steps, deps = project_checks.checked_steps(".")  # no WorkflowError
    assert deps["push"] == ["tag"]


def test_a_command_line_variable_no_workflow_declares_is_refused(proj):
    """doit passes any name=value on; a misspelt one would be ignored without a word."""
    proj.write("workflows/lab.yaml", """
        vars: {version: 1.0.0}
        steps:
          tag: {kind: tag, source: x, tags: ["lab/app:${version}"]}
        """)
    with pytest.raises(WorkflowError) as caught:
        project_checks.checked_steps(".", given={"versoin": "2.0.0", "version": "2.0.0", "dry_run": "true"})
    assert caught.value.problems == [
        "command line: versoin=2.0.0: no workflow declares a variable 'versoin' (did you mean 'version'?) "
        "(variables: build_cache, containers, dangling, dry_run, keep_label, keep_last, keep_versions, labels, "
        "not_labels, older_than, scope, unused, version)"]  # prune's policy fields are switches too
    project_checks.checked_steps(".", given={"version": "2.0.0", "dry_run": "true"})  # no WorkflowError


def test_every_definition_error_at_once_in_line_order(proj):
    """A kind typo and a reserved name in one step each do not hide the other steps'
    errors (a missing context, an unknown `needs:`, a cycle, a step kind's own check),
    and all of them come out in the file's line order."""
    proj.write("workflows/app/Dockerfile", "FROM scratch\n")
    proj.write("workflows/flow.yaml", """\
        steps:
          build_base:
            kind: build
            context: nowhere
            image: x/base
          build_app:
            kind: biuld
            context: app
            image: x/app
          list:
            kind: tag
            source: x/app
            tags: [x/app:1]
          tag_it:
            kind: tag
            source: x/app
            tags: [x/app:2]
            needs: [bulid_app, build_app]
          a: {kind: tag, source: x/b, tags: [x/a]}
          b: {kind: tag, source: x/a, tags: [x/b]}
          copy: {kind: copy_out, source: x/app, path: relative, target: out}
        """)
    with pytest.raises(WorkflowError) as caught:
        project_checks.checked_steps(".")
    assert caught.value.problems == [
        "workflows/flow.yaml:4:5: steps.build_base.context: 'nowhere' is not a folder",
        "workflows/flow.yaml:7:5: steps.build_app.kind: 'biuld' is not a step kind (did you mean 'build'?); "
        "the kinds: build, import, tag, registry, push, commit, copy_out, save, transfer, load, pull, prune",
        "workflows/flow.yaml:10:3: steps.list: step name 'list' is a doit command; `doit list` would not run it: "
        "rename the step",
        # build_app is broken, not unknown: naming it is no error, and the near miss still finds it
        "workflows/flow.yaml:18:13: steps.tag_it.needs.0: unknown step 'bulid_app' (did you mean 'build_app'?)",
        "workflows/flow.yaml:19:3: steps.a: dependency cycle: a -> b -> a",
        "workflows/flow.yaml:21:41: steps.copy.path: 'relative' must be an absolute path inside the image",
    ]


def test_a_file_whose_own_shape_is_wrong_still_stops_at_its_schema_errors(proj):
    """Outside every step (here `vars`), nothing of the file can be trusted: its steps are not read."""
    proj.write("workflows/flow.yaml", """\
        vars: [not, a, mapping]
        steps:
          build_base: {kind: build, context: nowhere, image: x/base}
        """)
    with pytest.raises(WorkflowError) as caught:
        project_checks.checked_steps(".")
    assert [p.split(": ")[0] for p in caught.value.problems] == ["workflows/flow.yaml:1:1"]
