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
    temp = os.path.join(folder, ".%s.partial-%d" % (os.path.basename(path), os.getpid()))
    try:
        with open(temp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def remove_dead_partials(path):
    """Temp files of writes to `path` whose process is gone (a killed run, or a worker
    of doit -n N stopped by Ctrl-C): never trusted, but they hold disk."""
    import glob

    pattern = ".%s.partial-*" % glob.escape(os.path.basename(path))
    for partial in glob.glob(os.path.join(glob.escape(os.path.dirname(os.path.abspath(path))), pattern)):
        try:
            os.kill(int(partial.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(partial)
        except (ValueError, OSError):
            continue


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
