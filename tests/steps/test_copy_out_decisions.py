"""copy_out's decisions against the fake engine: up to date when the source image and
the step's definition are those of the last copy and the target exists.
tests/steps/test_copy_out.py proves the copy itself against the real engine."""
import os

import pytest

from tasks.errors import StepFailed
from tasks.steps import copy_out
from tests.support.fake_engine import fake_engine, flow, out_of_date  # noqa: F401 (fixtures among them)

WHAT = "copying %s out of lab/app:1 to out/app.conf"


def load(flow, path="/etc/app.conf"):
    return flow.steps("""
        steps:
          copy_config:
            kind: copy_out
            source: lab/app:1
            path: %s
            target: ../out/app.conf
        """ % path)["copy_config"]


@pytest.fixture
def source_id(fake_engine):
    return fake_engine.add_image(["lab/app:1"], layers=["base", "app"])


def copied(flow, step):
    """The values a copy records (the target written as a run would)."""
    flow.write("out/app.conf", "setting=1\n")
    return copy_out.check(step, {}).memo


def reason(step, saved=None):
    return out_of_date(copy_out, step, saved).reason


def test_a_missing_target_is_copied(flow, source_id):
    assert reason(load(flow), {}) == WHAT % "/etc/app.conf" + ": the target does not exist"


def test_a_target_with_no_copy_recorded_is_copied_again(flow, source_id):
    flow.write("out/app.conf", "setting=1\n")
    assert reason(load(flow), {}) == WHAT % "/etc/app.conf" + ": no earlier copy recorded here"


def test_the_same_source_and_definition_are_up_to_date(flow, source_id):
    step = load(flow)
    assert copy_out.check(step, copied(flow, step)).current


def test_a_removed_target_is_copied_again(flow, source_id):
    step = load(flow)
    saved = copied(flow, step)
    os.unlink(flow.path("out/app.conf"))
    assert reason(step, saved) == WHAT % "/etc/app.conf" + ": the target does not exist"


def test_a_new_source_image_is_named(flow, fake_engine, source_id):
    step = load(flow)
    saved = copied(flow, step)
    new_id = fake_engine.add_image(["lab/app:1"], layers=["base", "app v2"])
    assert reason(step, saved) == WHAT % "/etc/app.conf" + ": source image lab/app:1 is new (%s)" % new_id[7:19]


def test_another_path_is_a_changed_definition(flow, source_id):
    saved = copied(flow, load(flow))
    assert reason(load(flow, "/etc/other.conf"), saved) == (
        WHAT % "/etc/other.conf" + ": the step's definition changed")


def test_a_new_source_and_another_path_are_both_named(flow, fake_engine, source_id):
    saved = copied(flow, load(flow))
    new_id = fake_engine.add_image(["lab/app:1"], layers=["base", "app v2"])
    assert reason(load(flow, "/etc/other.conf"), saved) == (
        WHAT % "/etc/other.conf" + ": source image lab/app:1 is new (%s); the step's definition changed" % new_id[7:19])


def test_a_missing_source_fails_the_check(flow, fake_engine):
    with pytest.raises(StepFailed, match="steps.copy_config.source: source image lab/app:1 is not in the engine"):
        copy_out.check(load(flow), {})


def test_a_relative_path_inside_the_image_is_a_definition_problem(flow):
    assert copy_out.problems(load(flow, "etc/app.conf")) == [
        "workflows/flow.yaml:6:5: steps.copy_config.path: 'etc/app.conf' must be an absolute path inside the image"]
