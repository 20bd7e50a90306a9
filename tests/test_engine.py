"""tasks/engine.py against a real engine: the image listing that answers lookups once a
run has made many gives the answers single inspects give; an image a step is about to
make is asked afresh, not taken from a listing read before it existed; a build goes
over the socket without the SDK unless the docker config holds what only the SDK sends."""
import os
import subprocess
import sys

import pytest

from tasks import engine
from tests.conftest import REPO
from tests.support import image_id

pytestmark = pytest.mark.engine


@pytest.fixture
def listing_at_once(monkeypatch):
    """From the second lookup on, answers come from the listing."""
    monkeypatch.setattr(engine, "LISTING_AFTER_SECONDS", 0)


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



@pytest.mark.parametrize("credentials, sdk_sent_it", [(False, False), (True, True)])
def test_a_build_goes_over_the_socket_unless_the_docker_config_needs_the_sdk(
        docker_host, busybox_image, names, docker_cli, tmp_path, credentials, sdk_sent_it):
    """A build, a tag and a save on the local socket import no SDK; with registry
    credentials in the docker config the SDK sends the build, and they reach the engine."""
    config = tmp_path / "docker-config"
    config.mkdir()
    if credentials:
        (config / "config.json").write_text('{"auths": {"registry.invalid": {"auth": "dTpw"}}}')
    script = (
        "import io, sys, tarfile\n"
        "from tasks import engine\n"
        "dockerfile = b'FROM %s\\nRUN echo door > /door\\n'\n"
        "context = io.BytesIO()\n"
        "with tarfile.open(fileobj=context, mode='w') as archive:\n"
        "    info = tarfile.TarInfo('Dockerfile'); info.size = len(dockerfile)\n"
        "    archive.addfile(info, io.BytesIO(dockerfile))\n"
        "with open(sys.argv[1], 'wb') as handle: handle.write(context.getvalue())\n"
        "with open(sys.argv[1], 'rb') as handle:\n"
        "    chunks = list(engine.get(sys.argv[2]).build('t: build', handle, tag=sys.argv[3], rm=True))\n"
        "built = any('aux' in chunk for chunk in chunks)\n"
        "if not int(sys.argv[4]):  # tag and save, as a lab run does next\n"
        "    engine.get(sys.argv[2]).tag('t: tag', sys.argv[3], sys.argv[3] + ':again')\n"
        "    assert sum(map(len, engine.get(sys.argv[2]).save('t: save', sys.argv[3] + ':again', 65536))) > 0\n"
        "print('docker' in sys.modules, built)\n" % busybox_image)
    env = dict(os.environ, DOCKER_CONFIG=str(config), PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "context.tar"), docker_host,
                           names + "/door", str(int(credentials))], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(sdk_sent_it), "True"]
    assert docker_cli("run", "--rm", names + "/door", "cat", "/door").strip() == "door"
    if not credentials:
        assert image_id(docker_cli, names + "/door:again") == image_id(docker_cli, names + "/door")


def test_threads_sharing_an_engine_each_get_their_own_answer(docker_host, busybox_image, names):
    """doit -n N -P thread: steps in threads ask one Engine over its one kept-alive socket."""
    import threading

    docker = engine.Engine(docker_host)
    expected = {busybox_image: docker.inspect_image(busybox_image)["Id"], names + "/absent:1": None}
    wrong = []

    def ask(ref):
        for _ in range(40):
            docker.forget(ref)
            found = docker.inspect_image(ref)
            if (found and found["Id"]) != expected[ref]:
                wrong.append((ref, found and found["Id"]))

    threads = [threading.Thread(target=ask, args=(ref,)) for ref in list(expected) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    docker.close()
    assert wrong == []
