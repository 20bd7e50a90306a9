"""transfer's decisions, with no engine: up to date when every destination holds the
tar's sha256. A remote destination is asked with `sha256sum` over ssh; here the
answers of ssh are the test's own (tests/steps/test_transfer.py uses real ssh)."""
import os

import pytest

from tasks import imagetar, ssh
from tasks.errors import StepFailed
from tasks.steps import transfer
from tests.support.fake_engine import (  # noqa: F401 (fixtures among them)
    files_hashed, flow, lose_tar_hashes, out_of_date)


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
                                         r"save step again$"):
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


DOWN = "ssh: connect to host down port 22: Connection refused"


@pytest.fixture
def this_machine_as_remote(monkeypatch):
    """ssh's part left out: a remote command runs here, by the real Remote.run, so the
    commands transfer sends (its shell script, sha256sum) are the real ones. The host
    `down` answers as ssh does when it cannot connect (exit 255)."""
    def command(remote, *remote_argv):
        if remote.target.endswith("@down"):
            return ["sh", "-c", "echo '%s' >&2; exit 255" % DOWN]
        return list(remote_argv)

    monkeypatch.setattr(ssh.Remote, "command", command)


# The folder's name is kept whole: only slashes at its end are dropped (SANDBOX keeps its last X).
@pytest.mark.parametrize("folder", ["srv", "SANDBOX"])
def test_a_remote_folder_named_without_its_slash_receives_the_tar_under_its_own_name(
        flow, tar, this_machine_as_remote, folder):
    os.makedirs(flow.path(folder))
    step = load(flow, "deploy@hostb:" + flow.path(folder))
    final = flow.path(folder + "/app.tar")
    assert reason(step) == "copying out/app.tar to deploy@hostb:%s (missing)" % final
    flow.write(folder + "/app.tar", b"other bytes\n")
    assert reason(step) == "copying out/app.tar to deploy@hostb:%s (differs)" % final
    flow.write(folder + "/app.tar", b"an image tar\n" * 100)
    assert transfer.check(step, {}).current


def test_a_remote_name_that_is_no_folder_there_is_the_file_to_write(flow, tar, this_machine_as_remote):
    step = load(flow, "deploy@hostb:" + flow.path("app-1.tar"))
    assert reason(step) == ("copying out/app.tar to deploy@hostb:%s (missing: a new file of that name; end the "
                            "destination with / for a folder)" % flow.path("app-1.tar"))
    flow.write("app-1.tar", b"an image tar\n" * 100)
    assert transfer.check(step, {}).current


def test_a_missing_file_in_a_remote_folder_is_missing_not_an_error(flow, tar, this_machine_as_remote):
    """sha256sum exits 1 for a file it cannot read: the answer "no such file", not a failure."""
    os.makedirs(flow.path("srv"))
    step = load(flow, "deploy@hostb:%s/" % flow.path("srv"))
    assert reason(step) == "copying out/app.tar to deploy@hostb:%s (missing)" % flow.path("srv/app.tar")


@pytest.mark.parametrize("destination, asked", [
    ("deploy@down:/srv/images/", "sha256sum of /srv/images/app.tar"),
    ("deploy@down:/srv/images", "look at /srv/images"),
])
def test_a_lone_destination_that_cannot_be_asked_fails_the_check_with_ssh_words(
        flow, tar, this_machine_as_remote, destination, asked):
    with pytest.raises(StepFailed) as failure:
        transfer.check(load(flow, destination), {})
    assert str(failure.value) == "%s on deploy@down failed (ssh could not connect): %s" % (asked, DOWN)


def test_a_destination_that_cannot_be_asked_is_named_and_the_others_get_the_tar(flow, tar, this_machine_as_remote):
    step = load(flow, "../ship/app.tar", "deploy@down:/srv/images/")
    verdict = out_of_date(transfer, step)
    assert verdict.reason == (
        "copying out/app.tar to ship/app.tar (missing: a new file of that name; end the destination with / for a "
        "folder), deploy@down:/srv/images/app.tar (not asked: sha256sum of /srv/images/app.tar on deploy@down "
        "failed (ssh could not connect): %s)" % DOWN)
    with pytest.raises(StepFailed) as failure:
        transfer.run(step, verdict)
    assert str(failure.value).splitlines()[0] == (
        "ship_app: 1 of 2 targets failed (the others are done; a rerun retries only these):")
    with open(flow.path("ship/app.tar"), "rb") as copy:
        assert copy.read() == b"an image tar\n" * 100


def test_the_record_alone_spares_hashing_the_tar_and_its_copies(flow, tar, files_hashed, monkeypatch):
    """The project's cache of tar hashes lost: the step's own record still knows every file."""
    step = load(flow, "../ship/app.tar", "../backup/")
    os.makedirs(flow.path("backup"))
    values = transfer.run(step, transfer.check(step, {}))
    lose_tar_hashes(flow, monkeypatch)
    del files_hashed[:]
    assert transfer.check(step, values).current
    assert files_hashed == []
