"""registry's decisions against the fake engine and a canned /v2/: up to date when its
container runs with this definition and /v2/ answers; a changed definition re-creates
it. tests/steps/test_registry.py proves it against the real engine and registry."""
import pytest

from tasks.errors import StepFailed
from tasks.labels import REGISTRY_LABEL
from tasks.steps import registry
from tests.support.fake_engine import (  # noqa: F401 (fixtures among them)
    _module_registry, canned_registry, fake_engine, flow, out_of_date)


def load(flow, port, extra=""):
    return flow.steps("""
        steps:
          registry_up:
            kind: registry
            port: %d
            %s
        """ % (port, extra))["registry_up"]


@pytest.fixture
def answering(canned_registry, fake_engine):
    """The port of a /v2/ that answers 200; registry:2 is in the engine."""
    address, routes, _ = canned_registry
    routes["/v2/"] = (200, {}, b"{}")
    fake_engine.add_image(["registry:2"], layers=["alpine", "registry"])
    return int(address.rsplit(":", 1)[1])


def started(step):
    """The registry container of `step`, made and started by its run."""
    return registry.run(step, registry.check(step, {}))


def reason(step):
    return out_of_date(registry, step)


def test_no_container_yet_is_started(flow, answering):
    assert reason(load(flow, answering)).reason == (
        "starting registry registry on port %d: no such container" % answering)


def test_the_run_makes_a_labelled_container_and_the_next_check_is_up_to_date(flow, fake_engine, answering):
    step = load(flow, answering)
    values = started(step)
    container = fake_engine.inspect_container("registry")
    assert container["Config"]["Labels"][REGISTRY_LABEL] == values["digest"]
    assert "registry-data" in fake_engine.volumes
    assert registry.check(step, {}).current


def test_a_changed_definition_recreates_the_container(flow, answering):
    started(load(flow, answering))
    verdict = reason(load(flow, answering, "bind: 127.0.0.1"))
    assert verdict.reason == ("re-creating registry container registry: its definition changed (port, volume, "
                              "auth or TLS files)")
    assert verdict.memo["recreate"]


def test_a_new_password_file_recreates_the_container(flow, answering):
    flow.write("workflows/htpasswd", "lab:$2y$05$one\n")
    step = load(flow, answering, "htpasswd: htpasswd")
    started(step)
    flow.write("workflows/htpasswd", "lab:$2y$05$two\n")
    assert reason(step).memo["recreate"]


def test_a_new_registry_image_recreates_the_container(flow, fake_engine, answering):
    step = load(flow, answering)
    started(step)
    fake_engine.add_image(["registry:2"], layers=["alpine", "registry 2.8.3"])
    assert reason(step).reason == "re-creating registry container registry: its image changed"


def test_a_stopped_container_is_started(flow, fake_engine, answering):
    step = load(flow, answering)
    started(step)
    fake_engine.container_store[fake_engine.inspect_container("registry")["Id"]]["State"].update(
        Status="exited", Running=False)
    assert reason(step).reason == "starting registry registry: the container is stopped"


def test_a_registry_whose_v2_does_not_answer_is_waited_for(flow, canned_registry, answering):
    step = load(flow, answering)
    started(step)
    canned_registry[1]["/v2/"] = (503, {}, b"starting")
    assert reason(step).reason == "waiting for registry registry: /v2/ does not answer yet"


def test_401_counts_as_an_answer_only_with_auth_on(flow, canned_registry, answering):
    flow.write("workflows/htpasswd", "lab:$2y$05$one\n")
    with_auth = load(flow, answering, "htpasswd: htpasswd")
    started(with_auth)
    canned_registry[1]["/v2/"] = (401, {}, b"{}")
    assert registry.check(with_auth, {}).current


def test_a_container_of_that_name_dockflow_did_not_make_is_never_touched(flow, fake_engine, answering):
    fake_engine.add_container(fake_engine.image_id("registry:2"), name="registry")
    with pytest.raises(StepFailed, match="a container named registry exists and dockflow did not make it"):
        registry.check(load(flow, answering), {})


def test_a_missing_registry_image_fails_the_check(flow, fake_engine):
    with pytest.raises(StepFailed, match=r"image registry:2 is not in the engine \S+ \(the lab's registry_image"):
        registry.check(load(flow, 5000), {})
