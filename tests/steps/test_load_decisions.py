"""load's decisions against fake engines: up to date when the target engine names the
tar's image id under each wanted tag (or the id its containerd store uses). The tars
are written by another fake engine's `save` (legacy layout) and converted as newer
engines write them. tests/steps/test_load.py proves it against real engines."""
import re

import pytest

from tasks import imagetar
from tasks.errors import StepFailed
from tasks.steps import load as load_kind
from tests.support import savefmt
from tasks.errors import EngineUnreachable
from tests.support.fake_engine import (  # noqa: F401 (fixtures among them)
    FAKE_HOST, FakeEngine, fake_engine, files_hashed, flow, forbid_opening_tars, install, lose_tar_hashes,
    out_of_date, write_saved_tar)

NOBODY = "tcp://127.0.0.1:1"  # left to the real Engine: nothing listens there


def load(flow, extra=""):
    return flow.steps("""
        steps:
          load_app:
            kind: load
            tar: ../out/app.tar
            %s
        """ % extra)["load_app"]


def write_tar(flow, tags=("lab/app:1",), layout="legacy"):
    """out/app.tar and its checksum file, holding an image another engine saved; its config id
    and the ids an engine with the containerd store would name it by."""
    source = FakeEngine("unix:///nonexistent/source.sock")
    image_id = source.add_image(list(tags), layers=["base", "app"])
    legacy = flow.write("out/legacy.tar", b"".join(source.save_many("save", list(tags) or [image_id], 1 << 16)))
    path = flow.path("out/app.tar")
    digests = savefmt.convert(legacy, path, layout)
    imagetar.write_sidecar(path, imagetar.cached_sha256(path, flow.cache_dir)[0])
    return image_id, digests


def reason(step, saved=None):
    return out_of_date(load_kind, step, saved).reason


def test_a_target_without_the_image_gets_the_tar(flow, fake_engine):
    write_tar(flow)
    assert reason(load(flow)) == "loading out/app.tar into %s: it has no lab/app:1" % FAKE_HOST


def test_a_target_that_names_the_tar_image_under_its_tag_is_up_to_date(flow, fake_engine):
    image_id, _ = write_tar(flow)
    fake_engine.add_image(["lab/app:1"], layers=["base", "app"])
    verdict = load_kind.check(load(flow), {})
    assert verdict.current
    assert verdict.memo["wanted"] == [("lab/app:1", [image_id])]


def test_a_tag_that_names_another_image_on_the_target_is_loaded_over(flow, fake_engine):
    write_tar(flow)
    fake_engine.add_image(["lab/app:1"], layers=["base", "an older app"])
    assert reason(load(flow)) == "loading out/app.tar into %s: it has no lab/app:1" % FAKE_HOST


@pytest.mark.parametrize("layout", ["oci", "oci-nested"])
def test_a_containerd_store_naming_the_image_by_its_manifest_is_up_to_date(flow, fake_engine, layout):
    _, digests = write_tar(flow, layout=layout)
    fake_engine.add_image(["lab/app:1"], layers=["base", "app"], image_id=digests[0])
    assert load_kind.check(load(flow), {}).current


def test_the_step_image_must_be_one_the_tar_holds(flow, fake_engine):
    write_tar(flow)
    with pytest.raises(StepFailed, match=r"steps.load_app.image: the tar \S+ holds no image tagged lab/other:1 "
                                         r"\(it holds lab/app:1\)"):
        load_kind.check(load(flow, "image: lab/other:1"), {})


def no_image_tagged(flow, wanted, held):
    """The end of check's error for a step `image` the tar does not hold."""
    tar = flow.path("out/app.tar")
    return re.escape(": the tar %s holds no image tagged %s (it holds %s)" % (tar, wanted, held)) + "$"


def test_a_missing_step_image_is_told_every_tag_the_tar_holds(flow, fake_engine):
    write_tar(flow, tags=("lab/app:1", "lab/app:latest"))
    with pytest.raises(StepFailed, match=no_image_tagged(flow, "lab/other:1", "lab/app:1, lab/app:latest")):
        load_kind.check(load(flow, "image: lab/other:1"), {})


