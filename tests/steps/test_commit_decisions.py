"""commit's decisions against the fake engine: up to date when the image's inputs label
equals the digest of (source id, command, definition); the reason names what changed.
tests/steps/test_commit.py proves it against the real engine."""
import pytest

from tasks.digest import value_digest
from tasks.labels import INPUTS_LABEL
from tasks.errors import StepFailed
from tasks.steps import commit
from tests.support.fake_engine import fake_engine, flow, out_of_date  # noqa: F401 (fixtures among them)


def load(flow, command='[sh, -c, "echo data > /data.txt"]'):
    return flow.steps("""
        steps:
          add_data:
            kind: commit
            source: lab/app:1
            image: lab/app-test:1
            command: %s
        """ % command)["add_data"]


@pytest.fixture
def source_id(fake_engine):
    return fake_engine.add_image(["lab/app:1"], layers=["base", "app"], cmd=["serve"])


def committed(step):
    """The values the run records, after a run against the fake engine."""
    return commit.run(step, commit.check(step, {}))


def reason(step, saved=None):
    return out_of_date(commit, step, saved).reason


def test_an_image_the_engine_lacks_is_committed(flow, source_id):
    assert reason(load(flow), {}) == "committing lab/app-test:1: the engine has no such image"


def test_the_run_labels_its_image_and_the_next_check_is_up_to_date(flow, fake_engine, source_id):
    step = load(flow)
    values = committed(step)
    image = fake_engine.inspect_image("lab/app-test:1")
    assert image["Config"]["Labels"][INPUTS_LABEL] == values["input_digest"]
    assert image["Config"]["Cmd"] == ["serve"]  # the source's CMD, not the command that made the data
    assert commit.check(step, values).current
    assert commit.check(step, {}).current  # the label alone says so
    assert not fake_engine.container_store  # the temporary container is gone


def test_the_inputs_label_is_the_digest_of_source_command_and_definition(flow, fake_engine, source_id):
    """The label's recipe, as the module's doc gives it: an image labelled by an earlier
    dockflow stays up to date as long as the recipe does not change."""
    step = load(flow)
    committed(step)
    expected = value_digest({"source": source_id, "command": ["sh", "-c", "echo data > /data.txt"],
                             "definition": value_digest(step.expanded_definition())})
    assert fake_engine.image_labels("lab/app-test:1")[INPUTS_LABEL] == expected


def test_a_new_source_image_is_named_with_its_id(flow, fake_engine, source_id):
    step = load(flow)
    values = committed(step)
    new_id = fake_engine.add_image(["lab/app:1"], layers=["base", "app v2"])
    assert reason(step, values) == "committing lab/app-test:1 again: source image lab/app:1 is new (%s)" % new_id[7:19]


def test_an_edited_command_is_a_changed_definition(flow, source_id):
    values = committed(load(flow))
    assert reason(load(flow, '[sh, -c, "echo other > /data.txt"]'), values) == (
        "committing lab/app-test:1 again: the step's definition changed")


def test_a_new_source_and_an_edited_command_are_both_named(flow, fake_engine, source_id):
    values = committed(load(flow))
    new_id = fake_engine.add_image(["lab/app:1"], layers=["base", "app v2"])
    assert reason(load(flow, "[touch, /x]"), values) == (
        "committing lab/app-test:1 again: source image lab/app:1 is new (%s); the step's definition changed"
        % new_id[7:19])


def test_without_a_record_the_reason_says_so(flow, source_id):
    committed(load(flow))
    assert reason(load(flow, "[touch, /x]"), {}) == (
        "committing lab/app-test:1 again: its source or command differ from those it was made from "
        "(no earlier run recorded here)")


def test_an_image_made_elsewhere_under_the_name_is_committed_again(flow, fake_engine, source_id):
    step = load(flow)
    values = committed(step)
    fake_engine.add_image(["lab/app-test:1"], labels={INPUTS_LABEL: "sha256:" + "0" * 64})
    assert reason(step, values) == (
        "committing lab/app-test:1 again: the image's label does not match its inputs (made elsewhere?)")


def test_a_failing_command_commits_nothing_and_quotes_its_last_lines(flow, fake_engine, source_id):
    fake_engine.run_command = lambda container: (2, "one\nsh: cannot create /data.txt: Read-only\n")
    step = load(flow)
    with pytest.raises(StepFailed) as failure:
        commit.run(step, commit.check(step, {}))
    assert str(failure.value).startswith(
        'workflows/flow.yaml:7:5: steps.add_data.command: the command ["sh", "-c", "echo data > /data.txt"] '
        "exited with 2 in a container of lab/app:1; nothing committed")
    assert "      | sh: cannot create /data.txt: Read-only" in str(failure.value)
    assert "commit" not in fake_engine.verbs() and not fake_engine.container_store


def test_a_missing_source_fails_the_check(flow, fake_engine):
    with pytest.raises(StepFailed, match="steps.add_data.source: source image lab/app:1 is not in the engine"):
        commit.check(load(flow), {})
