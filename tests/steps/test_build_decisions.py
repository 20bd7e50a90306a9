"""build's decisions against the fake engine: when an image is up to date, and the
reason `why_changed` gives when it is not (a context file, the Dockerfile, a base
image, the step's definition, the image itself). tests/steps/test_build.py proves
the same against the real engine's builder."""
import os

import pytest

from tasks.labels import INPUTS_LABEL
from tasks.steps import build
from tests.support.fake_engine import fake_engine, files_hashed, flow, out_of_date  # noqa: F401 (fixtures among them)

FLOW = """
    steps:
      build_app:
        kind: build
        context: ../app
        image: lab/app:1
        args: {GREETING: %s}
        %s
    """
SAVED_FIELDS = ("input_digest", "files", "bases", "definition_digest")


@pytest.fixture
def app(flow, fake_engine):
    """A context folder (Dockerfile FROM lab/base:1, hello.txt); the base image is in the engine."""
    flow.write("app/Dockerfile", "FROM lab/base:1\nARG GREETING\nCOPY hello.txt /\n")
    flow.write("app/hello.txt", "hello\n")
    fake_engine.add_image(["lab/base:1"], layers=["base"])
    return flow


def load(flow, greeting="hi", extra=""):
    return flow.steps(FLOW % (greeting, extra))["build_app"]


def built(fake_engine, step):
    """The saved values of a successful build of `step` now (as run() records them): its image in the engine."""
    verdict = build.check(step, {})
    image_id = fake_engine.add_image(["lab/app:1"], layers=["base", "app"])
    return dict({field: verdict.memo[field] for field in SAVED_FIELDS}, image_id=image_id)


def reason(step, saved=None):
    return out_of_date(build, step, saved).reason


def test_an_image_the_engine_lacks_is_built(app):
    assert reason(load(app), {}) == "building lab/app:1: the engine has no such image"


def test_a_recorded_build_with_the_same_inputs_is_up_to_date(app, fake_engine):
    step = load(app)
    assert build.check(step, built(fake_engine, step)).current


def test_an_image_with_no_build_recorded_here_is_rebuilt(app, fake_engine):
    step = load(app)
    built(fake_engine, step)
    assert reason(step, {}) == (
        "rebuilding lab/app:1: no successful build of it is recorded in this project (a first run here, or its "
        "last build failed); Docker's cache makes an unchanged build quick")


def test_an_edited_context_file_is_named(app, fake_engine):
    step = load(app)
    saved = built(fake_engine, step)
    app.write("app/hello.txt", "hello again\n")
    app.write("app/new.txt", "new\n")
    assert reason(step, saved) == "rebuilding lab/app:1: changed: hello.txt, new.txt (new)"


def test_a_file_touched_without_a_content_change_rebuilds_nothing(app, fake_engine):
    step = load(app)
    saved = built(fake_engine, step)
    os.utime(app.path("app/hello.txt"), (1, 1))
    app.write("app/hello.txt", "hello\n")  # a new ctime, the same bytes
    assert build.check(step, saved).current


def test_an_edited_dockerfile_is_named(app, fake_engine):
    step = load(app)
    saved = built(fake_engine, step)
    app.write("app/Dockerfile", "FROM lab/base:1\nARG GREETING\nCOPY hello.txt /srv/\n")
    assert reason(step, saved) == "rebuilding lab/app:1: changed: Dockerfile"


def test_a_rebuilt_base_image_is_named_with_its_new_id(app, fake_engine):
    step = load(app)
    saved = built(fake_engine, step)
    new_base = fake_engine.add_image(["lab/base:1"], layers=["base", "security fix"])
    assert reason(step, saved) == "rebuilding lab/app:1: base image lab/base:1 is new (%s)" % new_base[7:19]


def test_a_removed_base_image_is_named_missing(app, fake_engine):
    step = load(app)
    saved = built(fake_engine, step)
    fake_engine.remove_image("arrange", "lab/base:1")
    assert reason(step, saved) == "rebuilding lab/app:1: base image lab/base:1 is missing"


def test_a_changed_build_arg_is_a_changed_definition(app, fake_engine):
    saved = built(fake_engine, load(app, greeting="hi"))
    assert reason(load(app, greeting="hello"), saved) == "rebuilding lab/app:1: the step's definition changed"


def test_a_doc_edit_rebuilds_nothing(app, fake_engine):
    saved = built(fake_engine, load(app))
    assert build.check(load(app, extra="doc: the app, now documented"), saved).current


