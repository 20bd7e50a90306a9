"""Files are never half-written where a later run would trust them: write to a
temp name in the same folder, fsync, then os.replace into place."""
import contextlib
import hashlib
import os

CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_writer(path, mode="wb"):
    """Yield a handle on a temp file that becomes `path` only if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_dead_partials(path)
    handle, temp = _new_temp_file(folder, os.path.basename(path), mode)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)


def _new_temp_file(folder, name, mode):
    """(open handle, path) of a temp file made for us alone: `.NAME.partial-PID-RANDOM`.
    The pid lets remove_dead_partials find writers that died; the random part and
    O_EXCL (which also refuses a symlink) keep a file or link planted at a name
    guessed from the pid from receiving our write. Its mode is 0666 less the umask,
    as open() makes it."""
    def exclusive(temp, flags):
        return os.open(temp, flags | os.O_EXCL | os.O_NOFOLLOW, 0o666)

    while True:
        temp = os.path.join(folder, ".%s.partial-%d-%s" % (name, os.getpid(), _random_suffix()))
        with contextlib.suppress(FileExistsError):  # taken, or planted: try another name
            return open(temp, mode, opener=exclusive), temp


def _random_suffix():
    return os.urandom(6).hex()


def remove_dead_partials(path):
    """Temp files of writes to `path` whose process is gone (a killed run, or a worker
    of doit -n N stopped by Ctrl-C): never trusted, but they hold disk."""
    import glob

    pattern = ".%s.partial-*" % glob.escape(os.path.basename(path))
    for partial in glob.glob(os.path.join(glob.escape(os.path.dirname(os.path.abspath(path))), pattern)):
        # `.NAME.partial-PID-RANDOM`, or `.NAME.partial-PID` as earlier versions named them
        writer = partial.rsplit(".partial-", 1)[1].split("-", 1)[0]
        try:
            os.kill(int(writer), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(partial)
        except (ValueError, OverflowError, OSError):
            pass  # not a pid, or not ours to ask about: left alone


def read_cache(path):
    """The JSON object a cache file of ours holds; {} when it is missing or damaged
    (what it saved is then worked out again)."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_cache(path, value):
    """Keep `value` in a cache file, whole or not at all; a read-only project folder
    only means the work is done again next time."""
    import json

    try:
        write_atomic(path, json.dumps(value, separators=(",", ":")).encode())
    except OSError:
        pass


def write_atomic(path, data):
    with atomic_writer(path) as handle:
        handle.write(data)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def user_secret():
    """32 random bytes only this user of this machine can read, made on first use:
    ~/.cache/dockflow/secret (XDG_CACHE_HOME), mode 0600. A cache in a project folder is
    sealed with it, so that an entry shipped in a repository, or written by another user
    of a shared folder, is never taken for ours. None when there is no such place (a
    home folder that cannot be written): then nothing is cached."""
    if "secret" not in _user_secret:
        _user_secret["secret"] = _read_or_make_secret()
    return _user_secret["secret"]


_user_secret: dict[str, bytes | None] = {}  # "secret" -> this user's cache secret, read once a process
SECRET_BYTES = 32


def _secret_path():
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG rule: a relative one is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dockflow", "secret")


def _read_or_make_secret():
    path = _secret_path()
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        temp = "%s.new-%d-%s" % (path, os.getpid(), os.urandom(4).hex())
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(descriptor, os.urandom(SECRET_BYTES))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.link(temp, path)  # whole or not at all; a run that made one first wins
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
        return _read_secret(path)
    except OSError:
        return None


def _read_secret(path):
    """The secret at `path`; None when it is not a private file of this user's."""
    import stat

    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_uid != os.geteuid() or status.st_mode & 0o077:
            return None
        secret = os.read(descriptor, SECRET_BYTES + 1)
    finally:
        os.close(descriptor)
    return secret if len(secret) == SECRET_BYTES else None
