"""Content digests of the files a step reads.

A file's sha256 is reused while its (size, ctime, inode, mode) are those seen last
time, so a no-op run reads no file content. ctime, not mtime: a file replaced by
one of the same size with its mtime kept (tar, `touch -d`) may even get the same
inode back, but never the same ctime. A checkout that only changes times costs one
re-hash and rebuilds nothing, since the digest is of content.

"Last time" is the step's own saved doit values. A step that was up to date from its
first run (the lab's base_rootfs: its image already existed) never saved any, so it
keeps its stats in its own small file instead, .dockflow/cache/hashes/<name>.json:
without it /bin/busybox (2 MB, 2 ms) was hashed on every no-op run.
"""
import hashlib
import json
import os
import stat
import time

from .files import read_cache, sha256_file, write_cache

# A file changed less than this before we looked is hashed but its stats are not
# kept in a step's hash file: a write within the same timestamp tick (coarse clocks)
# could change it again without changing its ctime.
SETTLED_NS = 2 * 10**9


def stat_key(info):
    """What must be unchanged for a file's earlier sha256 to stand."""
    return [info.st_size, info.st_ctime_ns, info.st_ino, info.st_mode]


def files_digest(root, relpaths, saved_stats=None, hash_file=None):
    """(digest, stats): stats maps relpath -> [size, ctime_ns, inode, mode, sha256].
    Without `saved_stats`, `hash_file` (the step's: Project.hash_file) keeps the stats."""
    cached = not saved_stats and hash_file
    saved_stats = read_cache(hash_file) if cached else (saved_stats or {})
    stats, summary, hashed = {}, hashlib.sha256(), False
    for relpath in relpaths:
        path = os.path.join(root, relpath)
        info = os.lstat(path)
        key = stat_key(info)
        previous = saved_stats.get(relpath)
        if isinstance(previous, list) and previous[:4] == key:
            content = previous[4]
        elif stat.S_ISLNK(info.st_mode):
            content = "link:" + os.readlink(path)
        elif stat.S_ISDIR(info.st_mode):
            content = "dir"
        else:
            content, hashed = sha256_file(path), True
        stats[relpath] = key + [content]
        # Content and permission bits matter to a build, not owner or time. A file
        # name that is not UTF-8 counts by its own bytes (surrogateescape).
        summary.update(("%s\0%s\0%s\n" % (relpath, _mode_text(info.st_mode), content))
                       .encode(errors="surrogateescape"))
    if cached and hashed:
        _write_hash_file(hash_file, stats)
    return "sha256:" + summary.hexdigest(), stats


def mode_field(mode):
    """A file's permission bits as digested, here and by import's `files:`. COPY and
    import keep them all (a chmod 600 makes another image), but releases before this
    one digested only the executable bits: for the usual read/write bits (rw-r--r--, as
    a checkout with umask 022 makes them) the field stays what they wrote, the
    executable bits as a number, so their saved digests stay valid."""
    if stat.S_ISLNK(mode) or mode & 0o7666 == 0o644:  # a link's own mode is always 0777
        return mode & 0o111
    return "/%o" % stat.S_IMODE(mode)  # the slash: never one of the old fields


def _mode_text(mode):
    field = mode_field(mode)
    return "%o" % field if isinstance(field, int) else field


def _write_hash_file(hash_file, stats):
    settled = time.time_ns() - SETTLED_NS
    write_cache(hash_file, {relpath: entry for relpath, entry in stats.items() if entry[1] < settled})


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
        elif old[4] != new[4]:
            changes.append(relpath)
        elif mode_field(old[3]) != mode_field(new[3]):
            changes.append("%s (mode %o -> %o)" % (relpath, stat.S_IMODE(old[3]), stat.S_IMODE(new[3])))
    if len(changes) > limit:
        changes = changes[:limit] + ["%d more" % (len(changes) - limit)]
    return changes

