"""push's comparison against the fake engine and a small HTTP registry of the test's own
(canned manifests on loopback, as tests/test_registry_api.py serves them): when the
registry already holds the image, when a tag may be replaced, and what happens when the
registry does not answer. tests/steps/test_push.py proves it against a real registry."""
import json
import socket

import pytest

from tasks.errors import StepFailed
from tasks.registry_api import RegistryDenied
from tasks.steps import push
from tests.support.fake_engine import _module_registry, canned_registry, fake_engine, flow  # noqa: F401 (fixtures)

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
OTHER_DIGEST = "sha256:" + "e" * 64


def load(flow, registry, image="lab/app:1.0.0", extra=""):
    return flow.steps("""
        steps:
          push_app:
            kind: push
            image: %s
            registry: "%s"
            %s
        """ % (image, registry, extra))["push_app"]


def hold(routes, repository, tag, config_digest, digest):
    """The registry holds repository:tag as a manifest naming `config_digest`."""
    body = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                  "digest": config_digest}, "layers": []}).encode()
    routes["/v2/%s/manifests/%s" % (repository, tag)] = (
        200, {"Docker-Content-Digest": digest, "Content-Type": MANIFEST_TYPE}, body)


def silent_address():
    """host:port on loopback where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return "127.0.0.1:%d" % probe.getsockname()[1]


@pytest.fixture
def app_id(fake_engine):
    return fake_engine.add_image(["lab/app:1.0.0", "lab/app:latest"], layers=["base", "app"])


def test_a_registry_without_the_tag_gets_a_push(flow, canned_registry, app_id):
    address, routes, seen = canned_registry
    verdict = push.check(load(flow, address), {})
    assert not verdict.current
    assert verdict.reason == "pushing lab/app:1.0.0 as %s/lab/app:1.0.0: the registry has no such tag" % address
    assert seen[-1][0] == "/v2/lab/app/manifests/1.0.0"


def test_a_manifest_naming_the_image_id_as_its_config_is_up_to_date(flow, canned_registry, app_id):
    address, routes, _ = canned_registry
    hold(routes, "lab/app", "1.0.0", app_id, OTHER_DIGEST)
    verdict = push.check(load(flow, address), {})
    assert verdict.current and verdict.memo["digest"] == OTHER_DIGEST


def test_a_digest_among_the_image_repo_digests_is_up_to_date(flow, canned_registry, fake_engine, app_id):
    """A manifest list, say: its config is not the image's, but the engine recorded the digest at the push."""
    address, routes, _ = canned_registry
    hold(routes, "lab/app", "1.0.0", "sha256:" + "c" * 64, OTHER_DIGEST)
    fake_engine.image_store[app_id]["RepoDigests"].append("%s/lab/app@%s" % (address, OTHER_DIGEST))
    assert push.check(load(flow, address), {}).current


def test_a_repo_digest_of_another_repository_does_not_count(flow, canned_registry, fake_engine, app_id):
    address, routes, _ = canned_registry
    hold(routes, "lab/app", "1.0.0", "sha256:" + "c" * 64, OTHER_DIGEST)
    fake_engine.image_store[app_id]["RepoDigests"].append("%s/lab/other@%s" % (address, OTHER_DIGEST))
    with pytest.raises(StepFailed, match="a version tag is not replaced"):
        push.check(load(flow, address), {})


def test_a_version_tag_holding_another_image_is_refused(flow, canned_registry, app_id):
    address, routes, _ = canned_registry
    hold(routes, "lab/app", "1.0.0", "sha256:" + "c" * 64, OTHER_DIGEST)
    with pytest.raises(StepFailed) as failure:
        push.check(load(flow, address), {})
    assert str(failure.value) == (
        "workflows/flow.yaml:5:5: steps.push_app.image: the registry holds %s/lab/app:1.0.0 as another image "
        "(%s), not lab/app:1.0.0 (%s); a version tag is not replaced: bump the version or set force: true"
        % (address, OTHER_DIGEST[:19], app_id[:19]))


@pytest.mark.parametrize("image, extra", [("lab/app:latest", ""), ("lab/app:1.0.0", "force: true")])
def test_latest_or_a_forced_tag_may_be_replaced(flow, canned_registry, app_id, image, extra):
    address, routes, _ = canned_registry
    tag = image.split(":")[1]
    hold(routes, "lab/app", tag, "sha256:" + "c" * 64, OTHER_DIGEST)
    verdict = push.check(load(flow, address, image, extra), {})
    assert not verdict.current
    assert verdict.reason == "pushing %s as %s/lab/app:%s: the registry's tag names another image (%s)" % (
        image, address, tag, OTHER_DIGEST[:19])


def test_a_registry_neither_this_machine_nor_the_engine_reaches_is_retried_later(flow, fake_engine, app_id):
    address = silent_address()
    fake_engine.registry_reachable = False
    verdict = push.check(load(flow, address), {})
    assert not verdict.current
    assert verdict.reason == ("pushing lab/app:1.0.0 as %s/lab/app:1.0.0 (the registry does not answer yet: "
                              "will retry)" % address)
    assert "does not answer" in verdict.memo["unreachable"]
    assert ("distribution", "%s/lab/app:1.0.0" % address) in fake_engine.calls


def test_a_registry_only_the_engine_reaches_is_asked_through_it(flow, fake_engine, app_id):
    address = silent_address()
    fake_engine.registry["%s/lab/app:1.0.0" % address] = OTHER_DIGEST
    fake_engine.image_store[app_id]["RepoDigests"].append("%s/lab/app@%s" % (address, OTHER_DIGEST))
    assert push.check(load(flow, address), {}).current


def test_an_image_missing_from_the_engine_fails_the_check(flow, fake_engine, canned_registry):
    address, _, _ = canned_registry
    with pytest.raises(StepFailed, match=r"steps.push_app.image: image lab/app:1.0.0 is not in the engine \S+ "
                                         r"\(no step makes it\?\)$"):
        push.check(load(flow, address), {})


def test_the_run_tags_pushes_and_reports_the_digest(flow, fake_engine, canned_registry, app_id):
    address, _, _ = canned_registry
    step = load(flow, address)
    values = push.run(step, push.check(step, {}))
    target = "%s/lab/app:1.0.0" % address
    assert [call[:3] for call in fake_engine.calls if call[0] in ("tag", "push")] == [
        ("tag", app_id, target), ("push", target)]
    assert values == {"image_id": app_id, "digest": fake_engine.registry[target], "target": target}


def test_refused_credentials_are_never_retried(flow, fake_engine, canned_registry, app_id):
    address, _, _ = canned_registry
    fake_engine.push_error = "unauthorized: authentication required"
    step = load(flow, address)
    with pytest.raises(RegistryDenied, match="check the credentials"):
        push.run(step, push.check(step, {}))
    assert fake_engine.verbs().count("push") == 1


def test_a_lost_connection_is_retried_then_fails_naming_the_attempts(flow, fake_engine, canned_registry, app_id,
                                                                     monkeypatch):
    address, _, _ = canned_registry
    monkeypatch.setattr(push, "FIRST_DELAY", 0)
    fake_engine.push_error = "dial tcp 127.0.0.1:5000: connect: connection refused"
    step = load(flow, address, extra="retries: 2")
    with pytest.raises(StepFailed, match="push of %s/lab/app:1.0.0 failed after 3 attempts" % address):
        push.run(step, push.check(step, {}))
    assert fake_engine.verbs().count("push") == 3
