"""save's decisions against the fake engine, whose `save` writes a legacy docker save
tar: up to date when the tar, its checksum file and the engine's image agree.
tests/steps/test_save.py proves it against the real engine."""
import os

import pytest

from tasks import imagetar
from tasks.errors import StepFailed
from tasks.steps import save
from tests.support.fake_engine import (  # noqa: F401 (fixtures among them)
    fake_engine, files_hashed, flow, forbid_opening_tars, lose_tar_hashes, out_of_date, write_saved_tar)


def load(flow, extra=""):
    return flow.steps("""
        steps:
          save_app:
            kind: save
            image: lab/app:1
            tar: ../out/app.tar
            %s
        """ % extra)["save_app"]


@pytest.fixture
def app_id(fake_engine):
    return fake_engine.add_image(["lab/app:1"], layers=["base", "app"])


def saved_now(step):
    """The tar of `step` written by its run; the values the run records."""
    return save.run(step, save.check(step, {}))


def reason(step, saved=None):
    return out_of_date(save, step, saved).reason


def test_no_tar_yet_is_a_save(flow, app_id):
    assert reason(load(flow), {}) == "saving lab/app:1 (%s) to out/app.tar: no such file yet" % app_id[7:19]


def test_the_saved_tar_is_up_to_date_with_or_without_the_record(flow, app_id):
    step = load(flow)
    values = saved_now(step)
    assert imagetar.ImageTar(flow.path("out/app.tar")).image_ids() == [app_id]
    assert values["image_id"] == app_id and values["sha256"] == imagetar.read_sidecar(flow.path("out/app.tar"))
    assert save.check(step, values).current
    assert save.check(step, {}).current  # a lost .dockflow/: the tar itself says which image it holds


def test_a_gzip_tar_is_read_too(flow, app_id):
    step = load(flow, "gzip: true")
    saved_now(step)
    assert imagetar.is_gzip(flow.path("out/app.tar"))
    assert save.check(step, {}).current


def test_a_tar_without_its_checksum_file_is_saved_again(flow, app_id):
    step = load(flow)
    values = saved_now(step)
    os.unlink(imagetar.sidecar_path(flow.path("out/app.tar")))
    assert reason(step, values) == "saving lab/app:1 again: out/app.tar has no checksum file beside it"


def test_a_tar_that_does_not_match_its_checksum_is_saved_again(flow, app_id):
    step = load(flow)
    values = saved_now(step)
    with open(flow.path("out/app.tar"), "ab") as tar:
        tar.write(b"\0" * 512)
    assert reason(step, values) == "saving lab/app:1 again: out/app.tar does not match its checksum file"


def test_an_image_that_moved_since_the_save_is_saved_again(flow, fake_engine, app_id):
    step = load(flow)
    values = saved_now(step)
    new_id = fake_engine.add_image(["lab/app:1"], layers=["base", "app v2"])
    expected = "saving lab/app:1 again: it is now %s, out/app.tar holds %s" % (new_id[7:19], app_id[7:19])
    assert reason(step, values) == expected
    assert reason(step, {}) == expected  # read from the tar when nothing is recorded


def test_an_image_missing_from_the_engine_fails_the_check(flow, fake_engine):
    with pytest.raises(StepFailed, match=r"steps.save_app.image: image lab/app:1 is not in the engine "
                                         r"\S+ \(no step builds or tags it\?\)$"):
        save.check(load(flow), {})


def test_a_tar_replaced_since_the_record_is_read_again(flow, fake_engine, app_id):
    """The record names the engine's image, but the tar there now (checksum and all) holds another."""
    step = load(flow)
    values = saved_now(step)
    other_id = fake_engine.add_image(["lab/tool:1"], layers=["base", "tool"])
    write_saved_tar(flow, fake_engine, ["lab/tool:1"])
    assert reason(step, values) == "saving lab/app:1 again: it is now %s, out/app.tar holds %s" % (
        app_id[7:19], other_id[7:19])


def test_the_record_of_the_same_tar_spares_reading_its_index(flow, app_id, monkeypatch):
    """Same sha256 as recorded: the recorded image id stands (a 1 GiB tar is not opened)."""
    step = load(flow)
    values = saved_now(step)
    forbid_opening_tars(monkeypatch)
    assert save.check(step, values).current


def test_the_record_alone_spares_hashing_the_tar(flow, app_id, files_hashed, monkeypatch):
    """The project's cache of tar hashes lost: the step's own record still knows the tar."""
    step = load(flow)
    values = saved_now(step)
    lose_tar_hashes(flow, monkeypatch)
    assert save.check(step, values).current
    assert files_hashed == []


def test_each_image_of_a_tar_of_several_is_named(flow, fake_engine, app_id):
    old_app = fake_engine.add_image(["lab/app:0"], layers=["base", "app v0"])
    old_tool = fake_engine.add_image(["lab/tool:0"], layers=["base", "tool v0"])
    write_saved_tar(flow, fake_engine, ["lab/app:0", "lab/tool:0"])
    assert reason(load(flow), {}) == "saving lab/app:1 again: it is now %s, out/app.tar holds %s, %s" % (
        app_id[7:19], old_app[7:19], old_tool[7:19])
