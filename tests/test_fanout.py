"""tasks/fanout.py: every target worked on, `parallel` at a time, each failure kept and
named; no engine (tests/test_manyhosts.py drives real hosts)."""
import threading
import time

import pytest

from tasks import fanout
from tasks.errors import StepFailed


class Step:
    """The little of a workflow Step that fanout reads."""

    def __init__(self, name="load", **spec):
        self.name = name
        self.spec = spec

    def get(self, field, default=None):
        return self.spec.get(field, default)


def test_every_target_is_worked_on_and_each_failure_is_kept():
    def work(host, _stopping):
        if host.endswith("b"):
            raise StepFailed("load: cannot reach " + host)
        if host.endswith("c"):
            raise OSError(32, "Broken pipe")
        return host.upper()

    results = fanout.each(Step(), ["ssh://a", "ssh://b", "ssh://c", "ssh://d"], work)
    assert [results[host][0] for host in ("ssh://a", "ssh://d")] == ["SSH://A", "SSH://D"]
    assert str(results["ssh://b"][1]) == "load: cannot reach ssh://b"
    assert str(results["ssh://c"][1]) == "ssh://c: Broken pipe"


@pytest.mark.parametrize("parallel", [1, 2])
def test_at_most_parallel_targets_at_once(parallel):
    active, most, lock = [0], [0], threading.Lock()

    def work(host, _stopping):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.02)  # long enough for the others to start, if they were let
        with lock:
            active[0] -= 1

    fanout.each(Step(parallel=parallel), ["h%d" % n for n in range(5)], work)
    assert most[0] <= parallel


def test_the_failure_names_each_failed_target_in_the_step_order():
    hosts = ["ssh://a", "ssh://b", "ssh://c"]
    errors = {"ssh://c": StepFailed("load: refused"), "ssh://a": StepFailed("ssh to a failed: Permission denied")}
    assert str(fanout.failure(Step(), errors, hosts)) == (
        "load: 2 of 3 targets failed (the others are done; a rerun retries only these):\n"
        "    ssh://a: ssh to a failed: Permission denied\n"
        "    ssh://c: refused")


def test_one_target_fails_with_its_own_error():
    error = StepFailed("load: cannot reach the Docker engine at unix:///x.sock")
    assert fanout.failure(Step(), {"unix:///x.sock": error}, ["unix:///x.sock"]) is error


def test_an_interrupted_run_stops_the_streams_at_their_next_block():
    stopping = threading.Event()
    blocks = fanout.checked(iter([b"1", b"2", b"3"]), stopping)
    assert next(blocks) == b"1"
    stopping.set()
    with pytest.raises(fanout.Stopped):
        next(blocks)


def test_a_run_starts_opening_the_tunnels_of_its_ssh_engines_at_once(monkeypatch):
    """Each ssh:// target, with its step's ssh options and remote socket; nothing for
    other engines. The tunnels then open beside the run's first step (tasks/ssh.py)."""
    from tasks import ssh

    opened = []
    monkeypatch.setattr(ssh, "open_ahead", lambda *args: opened.append(args))
    workflow = type("Workflow", (), {"base_dir": "/project/workflows"})
    load = Step(docker_hosts=["ssh://a", "unix:///var/run/docker.sock", "ssh://deploy@b:2222"],
                ssh={"identity_file": "id"}, remote_socket="/run/docker.sock")
    build = Step("build", docker_host="ssh://builder")
    local = Step("save", docker_host="unix:///var/run/docker.sock")
    for step in (load, build, local):
        step.workflow = workflow
    fanout.connect_ahead([load, build, local])
    assert opened == [("ssh://a", {"identity_file": "id"}, "/project/workflows", "/run/docker.sock"),
                      ("ssh://deploy@b:2222", {"identity_file": "id"}, "/project/workflows", "/run/docker.sock"),
                      ("ssh://builder", None, "/project/workflows", "/var/run/docker.sock")]


def test_a_step_whose_ssh_setting_cannot_be_read_is_left_to_its_own_check(monkeypatch):
    """`ssh: {identity_file: ${KEY}}` with KEY unset: opening ahead skips that step (its check
    says why), the other steps' tunnels still open, and nothing is raised into doit's reporter."""
    from tasks import ssh

    class Unreadable(Step):
        def get(self, field, default=None):
            if field == "ssh":
                raise StepFailed("load: ssh.identity_file: no variable 'KEY'")
            return super().get(field, default)

    opened = []
    monkeypatch.setattr(ssh, "open_ahead", lambda *args: opened.append(args[0]))
    workflow = type("Workflow", (), {"base_dir": "/project/workflows"})
    broken, fine = Unreadable(docker_host="ssh://a"), Step("build", docker_host="ssh://b")
    broken.workflow = fine.workflow = workflow
    fanout.connect_ahead([broken, fine])
    assert opened == ["ssh://b"]