def test_a_tar_of_untagged_images_holds_no_step_image(flow, fake_engine):
    write_tar(flow, tags=())
    with pytest.raises(StepFailed, match=no_image_tagged(flow, "lab/app:1", "untagged images")):
        load_kind.check(load(flow, "image: lab/app:1"), {})


def test_every_tag_the_target_lacks_is_named(flow, fake_engine):
    write_tar(flow, tags=("lab/app:1", "lab/app:latest"))
    assert reason(load(flow)) == "loading out/app.tar into %s: it has no lab/app:1, lab/app:latest" % FAKE_HOST


def test_an_untagged_image_is_wanted_by_its_id(flow, fake_engine):
    image_id, _ = write_tar(flow, tags=())
    assert reason(load(flow)) == "loading out/app.tar into %s: it has no %s" % (FAKE_HOST, image_id)


def test_the_record_of_the_same_file_spares_reading_its_index(flow, fake_engine):
    """Same size, ctime, inode and mode as recorded: the recorded images stand (a 1 GiB tar is not opened)."""
    write_tar(flow)
    verdict = load_kind.check(load(flow), {})
    recorded = dict(verdict.memo, images=[{"id": "sha256:" + "1" * 64, "ids": [], "tags": ["lab/recorded:1"]}])
    assert reason(load(flow), recorded) == "loading out/app.tar into %s: it has no lab/recorded:1" % FAKE_HOST


def test_a_tar_replaced_since_the_record_is_read_again(flow, fake_engine):
    """The record's file stats no longer match: the recorded images do not stand."""
    write_tar(flow)
    recorded = load_kind.check(load(flow), {}).memo
    fake_engine.add_image(["lab/app:1"], layers=["base", "app v2"])
    source = FakeEngine("unix:///nonexistent/source.sock")
    source.add_image(["lab/app:1"], layers=["base", "app v2"])
    write_saved_tar(flow, source, ["lab/app:1"])
    assert load_kind.check(load(flow), recorded).current


def test_the_record_alone_spares_hashing_the_tar(flow, fake_engine, files_hashed, monkeypatch):
    """The project's cache of tar hashes lost: the step's own record still knows the tar."""
    write_tar(flow)
    recorded = load_kind.check(load(flow), {}).memo
    lose_tar_hashes(flow, monkeypatch)
    del files_hashed[:]
    load_kind.check(load(flow), recorded)
    assert files_hashed == []


def test_the_run_records_what_the_next_check_compares(flow, fake_engine, monkeypatch):
    """The run's record makes the next check up to date without opening the tar."""
    write_tar(flow)
    step = load(flow)
    recorded = load_kind.run(step, load_kind.check(step, {}))
    forbid_opening_tars(monkeypatch)
    assert load_kind.check(step, recorded).current


def test_a_single_target_that_cannot_be_asked_fails_the_check_with_its_own_error(flow, fake_engine):
    """One docker_host: no "not asked" line to run past; the engine's own error, as any step's."""
    write_tar(flow)
    with pytest.raises(EngineUnreachable, match="^cannot reach the Docker engine at %s " % NOBODY):
        load_kind.check(load(flow, "docker_host: " + NOBODY), {})


def test_a_damaged_tar_is_refused_in_the_words_of_its_checksum(flow, fake_engine):
    write_tar(flow)
    with open(flow.path("out/app.tar"), "r+b") as tar:
        tar.truncate(1024)
    with pytest.raises(StepFailed, match="does not match its checksum .*truncated or changed since it was saved"):
        load_kind.check(load(flow), {})


def test_a_missing_tar_names_the_save_step_that_makes_it(flow, fake_engine):
    with pytest.raises(StepFailed, match=r"steps.load_app.tar: \S+/out/app.tar does not exist "
                                         r"\(run the save step that makes it\)$"):
        load_kind.check(load(flow), {})


def test_the_target_is_the_step_docker_host(flow, fake_engine, monkeypatch):
    other = install(monkeypatch, "tcp://127.0.0.1:1")
    image_id, _ = write_tar(flow)
    other.add_image(["lab/app:1"], layers=["base", "app"])
    assert load_kind.check(load(flow, "docker_host: tcp://127.0.0.1:1"), {}).current
    assert not fake_engine.calls  # the default engine was never asked
