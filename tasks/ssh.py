"""ssh for transfer and load: options from the step's `ssh:` field, argument lists only.

ssh sends a remote command to the remote user's shell as one string, so each
remote argument is quoted with shlex.quote; nothing else is ever a shell string.
A `docker_host: ssh://user@host[:port]` engine is reached through a tunnel of our
own (`ssh -N -L local.sock:remote.sock`), so the same options apply and the engine
is then an ordinary unix socket (no paramiko, no docker CLI on the remote host).
"""
import atexit
import os
import re
import subprocess
import threading
import time
import urllib.parse

from .errors import StepFailed
from .runstate import RUN

# user@host:/path or host:path (not ./a:b, not /a:b): scp's own rule, roughly.
# A pattern, not compiled here: re compiles it on first use (0.15 ms), which loading
# workflows whose destinations are all local paths never needs. Matched whole, a
# path holding a newline included (`$` would drop a final one).
_REMOTE_PATTERN = r"(?:(?P<user>[^@/:\s]+)@)?(?P<host>[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:]+\]):(?P<path>.*)"


# RUN.tunnels is asked by the fan-out's threads and filled by open_ahead's at once.
_tunnels_lock = threading.Lock()


class Remote:
    """Where ssh goes, and with which options (the step's `ssh:` field)."""

    def __init__(self, host, user=None, settings=None, base_dir=".", port=None):
        self.host = _checked("host", host)
        self.user = _checked("user", user) if user else user
        settings = settings or {}
        self.port = port or settings.get("port")
        identity = settings.get("identity_file")
        self.identity_file = os.path.join(base_dir, os.path.expanduser(identity)) if identity else None
        self.strict = settings.get("strict_host_key_checking")
        known = settings.get("known_hosts_file")
        self.known_hosts_file = os.path.join(base_dir, os.path.expanduser(known)) if known else None
        self.connect_timeout = int(settings.get("connect_timeout", 10))

    @property
    def target(self):
        return "%s@%s" % (self.user, self.host) if self.user else self.host

    def options(self, port_flag="-p"):
        """ssh/scp options; scp spells the port -P."""
        argv = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % self.connect_timeout]
        if self.port:
            argv += [port_flag, str(self.port)]
        if self.identity_file:
            argv += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        if self.strict is not None:
            value = self.strict if isinstance(self.strict, str) else ("yes" if self.strict else "no")
            argv += ["-o", "StrictHostKeyChecking=" + value]
        if self.known_hosts_file:
            argv += ["-o", "UserKnownHostsFile=" + self.known_hosts_file]
        return argv

    def command(self, *remote_argv):
        """argv of `ssh ... target -- remote command`, each remote word quoted for the remote shell."""
        import shlex  # here, not at the top: 0.2 ms that loading the workflows never needs

        return ["ssh", *self.options(), "--", self.target, " ".join(shlex.quote(w) for w in remote_argv)]

    def run(self, *remote_argv, what, ok_codes=(0,)):
        """(exit code, stdout) of a command on the remote host; StepFailed with ssh's
        own words when ssh cannot connect or the code is not in `ok_codes`."""
        try:
            done = subprocess.run(self.command(*remote_argv), capture_output=True, text=True, timeout=3600)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise StepFailed("%s on %s: %s" % (what, self.target, err)) from None
        if done.returncode not in ok_codes:
            raise StepFailed("%s on %s failed (%s): %s" % (
                what, self.target, "ssh could not connect" if done.returncode == 255 else "exit %d" % done.returncode,
                last_line(done.stderr) or "no message"))
        return done.returncode, done.stdout


def _checked(what, name):
    """`name` as ssh's host or user, refused where ssh would read it as an option
    (`-oProxyCommand=...` runs a command) or where it is no name at all."""
    if not name or name.startswith("-") or not name.isprintable() or any(c.isspace() for c in name):
        raise StepFailed("ssh %s %r refused: a %s may not start with '-' (ssh would read it as an option) "
                         "nor hold spaces or control characters" % (what, name, what))
    return name


def parse_destination(text):
    """(Remote-less parts) user, host, path for `user@host:/path`; None for a local path."""
    if text.startswith(("/", ".", "~")):
        return None
    match = re.fullmatch(_REMOTE_PATTERN, text, re.DOTALL)
    if not match:
        return None
    return match.group("user"), match.group("host").strip("[]"), match.group("path")


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def tunnel(docker_host, settings, base_dir, remote_socket):
    """The unix:// address of a local socket forwarded to `remote_socket` on the
    ssh:// host; the ssh process lives until this process exits. One per engine and
    settings in a run: the check, the upload and the load all go through it. One
    being opened ahead (open_ahead) is waited for; one that failed before it was
    asked for, or whose ssh has ended, is opened again."""
    key = _tunnel_key(docker_host, settings, remote_socket)
    with _tunnels_lock:
        found = RUN.tunnels.get(key)
        opening = found is None or not found.worth_waiting_for()
        if opening:
            found = RUN.tunnels[key] = _Tunnel()
    if opening:
        found.open(docker_host, settings, base_dir, remote_socket)
    return found.address_or_error()


