"""tasks/ssh.py: the argument lists given to ssh and scp, remote destinations, and the
tunnel's command line. No real ssh: where ssh would be started, the test stands in for
the process (tests/steps/test_transfer.py and test_lab.py use real ssh on host B)."""
import io
import os
import socket
import subprocess

import pytest

from tasks import ssh
from tasks.errors import StepFailed
from tasks.runstate import RUN


def test_options_follow_the_step_ssh_field(tmp_path):
    remote = ssh.Remote("hostb", "deploy", {"port": 2222, "identity_file": "keys/id_ed25519",
                                            "strict_host_key_checking": "accept-new",
                                            "known_hosts_file": "~/known", "connect_timeout": 3}, str(tmp_path))
    assert remote.target == "deploy@hostb"
    assert remote.options() == [
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-p", "2222",
        "-i", str(tmp_path / "keys" / "id_ed25519"), "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", "UserKnownHostsFile=" + os.path.expanduser("~/known")]
    assert remote.options(port_flag="-P")[4:6] == ["-P", "2222"]  # scp spells the port -P


@pytest.mark.parametrize("strict, word", [(True, "yes"), (False, "no")])
def test_a_boolean_strict_host_key_checking_is_yes_or_no(strict, word):
    assert ssh.Remote("h", settings={"strict_host_key_checking": strict}).options()[-1] == \
        "StrictHostKeyChecking=" + word


def test_no_settings_give_batch_mode_and_a_timeout_only():
    remote = ssh.Remote("hostb")
    assert remote.target == "hostb"
    assert remote.options() == ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]


def test_each_remote_word_is_quoted_for_the_remote_shell():
    argv = ssh.Remote("hostb", "deploy").command("sha256sum", "--", "/srv/my images/a;rm -rf ~.tar")
    assert argv == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "--", "deploy@hostb",
                    "sha256sum -- '/srv/my images/a;rm -rf ~.tar'"]


@pytest.mark.parametrize("text, parts", [
    ("deploy@hostb:/srv/images/", ("deploy", "hostb", "/srv/images/")),
    ("hostb:app.tar", (None, "hostb", "app.tar")),
    ("[::1]:/srv/app.tar", (None, "::1", "/srv/app.tar")),
    ("/srv/a:b", None),
    ("./a:b", None),
    ("~/shelf/", None),
    ("out/app.tar", None),
])
def test_destinations_are_remote_as_scp_reads_them(text, parts):
    assert ssh.parse_destination(text) == parts


def test_last_line_is_the_last_line_with_words():
    assert ssh.last_line("Warning: added host\nPermission denied (publickey).\n\n  ") == \
        "Permission denied (publickey)."
    assert ssh.last_line("") == ""


@pytest.fixture
def completed(monkeypatch):
    """Stand in for subprocess.run: the argv given, and the (code, stdout, stderr) answered."""
    asked, answer = [], {"value": (0, "", "")}

    def run(argv, **options):
        asked.append(argv)
        code, out, err = answer["value"]
        return subprocess.CompletedProcess(argv, code, out, err)

    monkeypatch.setattr(ssh.subprocess, "run", run)
    return asked, answer


def test_a_remote_command_gives_its_code_and_output(completed):
    asked, answer = completed
    answer["value"] = (0, "abc  /srv/app.tar\n", "")
    assert ssh.Remote("hostb").run("sha256sum", "--", "/srv/app.tar", what="sha256sum") == (0, "abc  /srv/app.tar\n")
    assert asked[0][-1] == "sha256sum -- /srv/app.tar"


@pytest.mark.parametrize("code, said", [(255, "ssh could not connect"), (2, "exit 2")])
def test_a_failing_remote_command_says_so_in_ssh_words(completed, code, said):
    _, answer = completed
    answer["value"] = (code, "", "debug\nhostb: Permission denied (publickey).\n")
    with pytest.raises(StepFailed) as failure:
        ssh.Remote("hostb", "deploy").run("mkdir", "-p", "/srv", what="mkdir /srv")
    assert str(failure.value) == "mkdir /srv on deploy@hostb failed (%s): hostb: Permission denied (publickey)." % said


class FakeTunnel:
    """Stands in for the `ssh -N -L` process: listens on the local socket at once (or exits
    with `fails` on stderr), and records its argv."""
    started = []
    fails = None

    def __init__(self, argv, **options):
        self.argv = argv
        self.started.append(argv)
        self.returncode = None
        self.listener = None
        if self.fails:
            self.returncode = 255
            self.stderr = io.StringIO(self.fails)
        else:
            self.listener = listener(argv[argv.index("-L") + 1].split(":")[0])
            self.listener.listen()

    def poll(self):
        return self.returncode

    def terminate(self):
        self.returncode = -15
        if self.listener:
            self.listener.close()

    def wait(self, timeout=None):
        return self.returncode


def listener(path):
    """A unix socket bound at `path`, not listening yet (as ssh's between bind and listen)."""
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(path)
    return bound


def test_a_forwarded_socket_is_ready_once_it_listens_not_once_its_file_is_there(tmp_path):
    path = str(tmp_path / "docker.sock")
    assert not ssh._listening(path)
    with listener(path) as bound:
        assert os.path.exists(path) and not ssh._listening(path)  # a connection now would be refused
        bound.listen()
        assert ssh._listening(path)


