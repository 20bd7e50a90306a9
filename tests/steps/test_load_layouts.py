"""save and load of the three `docker save` layouts, on a real engine (20.10).

The tars of the newer layouts are this engine's own `docker save` output rewritten by
tests/support/savefmt.py as Engine 25+ (OCI, plain layers) and Engine 29 with the
containerd store (nested index, gzip layers, an attestation manifest) write them; engine
20.10 loads each, following manifest.json. Real engine: all three layouts, thin and whole.
"""
import pytest

from tasks import imagetar
from tasks.files import sha256_file
from tests.support import savefmt
from tests.support.shipping import build_app

pytestmark = pytest.mark.engine


def converted(docker_cli, project, ref, layout):
    """out/app.tar: `docker save REF` in `layout`, with its sha256 file."""
    legacy = project.path("legacy.tar")
    docker_cli("save", "-o", legacy, ref)
    tar_path = project.path("out/app.tar")
    project.write("out/.keep", "")
    savefmt.convert(legacy, tar_path, layout)
    imagetar.write_sidecar(tar_path, sha256_file(tar_path))
    return tar_path


@pytest.mark.parametrize("layout", savefmt.LAYOUTS)
@pytest.mark.parametrize("thin", [True, False], ids=["thin", "whole"])
def test_load_of_each_layout(project, names, busybox_image, docker_cli, tmp_path, layout, thin):
    ref = names + "/app:1"
    image_id = build_app(docker_cli, busybox_image, ref, folder=str(tmp_path / "ctx"))
    converted(docker_cli, project, ref, layout)
    project.workflow("""
        steps:
          save:
            kind: save
            image: %s
            tar: ../out/app.tar
          load:
            kind: load
            tar: ../out/app.tar
            image: %s%s
        """ % (ref, ref, "" if thin else "\n            only_missing_layers: false"))
    # the engine's image is the one the converted tar holds: the save is up to date
    saved = project.doit("save")
    assert saved.returncode == 0 and "-- save" in saved.output, saved.output
    docker_cli("rmi", ref)  # the base stays: a thin load sends the app layer only
    first = project.doit("-s", "load")  # -s: not the save, whose image is gone
    assert first.returncode == 0, first.output
    assert docker_cli("image", "inspect", "-f", "{{.Id}}", ref).strip() == image_id
    sent = "1 of 2 layers" if thin else "2 of 2 layers"
    assert sent in first.output, first.output
    assert ("whole tar: only_missing_layers is false" in first.output) is not thin
    again = project.doit("-s", "load")
    assert again.returncode == 0 and "-- load" in again.output, again.output
    assert docker_cli("run", "--rm", "--network", "none", ref, "cat", "/app/data.txt") == "one\n"
