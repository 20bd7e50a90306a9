"""Host B and more hosts: other machines for save / transfer / load / pull tests (network
namespaces, since a second dockerd with --bridge=none would delete the first one's
docker0 bridge).

Each host is a network namespace joined to this one by a veth pair (its own /30 in
10.231.0.0/16, its default route through this side), with its own dockerd (own
socket, data-root and exec-root; entered with `nsenter --net=`, not `ip netns exec`;
the whole of LAB_NETWORK among its insecure registries, so a registry published on
this side of any veth is pulled from over plain HTTP) and its own sshd (own host
key, a key made for the test, sftp subsystem). Its ssh sessions get DOCKER_HOST
pointing at its engine, so `ssh host docker load` loads there. Everything is
stopped by its pid and the namespaces deleted.
"""
import os
import shutil
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks import dockerd_launch
from tests.support import dockerd

LAB_NETWORK = "10.231.0.0/16"
# Where every host's ssh sessions find their own engine's socket, as real hosts all have
# theirs at /var/run/docker.sock: its sshd runs in a mount namespace of its own, with its
# dockerd's socket folder mounted here (a folder, so a restarted dockerd's new socket shows).
# So one `remote_socket:` serves all the targets of a step. Left in place: removing it
# would detach the mounts of another test run's hosts.
REMOTE_SOCKET_DIR = "/run/dockflow-hosts"
REMOTE_SOCKET = REMOTE_SOCKET_DIR + "/docker.sock"
HOSTS_PER_RUN = 8  # numbers 0..7: host B is 0, the `hosts` fixture adds 1 and 2, a bench up to 7


def _run(*argv):
    subprocess.run(argv, check=True, capture_output=True)


