"""import's decisions against the fake engine: up to date when the image's inputs label
equals the digest of the root filesystem's bytes and the step's definition.
tests/steps/test_import_rootfs.py proves it against the real engine."""
import os

import pytest

from tasks.errors import StepFailed
from tasks.steps import import_rootfs
from tests.support.fake_engine import FlowProject, fake_engine, flow, out_of_date  # noqa: F401 (fixtures among them)

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
    with pytest.raises(StepFailed, match=r"steps.base_rootfs.rootfs: ../rootfs does not exist"):
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
