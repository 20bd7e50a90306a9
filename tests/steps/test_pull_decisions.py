"""pull's decisions against fake engines (tests/support/fake_engine.py): up to date when
each target's image of that name carries the registry's digest; only the targets that
lack it pull; one that fails is named and the others still pull; the credentials go to
each engine with its requests. tests/steps/test_pull.py proves it on real hosts."""
import pytest

from tasks.errors import StepFailed
from tasks.steps import pull
from tests.support.fake_engine import FAKE_HOST, fake_engine, flow, install, out_of_date  # noqa: F401 (fixtures)

REF = "10.0.0.1:5000/lab/app:1"
HOST_B, HOST_C = "tcp://127.0.0.1:1", "tcp://127.0.0.1:2"


def pull_step(flow, extra=""):
    return flow.steps("""
        steps:
          pull_app:
            kind: pull
            image: "%s"
            %s
        """ % (REF, extra))["pull_app"]


def fan_out(flow, extra=""):
    return pull_step(flow, 'docker_hosts: ["%s", "%s", "%s"]\n            %s' % (FAKE_HOST, HOST_B, HOST_C, extra))


@pytest.fixture
def three(monkeypatch, fake_engine):
    """Three engines that reach one registry holding REF (base and app layers)."""
    engines = [fake_engine, install(monkeypatch, HOST_B), install(monkeypatch, HOST_C)]
    digests = {target.offer(REF, ["base", "app"]) for target in engines}
    assert len(digests) == 1
    return engines


def test_an_engine_without_the_image_pulls_it(flow, fake_engine):
    digest = fake_engine.offer(REF, ["base", "app"])
    assert out_of_date(pull, pull_step(flow)).reason == "pulling %s: %s: it lacks %s" % (REF, FAKE_HOST, digest[:19])


def test_an_image_carrying_the_registry_digest_is_up_to_date(flow, fake_engine):
    digest = fake_engine.offer(REF, ["base", "app"])
    fake_engine.add_image([REF], layers=["base", "app"], digests=["10.0.0.1:5000/lab/app@" + digest])
    assert pull.check(pull_step(flow), {}).current


def test_a_tag_the_registry_moved_is_pulled_again(flow, fake_engine):
    """The engine's image of that name carries the digest the tag had before."""
    fake_engine.add_image([REF], layers=["base", "app"], digests=["10.0.0.1:5000/lab/app@sha256:" + "0" * 64])
    digest = fake_engine.offer(REF, ["base", "app v2"])
    assert out_of_date(pull, pull_step(flow)).reason.endswith("it lacks %s" % digest[:19])


def test_a_tag_the_registry_lacks_is_a_sentence_naming_the_field(flow, fake_engine):
    with pytest.raises(StepFailed, match=r"steps.pull_app.image: the registry has no %s \(asked through the "
                                         r"engine %s\): push it first$" % (REF, FAKE_HOST)):
        pull.check(pull_step(flow), {})


def test_only_the_targets_that_lack_it_pull(flow, three):
    first, second, third = three
    step = fan_out(flow)
    pull.run(step, pull.check(step, {}))
    assert [target.verbs().count("pull") for target in three] == [1, 1, 1]
    third.add_image(["other:1"], layers=["x"])  # unrelated: its images are not what is asked
    first.remove_image("test", REF)
    verdict = out_of_date(pull, step)
    assert list(verdict.memo["pending"]) == [FAKE_HOST]
    pull.run(step, verdict)
    assert [target.verbs().count("pull") for target in three] == [2, 1, 1]
    assert pull.check(step, {}).current


def test_a_target_that_fails_is_named_and_the_others_still_pull(flow, three):
    first, second, third = three
    second.registry_reachable = False
    step = fan_out(flow)
    verdict = out_of_date(pull, step)
    with pytest.raises(StepFailed) as failure:
        pull.run(step, verdict)
    assert str(failure.value).splitlines()[0] == \
        "pull_app: 1 of 3 targets failed (the others are done; a rerun retries only these):"
    assert str(failure.value).splitlines()[1].startswith("    %s: registry of %s, asked through the engine %s"
                                                         % (HOST_B, REF, HOST_B))
    assert [target.verbs().count("pull") for target in three] == [1, 0, 1]
    second.registry_reachable = True
    verdict = out_of_date(pull, step)
    assert list(verdict.memo["pending"]) == [HOST_B]


def test_each_target_that_will_pull_is_named_with_why(flow, three):
    first, second, third = three
    second.registry_reachable = False
    digest = first.registry[REF]
    assert out_of_date(pull, fan_out(flow)).reason == (
        "pulling %s: %s: it lacks %s; %s: not asked: registry of %s, asked through the engine %s: inspect %s: "
        'Get "https://10.0.0.1:5000/v2/": dial tcp: connect: connection refused; %s: it lacks %s'
        % (REF, FAKE_HOST, digest[:19], HOST_B, REF, HOST_B, REF, HOST_C, digest[:19]))


def test_credentials_go_to_each_engine_with_the_pull(flow, three, monkeypatch):
    monkeypatch.setenv("REG_USER", "lab")
    monkeypatch.setenv("REG_PASS", "s3cret")
    step = fan_out(flow, "username_env: REG_USER\n            password_env: REG_PASS")
    pull.run(step, pull.check(step, {}))
    for target in three:
        (call,) = [call for call in target.calls if call[0] == "pull"]
        assert call == ("pull", REF, {"username": "lab", "password": "s3cret"})


@pytest.mark.parametrize("extra, message", [
    ('image: "10.0.0.1:5000/lab/app@sha256:%s"' % ("a" * 64), "names a digest; pull takes registry/repository:tag"),
    ("username_env: REG_USER", "credentials need both username_env and password_env"),
])
def test_definition_problems(flow, extra, message):
    step = flow.steps("""
        steps:
          pull_app:
            kind: pull
            image: "%s"
        """ % REF)["pull_app"]
    key, _, value = extra.partition(": ")
    step.spec[key] = value.strip('"')
    assert any(message in problem for problem in pull.problems(step)), pull.problems(step)