def test_an_image_replaced_under_the_name_is_rebuilt(app, fake_engine):
    step = load(app)
    saved = built(fake_engine, step)
    other = fake_engine.add_image(["lab/app:1"], layers=["someone else's"])
    assert reason(step, saved) == (
        "rebuilding lab/app:1: the engine's image of that name (%s) is not the one this step built (%s)"
        % (other[7:19], saved["image_id"][7:19]))


def test_a_removed_image_is_built_again(app, fake_engine):
    step = load(app)
    saved = built(fake_engine, step)
    fake_engine.remove_image("arrange", "lab/app:1")
    assert reason(step, saved) == "building lab/app:1: the engine has no such image"


def test_an_extra_tag_that_is_missing_is_only_tagged(app, fake_engine):
    step = load(app, extra="tags: [lab/app:latest]")
    saved = built(fake_engine, step)
    verdict = build.check(step, saved)
    assert not verdict.current
    assert verdict.reason == "tagging lab/app:1 as lab/app:latest"
    assert verdict.memo["image_id"] == saved["image_id"]  # run() tags it; nothing is built


def test_every_missing_extra_tag_is_named(app, fake_engine):
    step = load(app, extra="tags: [lab/app:latest, lab/app:stable]")
    assert reason(step, built(fake_engine, step)) == "tagging lab/app:1 as lab/app:latest, lab/app:stable"


def test_a_dockerignore_that_excludes_itself_is_still_an_input(app, fake_engine):
    """docker build sends .dockerignore whatever it says (as it does the Dockerfile)."""
    app.write("app/.dockerignore", ".dockerignore\n")
    step = load(app)
    saved = built(fake_engine, step)
    app.write("app/.dockerignore", ".dockerignore\n*.log\n")
    assert reason(step, saved) == "rebuilding lab/app:1: changed: .dockerignore"


def test_a_dockerfile_outside_the_context_is_an_input(app, fake_engine):
    app.write("docker/app.Dockerfile", "FROM lab/base:1\nCOPY hello.txt /\n")
    step = load(app, extra="dockerfile: ../docker/app.Dockerfile")
    saved = built(fake_engine, step)
    app.write("docker/app.Dockerfile", "FROM lab/base:1\nCOPY hello.txt /srv/\n")
    assert reason(step, saved) == "rebuilding lab/app:1: changed: ../docker/app.Dockerfile"


def test_recorded_stats_spare_reading_the_context_again(app, fake_engine, files_hashed):
    """The files were written just now, so the step's hash file does not keep them yet
    (digest.SETTLED_NS): only the record of the last build spares hashing them."""
    step = load(app)
    saved = built(fake_engine, step)
    del files_hashed[:]
    assert build.check(step, saved).current
    assert files_hashed == []


def test_a_record_whose_digest_its_parts_do_not_explain_gets_the_general_reason(app, fake_engine):
    """Same image, files, bases and definition, another input digest: a record written by a
    dockflow whose digest recipe differed (or damaged). The build runs; the reason says no more."""
    step = load(app)
    saved = dict(built(fake_engine, step), input_digest="sha256:" + "0" * 64)
    assert reason(step, saved) == "rebuilding lab/app:1: its inputs differ from those recorded"


def test_the_inputs_label_stands_for_a_lost_record(app, fake_engine):
    """cache_from builds carry their digest as a label: a lost .dockflow/ rebuilds nothing."""
    step = load(app, extra="cache_from: [lab/app:1]")
    digest = build.check(step, {}).memo["input_digest"]
    fake_engine.add_image(["lab/app:1"], layers=["base", "app"], labels={INPUTS_LABEL: digest})
    assert build.check(step, {}).current


def test_the_run_records_what_the_next_check_compares(app, fake_engine):
    """The run twice: what run() returns makes the next check up to date."""
    step = load(app)
    saved = build.run(step, build.check(step, {}))
    assert saved["image_id"] == fake_engine.image_id("lab/app:1")
    assert build.check(step, saved).current
    (options,) = [call[1] for call in fake_engine.calls if call[0] == "build"]
    assert options["buildargs"] == {"GREETING": "hi"} and options["tag"] == "lab/app:1"


def test_the_bases_read_from_the_dockerfile_are_inputs(app):
    assert build.inputs(load(app)) == [("image", "lab/base:1"), ("file", app.path("app"))]


