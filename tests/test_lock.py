"""tasks/lock.py: the project's flock, shared by makers and exclusive for a real prune,
and the notes that say who holds it. flock conflicts between two open files of one
process as between two processes, so no second process is needed here."""
import json
import os
import subprocess
import sys

import pytest

from tasks import lock
from tasks.errors import StepFailed


class Step:
    """What wait_seconds reads of a step: its lock_wait field."""

    def __init__(self, lock_wait=None):
        self.lock_wait = lock_wait

    def get(self, field):
        assert field == "lock_wait"
        return self.lock_wait


def notes(project):
    return sorted(os.listdir(os.path.join(project, ".dockflow", "locks")))


def test_shared_holders_run_together_and_leave_a_note_each_while_they_hold(tmp_path):
    project = str(tmp_path)
    with lock.held(project, "build_app", wait=0):
        with lock.held(project, "tag_app", wait=0):
            assert notes(project) == ["%d-build_app.json" % os.getpid(), "%d-tag_app.json" % os.getpid()]
            assert [note["task"] for note in lock.holders(project)] == ["build_app", "tag_app"]
    assert notes(project) == []


def test_an_exclusive_step_does_not_run_beside_a_shared_one_and_says_who_holds_it(tmp_path):
    project = str(tmp_path)
    with lock.held(project, "build_app", wait=0):
        with pytest.raises(StepFailed) as failure:
            with lock.held(project, "prune", exclusive=True, wait=0):
                pytest.fail("the exclusive lock was granted beside a shared one")
    assert str(failure.value).startswith(
        "prune: not run: another run of this project holds its lock (pid %d running build_app (shared lock "
        "since " % os.getpid())
    assert str(failure.value).endswith("waited 0s. Run it again when that ends, or raise lock_wait / "
                                       "DOCKFLOW_LOCK_WAIT")


def test_a_shared_step_waits_for_an_exclusive_one_and_goes_on_when_it_ends(tmp_path, monkeypatch, capsys):
    project = str(tmp_path)
    prune = lock.held(project, "prune", exclusive=True, wait=0)
    prune.__enter__()
    # The first poll ends the prune: no clock decides this test.
    monkeypatch.setattr(lock.time, "sleep", lambda seconds: prune.__exit__(None, None, None))
    with lock.held(project, "build_app", wait=60):
        pass
    out = capsys.readouterr().out
    assert "build_app: waiting up to 60s for the project's shared lock: held by pid %d running prune" % os.getpid() \
        in out
    assert "build_app: the project's lock is free; going on" in out


def test_notes_of_gone_processes_are_ignored_and_removed(tmp_path):
    project = str(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    os.makedirs(os.path.join(project, ".dockflow", "locks"))
    path = os.path.join(project, ".dockflow", "locks", "%s-build.json" % gone.stdout.strip())
    with open(path, "w") as note:
        json.dump({"pid": int(gone.stdout), "task": "build", "mode": "shared", "since": 0}, note)
    with open(os.path.join(project, ".dockflow", "locks", "broken.json"), "w") as note:
        note.write("{not json")
    assert lock.holders(project) == []
    assert notes(project) == ["broken.json"]  # unreadable: left alone, never taken for a holder


def test_a_lock_held_by_a_run_that_left_no_note_is_described_so():
    assert lock.describe([]) == "another run (it left no note of who it is)"


def test_the_wait_is_the_step_field_else_the_environment_else_300(monkeypatch):
    monkeypatch.delenv("DOCKFLOW_LOCK_WAIT", raising=False)
    assert lock.wait_seconds(Step()) == 300.0
    monkeypatch.setenv("DOCKFLOW_LOCK_WAIT", "12.5")
    assert lock.wait_seconds(Step()) == 12.5
    assert lock.wait_seconds(Step(lock_wait=3)) == 3.0
    assert lock.wait_seconds(Step(lock_wait=-5)) == 0.0


def test_a_wait_that_is_no_number_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("DOCKFLOW_LOCK_WAIT", "soon")
    with pytest.raises(StepFailed, match="DOCKFLOW_LOCK_WAIT='soon' is not a number of seconds"):
        lock.wait_seconds(Step())
