"""Content digests of the files a step reads.

A file's sha256 is reused while its (size, mtime, inode, mode) are those seen last
time, so a no-op run reads no file content; a checkout that only changes mtimes
costs one re-hash and rebuilds nothing, since the digest is of content.

"Last time" is the step's own saved doit values, or else the project's hash cache
(.dockflow/cache/file-hashes.json): a step that was up to date from its first run
(the lab's base_rootfs: its image already existed) never saved any values, and
without the cache /bin/busybox (2 MB, 2 ms) was hashed on every no-op run.
"""
import hashlib
import json
import os
import stat
import threading
import time

from .files import sha256_file, write_atomic


def files_digest(root, relpaths, saved_stats=None):
    """(digest, stats): stats maps relpath -> [size, mtime_ns, inode, mode, sha256]."""
    saved_stats = saved_stats or {}
    stats, summary, hashed = {}, hashlib.sha256(), {}
    started_ns = time.time_ns()
    for relpath in relpaths:
        path = os.path.join(root, relpath)
        info = os.lstat(path)
        mode = info.st_mode
        key = [info.st_size, info.st_mtime_ns, info.st_ino, mode]
        previous = saved_stats.get(relpath)
        if previous and previous[:4] == key:
            content = previous[4]
        elif stat.S_ISLNK(mode):
            content = "link:" + os.readlink(path)
        elif stat.S_ISDIR(mode):
            content = "dir"
        else:
            content = _cached_sha256(path, key)
            if content is None:
                content = sha256_file(path)
                if info.st_mtime_ns < started_ns - SETTLED_NS:
                    hashed[os.path.abspath(path)] = key + [content]
        stats[relpath] = key + [content]
        # Only content and the executable bit matter to a build, not owner or time.
        summary.update(("%s\0%o\0%s\n" % (relpath, mode & 0o111, content)).encode())
    if hashed:
        _remember(hashed)
    return "sha256:" + summary.hexdigest(), stats


# The project's hash cache: absolute path -> [size, mtime_ns, inode, mode, sha256].
# Read once per process, and only when a file is not in a step's saved values.
HASH_CACHE = "file-hashes.json"
# A file modified less than this before we looked at it is hashed but not cached: a
# write in the same timestamp tick (coarse clocks, FAT's 2 s) could change it again
# without changing its mtime. Older files get a new mtime from any later write.
SETTLED_NS = 2 * 10**9
_hash_caches = {}  # cache file path -> its entries as read (or last written) here
_hash_cache_lock = threading.Lock()  # doit -P thread: one reader/writer at a time


def _hash_cache_path():
    from . import plan  # not at the top: plan imports the step kinds, which import this module

    return os.path.join(plan._project["dir"], ".dockflow", "cache", HASH_CACHE)


def _read_hash_cache(cache_path):
    """The cache file's entries; {} when it is missing, unreadable or not a JSON object."""
    try:
        with open(cache_path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _cached_sha256(path, key):
    """The cached sha256 of `path` if its (size, mtime_ns, inode, mode) are `key`, else None."""
    cache_path = _hash_cache_path()
    with _hash_cache_lock:
        if cache_path not in _hash_caches:
            _hash_caches[cache_path] = _read_hash_cache(cache_path)
        entry = _hash_caches[cache_path].get(os.path.abspath(path))
    # Any entry may be damaged: trust only the exact shape we write.
    if isinstance(entry, list) and len(entry) == 5 and entry[:4] == key and _is_sha256(entry[4]):
        return entry[4]
    return None


def _is_sha256(value):
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _remember(hashed):
    """Add fresh hashes to the cache file. It is re-read first, so what another run
    added meanwhile stays; a race that still drops an entry costs one re-hash, and the
    atomic write means no reader sees half a file."""
    cache_path = _hash_cache_path()
    with _hash_cache_lock:
        entries = _read_hash_cache(cache_path)
        # Files gone since (old tars of earlier versions, say) leave: the cache must
        # not grow for ever, as every read of it parses the whole file.
        entries = {path: entry for path, entry in entries.items() if os.path.lexists(path)}
        entries.update(hashed)
        _hash_caches[cache_path] = entries
        try:
            write_atomic(cache_path, json.dumps(entries, separators=(",", ":")).encode())
        except OSError:
            pass  # a read-only project folder: the file is hashed again next time, no more


def value_digest(value):
    """sha256 of a JSON-able value, stable across runs."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def changed_files(old_stats, new_stats, limit=3):
    """A short human list of what differs between two `files_digest` stats."""
    old_stats = old_stats or {}
    changes = []
    for relpath in sorted(set(old_stats) | set(new_stats)):
        old, new = old_stats.get(relpath), new_stats.get(relpath)
        if old is None:
            changes.append(relpath + " (new)")
        elif new is None:
            changes.append(relpath + " (removed)")
        elif old[4] != new[4] or (old[3] & 0o111) != (new[3] & 0o111):
            changes.append(relpath)
    if len(changes) > limit:
        changes = changes[:limit] + ["%d more" % (len(changes) - limit)]
    return changes


# The image label that carries the digest of a step's inputs: the state lives with
# the image, so a lost .dockflow database or a `docker rmi` cannot lie about it.
INPUTS_LABEL = "io.dockflow.inputs"
