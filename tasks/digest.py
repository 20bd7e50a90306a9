"""Content digests of the files a step reads.

A file's sha256 is reused while its (size, mtime, inode) are those seen last time,
so a no-op run reads no file content; a checkout that only changes mtimes costs
one re-hash and rebuilds nothing, since the digest is of content.
"""
import hashlib
import json
import os
import stat

from .files import sha256_file


def files_digest(root, relpaths, saved_stats=None):
    """(digest, stats): stats maps relpath -> [size, mtime_ns, inode, mode, sha256]."""
    saved_stats = saved_stats or {}
    stats, summary = {}, hashlib.sha256()
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
            content = sha256_file(path)
        stats[relpath] = key + [content]
        # Only content and the executable bit matter to a build, not owner or time.
        summary.update(("%s\0%o\0%s\n" % (relpath, mode & 0o111, content)).encode())
    return "sha256:" + summary.hexdigest(), stats


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
