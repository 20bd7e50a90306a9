"""import's decisions against the fake engine: up to date when the image's inputs label
equals the digest of the root filesystem's bytes and the step's definition.
tests/steps/test_import_rootfs.py proves it against the real engine."""
import os

import pytest

from tasks.errors import StepFailed
from tasks.steps import import_rootfs
from tests.support.fake_engine import (  # noqa: F401 (fixtures among them)
    FlowProject, fake_engine, files_hashed, flow, out_of_date)

FLOW = """
    steps:
      base_rootfs:
        kind: import
        image: lab/base:1
        rootfs: ../rootfs
        %s
    """


def load(flow, extra=""):
    return flow.steps(FLOW % extra)["base_rootfs"]


@pytest.fixture
def rootfs(flow):
    flow.write("rootfs/bin/tool", "#!/bin/sh\necho tool\n")
    flow.write("rootfs/etc/motd", "hello\n")
    return flow


def imported(step):
    return import_rootfs.run(step, import_rootfs.check(step, {}))


def reason(step, saved=None):
    return out_of_date(import_rootfs, step, saved).reason


def test_an_image_the_engine_lacks_is_imported(rootfs, fake_engine):
    assert reason(load(rootfs), {}) == "importing lab/base:1: the engine has no such image"


def test_the_run_labels_its_image_and_the_next_check_is_up_to_date(rootfs, fake_engine):
    step = load(rootfs)
    values = imported(step)
    assert values["image_id"] == fake_engine.image_id("lab/base:1")
    assert import_rootfs.check(step, values).current
    assert import_rootfs.check(step, {}).current  # the label alone says so


@pytest.mark.parametrize("change", ["edit", "add", "remove", "chmod"])
def test_a_changed_root_filesystem_is_imported_again(rootfs, fake_engine, change):
    step = load(rootfs)
    values = imported(step)
    if change == "edit":
        rootfs.write("rootfs/etc/motd", "bye\n")
    elif change == "add":
        rootfs.write("rootfs/etc/hosts", "127.0.0.1 localhost\n")
    elif change == "remove":
        os.unlink(rootfs.path("rootfs/etc/motd"))
    else:
        os.chmod(rootfs.path("rootfs/bin/tool"), 0o755)
    assert reason(step, values) == "re-importing lab/base:1: its root filesystem or definition changed"


def test_changed_dockerfile_changes_are_imported_again(rootfs, fake_engine):
    values = imported(load(rootfs))
    assert reason(load(rootfs, 'changes: ["CMD [\\"sh\\"]"]'), values) == (
        "re-importing lab/base:1: its root filesystem or definition changed")


def test_a_missing_rootfs_fails_the_check(flow, fake_engine):
    with pytest.raises(StepFailed, match=r"steps.base_rootfs.rootfs: ../rootfs does not exist$"):
        import_rootfs.check(load(flow), {})


def test_host_files_count_by_their_path_in_the_image_not_on_the_host(flow):
    """The same project cloned to another folder makes the same image: no re-import."""
    digests = []
    for root in (flow, FlowProject(flow.path("clone"))):
        root.write("tools/busybox", "a static binary\n")
        step = root.steps("""
            steps:
              base_rootfs:
                kind: import
                image: lab/base:1
                files: {/bin/busybox: ../tools/busybox}
            """)["base_rootfs"]
        digests.append(import_rootfs.input_digest(step, {})[0])
    assert digests[0] == digests[1]


def load_files(flow, files, extra=""):
    """An import step of host files only: `files` maps a path in the image to one on the host."""
    return flow.steps("""
        steps:
          base_rootfs:
            kind: import
            image: lab/base:1
            files: {%s}
            %s
        """ % (", ".join("%s: %s" % pair for pair in files.items()), extra))["base_rootfs"]


REAL_X = {"/usr/bin/X": "../tools/Xorg"}


def test_an_edited_host_file_is_imported_again(flow, fake_engine):
    flow.write("tools/Xorg", "a server\n")
    step = load_files(flow, REAL_X)
    values = imported(step)
    flow.write("tools/Xorg", "a patched server\n")
    assert reason(step, values) == "re-importing lab/base:1: its root filesystem or definition changed"


