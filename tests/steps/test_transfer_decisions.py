"""transfer's decisions, with no engine: up to date when every destination holds the
tar's sha256. A remote destination is asked with `sha256sum` over ssh; here the
answers of ssh are the test's own (tests/steps/test_transfer.py uses real ssh)."""
import os

import pytest

from tasks import imagetar, ssh
from tasks.errors import StepFailed
from tasks.steps import transfer
from tests.support.fake_engine import flow, out_of_date  # noqa: F401 (flow: a fixture)


def load(flow, *destinations):
    return flow.steps("""
        steps:
          ship_app:
            kind: transfer
            tar: ../out/app.tar
            destinations: %s
        """ % list(destinations))["ship_app"]


@pytest.fixture
def tar(flow):
    """out/app.tar and its checksum file; its sha256."""
    path = flow.write("out/app.tar", b"an image tar\n" * 100)
    sha256 = imagetar.cached_sha256(path, flow.cache_dir)[0]
    imagetar.write_sidecar(path, sha256)
    return sha256


def reason(step, saved=None):
    return out_of_date(transfer, step, saved).reason


def test_missing_destinations_are_named(flow, tar):
    assert reason(load(flow, "../ship/app.tar", "../shelf/")) == (
        "copying out/app.tar to ship/app.tar (missing: a new file of that name; end the destination with / for "
        "a folder), shelf/app.tar (missing)")


def test_an_existing_folder_receives_the_tar_under_its_own_name_with_or_without_its_slash(flow, tar):
    os.makedirs(flow.path("shelf"))
    assert reason(load(flow, "../shelf")) == "copying out/app.tar to shelf/app.tar (missing)"


def test_a_destination_with_other_bytes_differs(flow, tar):
    flow.write("ship/app.tar", b"an older tar")
    assert reason(load(flow, "../ship/app.tar")) == "copying out/app.tar to ship/app.tar (differs)"


def test_destinations_holding_the_tar_are_up_to_date(flow, tar):
    flow.write("ship/app.tar", b"an image tar\n" * 100)
    flow.write("shelf/app.tar", b"an image tar\n" * 100)
    verdict = transfer.check(load(flow, "../ship/app.tar", "../shelf/"), {})
    assert verdict.current and verdict.memo["sha256"] == tar


def test_the_run_copies_and_the_next_check_is_up_to_date(flow, tar):
    step = load(flow, "../ship/app.tar")
    values = transfer.run(step, transfer.check(step, {}))
    with open(flow.path("ship/app.tar"), "rb") as copy:
        assert copy.read() == b"an image tar\n" * 100
    assert transfer.check(step, values).current


def test_a_tar_that_does_not_match_its_checksum_is_not_shipped(flow, tar):
    with open(flow.path("out/app.tar"), "ab") as handle:
        handle.write(b"more")
    with pytest.raises(StepFailed, match=r"steps.ship_app.tar: \S+ does not match its checksum file \S+: run its "
                                         r"save step again"):
        transfer.check(load(flow, "../ship/app.tar"), {})


def test_a_missing_tar_names_the_save_step(flow):
    with pytest.raises(StepFailed, match=r"out/app.tar does not exist \(run the save step that makes it\)"):
        transfer.check(load(flow, "../ship/app.tar"), {})


@pytest.fixture
def remote_files(monkeypatch):
    """{path: sha256} a remote host holds; the remote commands asked, as (target, argv)."""
    held, asked = {}, []

    def run(remote, *argv, what, ok_codes=(0,)):
        asked.append((remote.target, argv))
        assert argv[:2] == ("sha256sum", "--")
        path = argv[2]
        return (0, "%s  %s\n" % (held[path], path)) if path in held else (1, "")

    monkeypatch.setattr(ssh.Remote, "run", run)
    return held, asked


def test_a_remote_destination_is_asked_for_its_sha256(flow, tar, remote_files):
    held, asked = remote_files
    step = load(flow, "deploy@hostb:/srv/images/")
    assert reason(step) == "copying out/app.tar to deploy@hostb:/srv/images/app.tar (missing)"
    assert asked == [("deploy@hostb", ("sha256sum", "--", "/srv/images/app.tar"))]
    held["/srv/images/app.tar"] = "0" * 64
    assert reason(step) == "copying out/app.tar to deploy@hostb:/srv/images/app.tar (differs)"
    held["/srv/images/app.tar"] = tar
    assert transfer.check(step, {}).current


def test_local_destinations_are_outputs_and_remote_ones_are_not(flow, tar):
    step = load(flow, "../ship/app.tar", "hostb:/srv/app.tar")
    assert transfer.outputs(step) == [("file", os.path.join(flow.root, "ship", "app.tar"))]
