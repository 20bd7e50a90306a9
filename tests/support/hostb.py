"""Host B: a second machine for save / transfer / load tests (a network namespace, since a
second dockerd with --bridge=none would delete the first one's docker0 bridge).

A network namespace joined to this one by a veth pair, with its own dockerd (own
socket, data-root and exec-root; entered with `nsenter --net=`, not `ip netns
exec`) and its own sshd (own host key, a key made for the test, sftp subsystem).
Its ssh sessions get DOCKER_HOST pointing at host B's engine, so `ssh hostb docker
load` loads there. Everything is stopped by its pid and the namespace deleted.
"""
import os
import shutil
import signal
import subprocess

import pytest

from tests.support import dockerd


def _run(*argv):
    subprocess.run(argv, check=True, capture_output=True)


class HostB:
    def __init__(self, root):
        self.root = root
        index = os.getpid() % 16000  # one /30 per test run: parallel runs do not collide
        base = 4 * index
        self.netns = "dfhb%d" % index
        self.veth_a, self.veth_b = "dfa%d" % index, "dfb%d" % index
        prefix = "10.231.%d." % (base // 256)
        self.address_a, self.address = prefix + str(base % 256 + 1), prefix + str(base % 256 + 2)
        self.socket = os.path.join(root, "docker.sock")
        self.docker_host = "unix://" + self.socket
        self.identity_file = os.path.join(root, "id_ed25519")
        self.known_hosts = os.path.join(root, "known_hosts")
        self.user = "root"
        self._sshd = None
        self._dockerd = None

    @property
    def ssh_settings(self):
        """The `ssh:` field of a step that talks to host B."""
        return {"identity_file": self.identity_file, "strict_host_key_checking": "no",
                "known_hosts_file": self.known_hosts}

    def ssh_argv(self):
        return ["ssh", "-i", self.identity_file, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=" + self.known_hosts,
                "%s@%s" % (self.user, self.address)]

    def docker(self, *args, check=True):
        """The docker CLI against host B's engine."""
        done = subprocess.run(["docker", "-H", self.docker_host, *args], capture_output=True, text=True)
        if check and done.returncode != 0:
            raise AssertionError("docker (host B) %s failed: %s" % (" ".join(args), done.stderr))
        return done.stdout

    def start(self):
        _run("ip", "netns", "add", self.netns)
        _run("ip", "link", "add", self.veth_a, "type", "veth", "peer", "name", self.veth_b)
        _run("ip", "link", "set", self.veth_b, "netns", self.netns)
        _run("ip", "addr", "add", self.address_a + "/30", "dev", self.veth_a)
        _run("ip", "link", "set", self.veth_a, "up")
        inside = ["ip", "netns", "exec", self.netns]
        _run(*inside, "ip", "addr", "add", self.address + "/30", "dev", self.veth_b)
        _run(*inside, "ip", "link", "set", self.veth_b, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        self._dockerd = dockerd.start_dockerd(
            os.path.join(self.root, "dockerd"), self.socket, netns=self.netns,
            extra_args=["--containerd-namespace", "hostb-" + self.netns,
                        "--containerd-plugins-namespace", "hostb-plugins-" + self.netns])
        self._start_sshd()

    def _start_sshd(self):
        host_key = os.path.join(self.root, "ssh_host_ed25519_key")
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.identity_file)
        authorized = os.path.join(self.root, "authorized_keys")
        shutil.copy(self.identity_file + ".pub", authorized)
        config = os.path.join(self.root, "sshd_config")
        with open(config, "w") as handle:
            handle.write("\n".join([
                "ListenAddress " + self.address, "Port 22", "HostKey " + host_key,
                "PidFile " + os.path.join(self.root, "sshd.pid"), "AuthorizedKeysFile " + authorized,
                "PermitRootLogin prohibit-password", "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
                "AllowStreamLocalForwarding yes", "Subsystem sftp /usr/lib/openssh/sftp-server",
                "SetEnv DOCKER_HOST=" + self.docker_host, ""]))
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation folder
        log = open(os.path.join(self.root, "sshd.log"), "ab")
        self._sshd = subprocess.Popen(
            ["nsenter", "--net=/var/run/netns/" + self.netns, "/usr/sbin/sshd", "-D", "-e", "-f", config],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        dockerd.wait_until(lambda: self._sshd.poll() is not None or subprocess.run(
            self.ssh_argv() + ["true"], capture_output=True).returncode == 0, 30, "sshd on host B")
        if self._sshd.poll() is not None:
            raise RuntimeError("sshd on host B exited: see %s" % os.path.join(self.root, "sshd.log"))

    def stop(self):
        if self._sshd is not None and self._sshd.poll() is None:
            self._sshd.send_signal(signal.SIGTERM)
            try:
                self._sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._sshd.kill()
                self._sshd.wait()
        if self._dockerd is not None:
            self._dockerd.stop()
        subprocess.run(["ip", "link", "del", self.veth_a], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)


@pytest.fixture(scope="session")
def hostb(tmp_path_factory, docker_host):
    """A second host with its own engine and sshd; see HostB."""
    missing = [tool for tool in ("ip", "nsenter", "dockerd", "/usr/sbin/sshd", "ssh", "scp")
               if not shutil.which(tool)]
    if missing or os.geteuid() != 0:
        pytest.fail("host B needs root and %s (python3 -m tasks.bootstrap --tests installs them)"
                    % (", ".join(missing) or "nothing more"))
    # A short path: a unix socket's path must stay under 108 bytes.
    root = str(tmp_path_factory.mktemp("hostb"))
    host = HostB(root)
    try:
        host.start()
        yield host
    finally:
        host.stop()