@pytest.mark.parametrize("before, after", [
    (0o644, 0o600),  # made private: the image must not keep it readable by all (as for a build)
    (0o754, 0o755),  # made executable by others: each of the three executable bits counts
])
def test_a_host_file_whose_mode_changed_is_imported_again(flow, fake_engine, before, after):
    """import packs the file's mode as it is: its read, write and executable bits count."""
    os.chmod(flow.write("tools/Xorg", "a server\n"), before)
    step = load_files(flow, REAL_X)
    values = imported(step)
    os.chmod(flow.path("tools/Xorg"), after)
    assert reason(step, values) == "re-importing lab/base:1: its root filesystem or definition changed"


def test_each_host_file_lands_at_its_whole_path_in_the_image(flow, fake_engine):
    flow.write("tools/Xorg", "a server\n")
    flow.write("tools/motd", "hello\n")
    imported(load_files(flow, dict(REAL_X, **{"/etc/motd": "../tools/motd"})))
    assert fake_engine.files[fake_engine.image_id("lab/base:1")] == {"/usr/bin/X": b"a server\n",
                                                                      "/etc/motd": b"hello\n"}


def test_a_host_file_is_known_by_its_whole_path_in_the_image(flow, fake_engine):
    """/usr/bin/X is not /usr/bin: each makes its own image."""
    flow.write("tools/Xorg", "a server\n")
    values = imported(load_files(flow, REAL_X))
    assert reason(load_files(flow, {"/usr/bin": "../tools/Xorg"}), values) == (
        "re-importing lab/base:1: its root filesystem or definition changed")


def test_recorded_stats_spare_reading_the_root_filesystem_again(rootfs, fake_engine, files_hashed):
    """The files were written just now, so the step's hash file does not keep them yet
    (digest.SETTLED_NS): only the record of the last import spares hashing them."""
    step = load(rootfs)
    values = imported(step)
    del files_hashed[:]
    assert import_rootfs.check(step, values).current
    assert files_hashed == []


def test_an_edited_rootfs_tar_is_imported_again(flow, fake_engine):
    flow.write("rootfs.tar", b"\0" * 1024)
    step = flow.steps(FLOW.replace("rootfs: ../rootfs", "tar: ../rootfs.tar") % "")["base_rootfs"]
    values = imported(step)
    flow.write("rootfs.tar", b"\1" * 1024)
    assert reason(step, values) == "re-importing lab/base:1: its root filesystem or definition changed"


def test_every_missing_source_is_named(flow, fake_engine):
    step = flow.steps(FLOW % "files: {/bin/busybox: ../tools/busybox}")["base_rootfs"]
    with pytest.raises(StepFailed) as failure:
        import_rootfs.check(step, {})
    assert str(failure.value) == (
        "workflows/flow.yaml:6:5: steps.base_rootfs.rootfs: ../rootfs does not exist; "
        "workflows/flow.yaml:7:13: steps.base_rootfs.files./bin/busybox: %s does not exist on this machine"
        % os.path.join(flow.path("workflows"), "../tools/busybox"))


def test_a_missing_rootfs_tar_fails_the_check(flow, fake_engine):
    step = flow.steps(FLOW.replace("rootfs: ../rootfs", "tar: ../rootfs.tar") % "")["base_rootfs"]
    with pytest.raises(StepFailed, match=r"steps.base_rootfs.tar: ../rootfs.tar does not exist$"):
        import_rootfs.check(step, {})


def test_a_missing_host_file_is_located_at_its_own_entry(flow, fake_engine):
    step = flow.steps("""
        steps:
          base_rootfs:
            kind: import
            image: lab/base:1
            files:
              /etc/motd: ../motd
              /bin/busybox: ../tools/busybox
        """)["base_rootfs"]
    flow.write("motd", "hello\n")
    with pytest.raises(StepFailed, match=r"^workflows/flow.yaml:8:\d+: steps.base_rootfs.files./bin/busybox: "):
        import_rootfs.check(step, {})
