"""tag's decisions against the fake engine: which tags move, which never do, and what
the run says. tests/steps/test_tag.py proves the same against the real engine."""
import pytest

from tasks.errors import StepFailed
from tasks.steps import tag
from tests.support.fake_engine import fake_engine, flow  # noqa: F401 (fixtures)

FLOW = """
    steps:
      tag_app:
        kind: tag
        source: lab/app:dev
        tags: [lab/app:1.0.0, lab/app:latest, lab/app:abc123]
        %s
    """


@pytest.fixture
def two_images(fake_engine):
    """(id of lab/app:dev, id of another image)."""
    return fake_engine.add_image(["lab/app:dev"], layers=["base", "app"]), fake_engine.add_image(["lab/other"])


def load(flow, extra=""):
    return flow.steps(FLOW % extra)["tag_app"]


def test_new_tags_are_made_and_the_reason_names_them(flow, two_images):
    app_id, _ = two_images
    verdict = tag.check(load(flow), {})
    assert not verdict.current
    assert verdict.reason == "tagging lab/app:dev (%s) as lab/app:1.0.0, lab/app:latest, lab/app:abc123" % app_id[7:19]
    assert verdict.memo["to_tag"] == {"lab/app:1.0.0": None, "lab/app:latest": None, "lab/app:abc123": None}


def test_tags_that_name_the_source_already_are_up_to_date(flow, fake_engine, two_images):
    app_id, _ = two_images
    for ref in ("lab/app:1.0.0", "lab/app:latest", "lab/app:abc123"):
        fake_engine.tag("arrange", app_id, ref)
    verdict = tag.check(load(flow), {})
    assert verdict.current and verdict.memo["to_tag"] == {}


def test_a_version_tag_on_another_image_is_refused(flow, fake_engine, two_images):
    app_id, other_id = two_images
    fake_engine.tag("arrange", other_id, "lab/app:1.0.0")
    with pytest.raises(StepFailed) as failure:
        tag.check(load(flow), {})
    assert str(failure.value) == (
        "workflows/flow.yaml:6:5: steps.tag_app.tags: lab/app:1.0.0 already names another image (%s), not "
        "lab/app:dev (%s); a version tag is not moved: bump the version or set force: true"
        % (other_id[7:19], app_id[7:19]))


def test_force_moves_a_version_tag(flow, fake_engine, two_images):
    _, other_id = two_images
    fake_engine.tag("arrange", other_id, "lab/app:1.0.0")
    verdict = tag.check(load(flow, "force: true"), {})
    assert not verdict.current and verdict.memo["to_tag"]["lab/app:1.0.0"] == other_id


def test_latest_may_move_and_the_run_warns_that_it_is_a_moving_target(flow, fake_engine, two_images, capsys):
    app_id, other_id = two_images
    for ref in ("lab/app:1.0.0", "lab/app:abc123"):
        fake_engine.tag("arrange", app_id, ref)
    fake_engine.tag("arrange", other_id, "lab/app:latest")
    step = load(flow)
    verdict = tag.check(step, {})
    assert verdict.memo["to_tag"] == {"lab/app:latest": other_id}
    assert tag.run(step, verdict) == {"source_id": app_id, "tags": ["lab/app:1.0.0", "lab/app:latest",
                                                                    "lab/app:abc123"]}
    assert "tag_app: warning: lab/app:latest is a moving target" in capsys.readouterr().out
    assert fake_engine.image_id("lab/app:latest") == app_id
    assert tag.check(step, {}).current  # the run twice: nothing left to do


def test_a_tag_listed_in_moving_moves_with_a_note_of_what_it_named(flow, fake_engine, two_images, capsys):
    app_id, other_id = two_images
    fake_engine.tag("arrange", other_id, "lab/app:abc123")
    step = load(flow, "moving: [lab/app:abc123]")
    verdict = tag.check(step, {})
    assert verdict.memo["to_tag"]["lab/app:abc123"] == other_id
    tag.run(step, verdict)
    assert "tag_app: moving lab/app:abc123 from %s to %s" % (other_id[7:19], app_id[7:19]) in capsys.readouterr().out
    assert [call[2] for call in fake_engine.calls if call[0] == "tag"] == [
        "lab/app:abc123", "lab/app:1.0.0", "lab/app:latest", "lab/app:abc123"]  # the first: the arrangement


def test_a_missing_source_says_where_it_is_asked_for(flow, fake_engine):
    with pytest.raises(StepFailed, match=r"steps.tag_app.source: source image lab/app:dev is not in the engine "
                                         r"unix:///nonexistent/dockflow-fake-engine.sock \(no step builds it\?\)"):
        tag.check(load(flow), {})


def test_a_moving_entry_that_is_not_one_of_the_tags_is_a_definition_problem(flow):
    step = load(flow, "moving: [lab/app:nightly]")
    assert tag.problems(step) == ["workflows/flow.yaml:7:14: steps.tag_app.moving.0: 'lab/app:nightly' is not "
                                  "one of this step's tags"]
