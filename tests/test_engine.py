"""tasks/engine.py against a real engine: the image listing that answers lookups once a
run has made many gives the answers single inspects give, and an image a step is
about to make is asked afresh, not taken from a listing read before it existed."""
import pytest

from tasks import engine

pytestmark = pytest.mark.engine


@pytest.fixture
def listing_at_once(monkeypatch):
    """From the second lookup on, answers come from the listing."""
    monkeypatch.setattr(engine, "LISTING_AFTER_SECONDS", 0)


def image_id(docker_cli, ref):
    return docker_cli("image", "inspect", "-f", "{{.Id}}", ref).strip()


def test_listing_answers_as_inspects_do(docker_host, docker_cli, busybox_image, names, listing_at_once):
    docker_cli("image", "tag", busybox_image, names + "/a:1")
    docker_cli("image", "tag", busybox_image, names + "/b")
    docker = engine.Engine(docker_host)
    wanted = {names + "/a:1": image_id(docker_cli, busybox_image),
              "docker.io/%s/b:latest" % names: image_id(docker_cli, busybox_image),
              names + "/missing:1": None}
    found = {ref: docker.image_id(ref) for ref in wanted}
    assert docker._listing is not None  # the listing did answer
    assert found == wanted
    docker.close()


def test_an_image_made_after_the_listing_is_asked_afresh(docker_host, docker_cli, busybox_image, names,
                                                          listing_at_once):
    docker_cli("image", "tag", busybox_image, names + "/a:1")
    docker = engine.Engine(docker_host)
    docker.image_id(names + "/a:1")
    assert docker.image_id(names + "/late:1") is None  # listing read now, without it
    docker.forget(names + "/late:1")                  # a step is about to make it
    docker_cli("image", "tag", busybox_image, names + "/late:1")
    assert docker.image_id(names + "/late:1") == image_id(docker_cli, busybox_image)
    docker.close()

