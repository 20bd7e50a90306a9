"""registry's decisions against the fake engine and a canned /v2/: up to date when its
container runs with this definition and /v2/ answers; a changed definition re-creates
it. tests/steps/test_registry.py proves it against the real engine and registry."""
import pytest

from tasks.errors import StepFailed
from tasks.labels import REGISTRY_IMAGE_LABEL, REGISTRY_LABEL
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


def test_401_counts_as_an_answer_only_with_auth_on(flow, canned_registry, fake_engine, answering):
    flow.write("workflows/htpasswd", "lab:$2y$05$one\n")
    with_auth = load(flow, answering, "htpasswd: htpasswd")
    started(with_auth)
    canned_registry[1]["/v2/"] = (401, {}, b"{}")
    assert registry.check(with_auth, {}).current
    without_auth = load(flow, answering)
    running_as_defined(fake_engine, without_auth)
    assert reason(without_auth).reason == "waiting for registry registry: /v2/ does not answer yet"


def running_as_defined(fake_engine, step):
    """The step's container, running with its definition's label, made by a run that was not
    waited for (the run waits until /v2/ answers)."""
    memo = registry.check(step, {}).memo
    for container in list(fake_engine.container_store):
        fake_engine.remove_container("arrange", container)
    image_id = memo["definition"]["image_id"]
    fake_engine.add_container(image_id, name="registry",
                              labels={REGISTRY_LABEL: memo["digest"], REGISTRY_IMAGE_LABEL: image_id})
    return memo


def test_a_registry_with_a_password_file_gets_htpasswd_auth(flow, answering):
    flow.write("workflows/htpasswd", "lab:$2y$05$one\n")
    definition = registry.check(load(flow, answering, "htpasswd: htpasswd"), {}).memo["definition"]
    assert definition["environment"] == {"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
                                         "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd"}
    assert definition["files"] == {"htpasswd": flow.path("workflows/htpasswd")}


def test_a_tls_registry_gets_its_certificate_and_is_asked_over_https(flow, fake_engine, answering):
    """The canned /v2/ speaks plain http: over https it gives no answer."""
    flow.write("workflows/domain.crt", "a certificate\n")
    flow.write("workflows/domain.key", "a key\n")
    step = load(flow, answering, "tls_cert: domain.crt\n            tls_key: domain.key")
    memo = running_as_defined(fake_engine, step)
    assert memo["definition"]["environment"] == {"REGISTRY_HTTP_TLS_CERTIFICATE": "/certs/domain.crt",
                                                 "REGISTRY_HTTP_TLS_KEY": "/certs/domain.key"}
    assert reason(step).reason == "waiting for registry registry: /v2/ does not answer yet"


def test_the_default_registry_listens_on_port_5000_on_every_address(flow, fake_engine):
    fake_engine.add_image(["registry:2"], layers=["alpine", "registry"])
    verdict = reason(flow.steps("steps:\n  registry_up: {kind: registry}\n")["registry_up"])
    assert verdict.reason == "starting registry registry on port 5000: no such container"
    assert (verdict.memo["definition"]["port"], verdict.memo["definition"]["bind"]) == (5000, "0.0.0.0")


def test_a_stopped_container_is_started_not_made_again(flow, fake_engine, answering):
    step = load(flow, answering)
    values = started(step)
    fake_engine.container_store[values["container_id"]]["State"].update(Status="exited", Running=False)
    assert registry.run(step, reason(step))["container_id"] == values["container_id"]
    assert fake_engine.verbs().count("create_container") == 1


def test_a_container_of_that_name_dockflow_did_not_make_is_never_touched(flow, fake_engine, answering):
    fake_engine.add_container(fake_engine.image_id("registry:2"), name="registry")
    with pytest.raises(StepFailed, match=r"steps\.registry_up: a container named registry exists and dockflow did "
                                         r"not make it; remove it \(docker rm -f registry\) or give this step "
                                         r"another name:$"):
        registry.check(load(flow, answering), {})


def test_a_missing_registry_image_fails_the_check(flow, fake_engine):
    with pytest.raises(StepFailed, match=r"steps\.registry_up\.image: image registry:2 is not in the engine \S+ "
                                         r"\(the lab's registry_image step makes it\)$"):
        registry.check(load(flow, 5000), {})
