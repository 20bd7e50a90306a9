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
import time
import urllib.parse

from .errors import StepFailed
from .runstate import RUN

# user@host:/path or host:path (not ./a:b, not /a:b): scp's own rule, roughly.
# A pattern, not compiled here: re compiles it on first use (0.15 ms), which loading
# workflows whose destinations are all local paths never needs. Matched whole, a
# path holding a newline included (`$` would drop a final one).
_REMOTE_PATTERN = r"(?:(?P<user>[^@/:\s]+)@)?(?P<host>[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:]+\]):(?P<path>.*)"


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
    ssh:// host; the ssh process lives until this process exits."""
    key = (docker_host, remote_socket, repr(sorted((settings or {}).items())))
    if key in RUN.tunnels and RUN.tunnels[key][0].poll() is None:
        return RUN.tunnels[key][1]
    try:
        url = urllib.parse.urlparse(docker_host)
        hostname, port = url.hostname, url.port
    except ValueError as err:  # `ssh://[::1`, a port out of range
        raise StepFailed("%r: not an ssh://[user@]host[:port] address: %s" % (docker_host, err)) from None
    if not hostname:
        raise StepFailed("%r: not an ssh://[user@]host[:port] address" % docker_host)
    remote = Remote(hostname, url.username, settings, base_dir, port=port)
    import tempfile  # here, not at the top: loading the workflows must stay cheap

    folder = tempfile.mkdtemp(prefix="dockflow-ssh-")
    local_socket = os.path.join(folder, "docker.sock")
    argv = ["ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-o", "StreamLocalBindUnlink=yes",
            *remote.options(), "-L", "%s:%s" % (local_socket, remote_socket), "--", remote.target]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    atexit.register(_close, process, folder)
    deadline = time.monotonic() + remote.connect_timeout + 5
    while not _listening(local_socket):
        if process.poll() is not None:
            raise StepFailed("ssh to %s for the engine at %s failed: %s" % (
                remote.target, docker_host, last_line(process.stderr.read()) or "exit %d" % process.returncode))
        if time.monotonic() > deadline:
            _close(process, folder)
            raise StepFailed("ssh to %s for the engine at %s did not connect in time" % (remote.target, docker_host))
        time.sleep(0.02)
    address = "unix://" + local_socket
    RUN.tunnels[key] = (process, address)
    return address


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
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        os.unlink(os.path.join(folder, name))
    if os.path.isdir(folder):
        os.rmdir(folder)