def open_ahead(docker_host, settings, base_dir, remote_socket):
    """Start opening the tunnel that tunnel() will ask for, in a thread of its own: the
    ssh handshake (a post-quantum key exchange: ~0.1 s of processor on each side, 0.3 to
    0.7 s in all on a busy machine) then runs beside the run's first steps (a save of the
    image) instead of after them. Its failure is not kept: tunnel() tries again."""
    key = _tunnel_key(docker_host, settings, remote_socket)
    with _tunnels_lock:
        if key in RUN.tunnels and RUN.tunnels[key].worth_waiting_for():
            return
        found = RUN.tunnels[key] = _Tunnel()
    threading.Thread(target=found.open, args=(docker_host, settings, base_dir, remote_socket),
                     name="dockflow-ssh-ahead", daemon=True).start()


def _tunnel_key(docker_host, settings, remote_socket):
    return docker_host, remote_socket, repr(sorted((settings or {}).items()))


class _Tunnel:
    """One `ssh -N -L local.sock:remote.sock` of this run: being opened, open, or failed."""

    def __init__(self):
        self.opened = threading.Event()  # set once it listens, or failed
        self.address = None
        self.error = None
        self.process = None
        self.folder = None
        self.pid = os.getpid()  # a worker forked from this process has not the thread opening it
        self._closing = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    def worth_waiting_for(self):
        """Being opened by this process, or open with its ssh alive."""
        if self.pid != os.getpid():
            return False
        if not self.opened.is_set():
            return True
        return self.error is None and self.process.poll() is None

    def address_or_error(self):
        self.opened.wait()
        if self.error is not None:
            raise self.error
        return self.address

    def open(self, docker_host, settings, base_dir, remote_socket):
        try:
            self.address = self._open(docker_host, settings, base_dir, remote_socket)
        except BaseException as err:  # noqa: BLE001 - raised again by address_or_error, in its caller's thread
            self.error = err
            if not isinstance(err, Exception):
                raise  # Ctrl-C in the thread opening it: that thread unwinds too
        finally:
            self.opened.set()

    def _open(self, docker_host, settings, base_dir, remote_socket):
        try:
            url = urllib.parse.urlparse(docker_host)
            hostname, port = url.hostname, url.port
        except ValueError as err:  # `ssh://[::1`, a port out of range
            raise StepFailed("%r: not an ssh://[user@]host[:port] address: %s" % (docker_host, err)) from None
        if not hostname:
            raise StepFailed("%r: not an ssh://[user@]host[:port] address" % docker_host)
        remote = Remote(hostname, url.username, settings, base_dir, port=port)
        import tempfile  # here, not at the top: loading the workflows must stay cheap

        with self._closing:  # not after close(): an ssh started then would outlive the run
            if self._closed:
                raise StepFailed("ssh to %s: the run is ending" % remote.target)
            self.folder = tempfile.mkdtemp(prefix="dockflow-ssh-")  # 0700: ours alone
            local_socket = os.path.join(self.folder, "docker.sock")
            # ControlPath=none: with a user's ControlMaster, `ssh -N -L` would hand the forward
            # to the shared master and exit, and the forward would outlive the run we stop.
            argv = ["ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-o", "StreamLocalBindUnlink=yes",
                    "-o", "ControlPath=none", *remote.options(), "-L", "%s:%s" % (local_socket, remote_socket), "--", remote.target]
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + remote.connect_timeout + 5
        while not _listening(local_socket):
            if self.process.poll() is not None:
                raise StepFailed("ssh to %s for the engine at %s failed: %s" % (
                    remote.target, docker_host, last_line(self.process.stderr.read())
                    or "exit %d" % self.process.returncode))
            if time.monotonic() > deadline:
                self.close()
                raise StepFailed("ssh to %s for the engine at %s did not connect in time" % (
                    remote.target, docker_host))
            time.sleep(0.02)
        return "unix://" + local_socket

    def close(self):
        """Stop its ssh and remove its folder (at exit, or when it did not connect in time)."""
        with self._closing:
            self._closed = True
            _close(self.process, self.folder)


def _listening(path):
    """True once ssh listens on the forwarded socket. Its file appears at bind(), a moment
    before listen(): a connection in between is refused (seen with six tunnels at once)."""
    if not os.path.exists(path):
        return False
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _close(process, folder):
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if folder and os.path.isdir(folder):
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)