class HostB:
    def __init__(self, root, number=0, identity_file=None):
        """`identity_file`: the key its sshd accepts, shared with other hosts (one `ssh:`
        field serves all the targets of a step); default: a key of its own."""
        self.root = root
        self.number = number
        index = os.getpid() % 2000  # HOSTS_PER_RUN /30s per test run: parallel runs do not collide
        base = 4 * (index * HOSTS_PER_RUN + number)
        suffix = "%d" % index if number == 0 else "%dn%d" % (index, number)
        self.netns = "dfhb" + suffix
        self.veth_a, self.veth_b = "dfa" + suffix, "dfb" + suffix
        prefix = "10.231.%d." % (base // 256)
        self.address_a, self.address = prefix + str(base % 256 + 1), prefix + str(base % 256 + 2)
        self.socket = os.path.join(root, "sock", "docker.sock")
        self.docker_host = "unix://" + self.socket
        self.identity_file = identity_file or os.path.join(root, "id_ed25519")
        self.known_hosts = os.path.join(root, "known_hosts")
        self.user = "root"
        self._sshd = None
        self._dockerd = None

    @property
    def ssh_settings(self):
        """The `ssh:` field of a step that talks to host B."""
        return {"identity_file": self.identity_file, "strict_host_key_checking": "no",
                "known_hosts_file": self.known_hosts}

    remote_socket = REMOTE_SOCKET  # its engine's socket as its ssh sessions see it

    @property
    def ssh_url(self):
        """Its engine as an ssh:// docker_host (with ssh_settings, and remote_socket REMOTE_SOCKET)."""
        return "ssh://%s@%s" % (self.user, self.address)

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
        self._remove_leftover()
        _run("ip", "netns", "add", self.netns)
        _run("ip", "link", "add", self.veth_a, "type", "veth", "peer", "name", self.veth_b)
        _run("ip", "link", "set", self.veth_b, "netns", self.netns)
        _run("ip", "addr", "add", self.address_a + "/30", "dev", self.veth_a)
        _run("ip", "link", "set", self.veth_a, "up")
        inside = ["ip", "netns", "exec", self.netns]
        _run(*inside, "ip", "addr", "add", self.address + "/30", "dev", self.veth_b)
        _run(*inside, "ip", "link", "set", self.veth_b, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "route", "add", "default", "via", self.address_a)
        self.start_dockerd()
        self._start_sshd()

    def _remove_leftover(self):
        """A killed test run leaves its namespaces and veths behind (a machine's session
        ends; SIGKILL): one of this name, with no dockerd in it, is such a leftover."""
        if os.path.exists(os.path.join(dockerd_launch.NETNS_DIR, self.netns)):
            if dockerd_launch.dockerd_runs_in(self.netns):
                raise RuntimeError("network namespace %s is in use by a running dockerd" % self.netns)
            self._remove_links()

    def _remove_links(self):
        subprocess.run(["ip", "link", "del", self.veth_a], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)

    def start_dockerd(self):
        """Start its dockerd (again, after stop_dockerd: same data, its images kept)."""
        os.makedirs(os.path.dirname(self.socket), exist_ok=True)
        self._dockerd = dockerd.start_dockerd(
            os.path.join(self.root, "dockerd"), self.socket, netns=self.netns,
            extra_args=["--containerd-namespace", "hostb-" + self.netns,
                        "--containerd-plugins-namespace", "hostb-plugins-" + self.netns,
                        "--insecure-registry", LAB_NETWORK])

    def stop_dockerd(self):
        """Stop its dockerd, by its pid: the host answers ssh, its engine does not."""
        if self._dockerd is not None:
            self._dockerd.stop()
            self._dockerd = None

    def refuse_key(self, refused=True):
        """Make its sshd refuse the test's key (authorized_keys holds another one), or
        accept it again."""
        authorized = os.path.join(self.root, "authorized_keys")
        other = os.path.join(self.root, "other_key")
        if refused and not os.path.exists(other):
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other)
        shutil.copy((other if refused else self.identity_file) + ".pub", authorized)

    def limit_rate(self, rate="100mbit"):
        """tbf on this side of its veth: what goes to the host goes at `rate` (this kernel
        has tbf, not netem: no delay or loss)."""
        _run("tc", "qdisc", "replace", "dev", self.veth_a, "root", "tbf", "rate", rate, "burst", "32kbit",
             "latency", "50ms")

    def bytes_sent(self):
        """Bytes sent to the host over its link so far (this side's transmit counter)."""
        with open("/sys/class/net/%s/statistics/tx_bytes" % self.veth_a) as handle:
            return int(handle.read())

    def _start_sshd(self):
        host_key = os.path.join(self.root, "ssh_host_ed25519_key")
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key)
        if not os.path.exists(self.identity_file):
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
        os.makedirs(REMOTE_SOCKET_DIR, exist_ok=True)
        log = open(os.path.join(self.root, "sshd.log"), "ab")
        # nsenter, unshare and sh each exec the next: the pid is sshd's own.
        self._sshd = subprocess.Popen(
            ["nsenter", "--net=/var/run/netns/" + self.netns, "unshare", "--mount", "--propagation", "private",
             "--", "sh", "-c", 'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh",
             os.path.dirname(self.socket), REMOTE_SOCKET_DIR, "/usr/sbin/sshd", "-D", "-e", "-f", config],
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
        self.stop_dockerd()
        self._remove_links()


def ssh_fields(hosts, indent=4):
    """YAML lines of a step whose targets are the engines of `hosts`, over ssh://: its
    docker_hosts (docker_host for one host), ssh options and remote_socket."""
    settings = hosts[0].ssh_settings
    targets = ("docker_host: %s" % hosts[0].ssh_url if len(hosts) == 1
               else "docker_hosts: [%s]" % ", ".join(host.ssh_url for host in hosts))
    lines = [targets, "remote_socket: " + REMOTE_SOCKET,
             'ssh: {identity_file: %s, strict_host_key_checking: "no", known_hosts_file: %s}'
             % (settings["identity_file"], settings["known_hosts_file"])]
    return "".join("\n" + " " * indent + line for line in lines)


def _needs_tools():
    missing = [tool for tool in ("ip", "nsenter", "dockerd", "/usr/sbin/sshd", "ssh", "scp")
               if not shutil.which(tool)]
    if missing or os.geteuid() != 0:
        pytest.fail("host B needs root and %s (python3 -m tasks.bootstrap --tests installs them)"
                    % (", ".join(missing) or "nothing more"))


def start_hosts(roots, first_number=0, identity_file=None):
    """Started hosts, one per root folder, numbered from first_number, all accepting
    `identity_file` (default: a key made in the first root); started side by side (each
    waits on its dockerd). Stop them with stop_hosts, whatever happens."""
    identity_file = identity_file or os.path.join(roots[0], "id_ed25519")
    if not os.path.exists(identity_file):
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", identity_file)
    made = [HostB(root, first_number + offset, identity_file) for offset, root in enumerate(roots)]
    with ThreadPoolExecutor(max_workers=len(made)) as pool:
        started = [pool.submit(host.start) for host in made]
    errors = [future.exception() for future in started if future.exception()]
    if errors:
        stop_hosts(made)
        raise errors[0]
    return made


def stop_hosts(made):
    for host in made:
        host.stop()


@pytest.fixture(scope="session")
def hostb(tmp_path_factory, docker_host):
    """A second host with its own engine and sshd; see HostB."""
    _needs_tools()
    # A short path: a unix socket's path must stay under 108 bytes.
    root = str(tmp_path_factory.mktemp("hostb"))
    host = HostB(root)
    try:
        host.start()
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="session")
def hosts(hostb, tmp_path_factory):
    """Three hosts: host B and two more like it, each its own namespace, dockerd and sshd."""
    more = start_hosts([str(tmp_path_factory.mktemp("host%d" % number)) for number in (1, 2)], first_number=1,
                       identity_file=hostb.identity_file)
    try:
        yield [hostb] + more
    finally:
        stop_hosts(more)