def builders_asked(fake_engine):
    """True for each build the engine was asked to make with BuildKit, False for the legacy builder."""
    return [call[2] for call in fake_engine.calls if call[0] == "build"]


def test_buildkit_builds_by_default(app, fake_engine, monkeypatch):
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    step = load(app)
    build.run(step, build.check(step, {}))
    assert builders_asked(fake_engine) == [True]


@pytest.mark.parametrize("value", ["0", "false", "FALSE"])
def test_docker_buildkit_false_asks_the_legacy_builder(app, fake_engine, monkeypatch, value):
    monkeypatch.setenv("DOCKER_BUILDKIT", value)
    step = load(app)
    build.run(step, build.check(step, {}))
    assert builders_asked(fake_engine) == [False]


def test_a_step_with_cache_from_asks_the_legacy_builder(app, fake_engine, monkeypatch):
    """Its label and cache_from keep the legacy builder's meaning (see build's doc)."""
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    step = load(app, extra="cache_from: [lab/app:1]")
    build.run(step, build.check(step, {}))
    assert builders_asked(fake_engine) == [False]


def test_a_dockerfile_whose_name_needs_a_long_tar_header_asks_the_legacy_builder(flow, fake_engine, monkeypatch):
    """BuildKit reads a context tar whose first header is a long name's as a Dockerfile."""
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    deep = "/".join(["folder%02d" % level for level in range(12)]) + "/Dockerfile"  # 107 bytes
    flow.write("app/" + deep, "FROM lab/base:1\n")
    fake_engine.add_image(["lab/base:1"], layers=["base"])
    step = flow.steps(FLOW % ("hi", "dockerfile: %s" % deep))["build_app"]
    build.run(step, build.check(step, {}))
    assert builders_asked(fake_engine) == [False]


def test_an_engine_without_buildkit_builds_with_its_legacy_builder_and_says_so(app, fake_engine, monkeypatch, capsys):
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    fake_engine.buildkit_refusal = "buildkit is only supported with experimental mode"  # Engine 18.09's words
    step = load(app)
    saved = build.run(step, build.check(step, {}))
    assert builders_asked(fake_engine) == [True, False]
    assert saved["image_id"] == fake_engine.image_id("lab/app:1")
    assert ("build_app: warning: the engine cannot build with BuildKit (buildkit is only supported with "
            "experimental mode); building with its legacy builder") in capsys.readouterr().out


def test_a_failure_of_the_build_itself_is_not_tried_again(app, fake_engine, monkeypatch):
    """Only a refusal before the build began falls back; a build that failed fails."""
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    fake_engine.build_error = "buildkit: executor failed running [/bin/sh -c false]: exit code: 1"
    step = load(app)
    with pytest.raises(build.StepFailed, match="failed at `RUN false`: buildkit: executor failed"):
        build.run(step, build.check(step, {}))
    assert builders_asked(fake_engine) == [True]


def test_a_refusal_that_names_buildkit_only_in_our_words_is_not_a_refusal_of_buildkit(flow, fake_engine, monkeypatch):
    """A step, image or folder called buildkit-something: only the engine's words count."""
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    flow.write("buildkit/Dockerfile", "FROMM nothing\n")
    step = flow.steps("""
        steps:
          buildkit_demo: {kind: build, context: ../buildkit, image: lab/buildkit}
        """)["buildkit_demo"]
    fake_engine.buildkit_refusal = "dockerfile parse error line 1: unknown instruction: FROMM"
    with pytest.raises(build.StepFailed, match="unknown instruction: FROMM"):
        build.run(step, build.check(step, {}))
    assert builders_asked(fake_engine) == [True]


def test_where_the_sdk_sends_the_build_the_legacy_builder_builds_and_a_line_says_why(app, fake_engine, monkeypatch,
                                                                                   capsys):
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    fake_engine.plain = False
    step = load(app)
    build.run(step, build.check(step, {}))
    assert builders_asked(fake_engine) == [False]
    assert "build_app: the legacy builder builds it: the SDK sends this build" in capsys.readouterr().out


def test_a_docker_buildkit_value_that_is_not_a_boolean_is_refused(app, fake_engine, monkeypatch):
    monkeypatch.setenv("DOCKER_BUILDKIT", "no")
    step = load(app)
    with pytest.raises(build.StepFailed, match="DOCKER_BUILDKIT=no: expected a boolean"):
        build.run(step, build.check(step, {}))
    assert builders_asked(fake_engine) == []