@pytest.fixture
def tunnels(monkeypatch):
    monkeypatch.setattr(ssh.subprocess, "Popen", FakeTunnel)
    monkeypatch.setattr(FakeTunnel, "started", [])
    monkeypatch.setattr(FakeTunnel, "fails", None)
    closed = []
    monkeypatch.setattr(ssh.atexit, "register", lambda *args: closed.append(args))
    yield FakeTunnel
    for close, *args in closed:  # what atexit would do: the tunnel's ssh and folder go
        close(*args)


def test_a_tunnel_forwards_a_local_socket_to_the_remote_engine_socket(tunnels, tmp_path):
    address = ssh.tunnel("ssh://deploy@hostb:2222", {"identity_file": "id"}, str(tmp_path), "/run/docker.sock")
    (argv,) = tunnels.started
    local_socket = argv[argv.index("-L") + 1].split(":")[0]
    assert address == "unix://" + local_socket
    assert argv == ["ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-o", "StreamLocalBindUnlink=yes",
                    "-o", "ControlPath=none", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p", "2222",
                    "-i", str(tmp_path / "id"), "-o", "IdentitiesOnly=yes",
                    "-L", local_socket + ":/run/docker.sock", "--", "deploy@hostb"]


def test_a_live_tunnel_is_reused_for_the_same_engine_and_settings(tunnels, tmp_path):
    first = ssh.tunnel("ssh://hostb", None, str(tmp_path), "/var/run/docker.sock")
    assert ssh.tunnel("ssh://hostb", None, str(tmp_path), "/var/run/docker.sock") == first
    assert len(tunnels.started) == 1
    ssh.tunnel("ssh://hostb", None, str(tmp_path), "/run/other.sock")
    assert len(tunnels.started) == 2


def test_a_tunnel_that_cannot_connect_says_why_in_ssh_words(tunnels, tmp_path):
    tunnels.fails = "hostb: Permission denied (publickey).\n"
    with pytest.raises(StepFailed, match=r"ssh to hostb for the engine at ssh://hostb failed: "
                                         r"hostb: Permission denied \(publickey\)."):
        ssh.tunnel("ssh://hostb", None, str(tmp_path), "/var/run/docker.sock")


def test_an_address_without_a_host_is_refused(tunnels, tmp_path):
    with pytest.raises(StepFailed, match="'ssh:///var/run/docker.sock': not an ssh://"):
        ssh.tunnel("ssh:///var/run/docker.sock", None, str(tmp_path), "/var/run/docker.sock")


def test_a_tunnel_opened_ahead_is_the_one_the_step_gets(tunnels, tmp_path):
    ssh.open_ahead("ssh://hostb", None, str(tmp_path), "/var/run/docker.sock")
    ssh.open_ahead("ssh://hostb", None, str(tmp_path), "/var/run/docker.sock")  # already on its way
    address = ssh.tunnel("ssh://hostb", None, str(tmp_path), "/var/run/docker.sock")
    assert len(tunnels.started) == 1
    assert address == "unix://" + tunnels.started[0][tunnels.started[0].index("-L") + 1].split(":")[0]


def test_a_tunnel_that_failed_ahead_is_opened_again_when_asked_for(tunnels, tmp_path):
    tunnels.fails = "hostb: Connection refused\n"
    ssh.open_ahead("ssh://hostb", None, str(tmp_path), "/var/run/docker.sock")
    (ahead,) = RUN.tunnels.values()
    ahead.opened.wait()  # it failed before any step asked for it
    tunnels.fails = None  # the host is back when the step asks
    assert ssh.tunnel("ssh://hostb", None, str(tmp_path), "/var/run/docker.sock").startswith("unix://")
    assert len(tunnels.started) == 2


def test_a_step_waits_for_a_tunnel_being_opened_and_takes_its_failure():
    """Not a second ssh beside it: the answer it waited for is as fresh as a new one."""
    being_opened = ssh._Tunnel()
    assert being_opened.worth_waiting_for()
    being_opened.error = StepFailed("ssh to hostb for the engine at ssh://hostb failed: Connection refused")
    being_opened.opened.set()
    assert not being_opened.worth_waiting_for()  # the next step to ask opens a new one
    with pytest.raises(StepFailed, match="Connection refused"):
        being_opened.address_or_error()


def test_a_forked_worker_opens_its_own_tunnel(tunnels, tmp_path, monkeypatch):
    """A worker of doit -n N is a fork: the thread opening the tunnel, and the ssh
    process's parent, are doit's process, not the worker."""
    first = ssh.tunnel("ssh://hostb", None, str(tmp_path), "/var/run/docker.sock")
    monkeypatch.setattr(ssh.os, "getpid", lambda: -1)
    assert ssh.tunnel("ssh://hostb", None, str(tmp_path), "/var/run/docker.sock") != first
    assert len(tunnels.started) == 2


def test_no_ssh_starts_once_the_run_has_closed_its_tunnels(tunnels, tmp_path):
    """At exit, a tunnel still being opened ahead is closed first: its thread must not
    start an ssh that would outlive the run."""
    ending = ssh._Tunnel()
    ending.close()
    ending.open("ssh://hostb", None, str(tmp_path), "/var/run/docker.sock")
    with pytest.raises(StepFailed, match="the run is ending"):
        ending.address_or_error()
    assert tunnels.started == []
