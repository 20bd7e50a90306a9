"""tasks/digest.py: the project's hash cache lets a file be hashed once, not on
every run, and never lets a stale or damaged entry stand for a file's content.
No engine: files_digest on files in a temp folder."""
import hashlib
import json
import os
import time

import pytest

from tasks import digest, files, plan

HOUR_NS = 3600 * 10**9


@pytest.fixture
def hashed(tmp_path, monkeypatch):
    """A project folder for the run, a fresh process-wide cache, and the list of
    files whose content was read."""
    monkeypatch.setitem(plan._project, "dir", str(tmp_path))
    monkeypatch.setattr(digest, "_hash_caches", {})
    reads = []

    def counting_sha256(path):
        reads.append(path)
        return files.sha256_file(path)

    monkeypatch.setattr(digest, "sha256_file", counting_sha256)
    return reads


def write_old(path, data, age_ns=HOUR_NS):
    """A file last modified `age_ns` ago: settled, so its hash may be cached."""
    path.write_bytes(data)
    then = time.time_ns() - age_ns
    os.utime(path, ns=(then, then))


def cache_file(tmp_path):
    return tmp_path / ".dockflow" / "cache" / digest.HASH_CACHE


def new_process(monkeypatch):
    """Forget what this process read, as the next run would."""
    monkeypatch.setattr(digest, "_hash_caches", {})


def expected_sha(data):
    return hashlib.sha256(data).hexdigest()


def test_unchanged_file_is_read_once_across_runs(tmp_path, monkeypatch, hashed):
    write_old(tmp_path / "busybox", b"x" * 5000)
    first, stats = digest.files_digest(str(tmp_path), ["busybox"])
    assert hashed == [str(tmp_path / "busybox")]
    assert stats["busybox"][4] == expected_sha(b"x" * 5000)
    assert os.path.abspath(tmp_path / "busybox") in json.loads(cache_file(tmp_path).read_text())

    new_process(monkeypatch)
    second, stats_again = digest.files_digest(str(tmp_path), ["busybox"])  # no saved_stats
    assert hashed == [str(tmp_path / "busybox")]  # no second read
    assert (second, stats_again) == (first, stats)


def test_changed_file_is_hashed_again(tmp_path, monkeypatch, hashed):
    write_old(tmp_path / "app.bin", b"aaaa")
    before, _ = digest.files_digest(str(tmp_path), ["app.bin"])
    write_old(tmp_path / "app.bin", b"bbbb", age_ns=HOUR_NS // 2)  # same size, new content and mtime

    new_process(monkeypatch)
    after, stats = digest.files_digest(str(tmp_path), ["app.bin"])
    assert len(hashed) == 2
    assert stats["app.bin"][4] == expected_sha(b"bbbb")
    assert after != before


def test_entry_for_other_mode_is_not_trusted(tmp_path, monkeypatch, hashed):
    write_old(tmp_path / "tool", b"#!/bin/sh\n")
    digest.files_digest(str(tmp_path), ["tool"])
    os.chmod(tmp_path / "tool", 0o755)  # same size, mtime and inode

    new_process(monkeypatch)
    digest.files_digest(str(tmp_path), ["tool"])
    assert len(hashed) == 2


@pytest.mark.parametrize("damage", [
    b"{not json",
    b"[1, 2, 3]",
    b"",
    "damaged entry",
])
def test_damaged_cache_is_ignored(tmp_path, monkeypatch, hashed, damage):
    write_old(tmp_path / "data", b"payload")
    cache = cache_file(tmp_path)
    cache.parent.mkdir(parents=True)
    if damage == "damaged entry":  # the right key, a sha256 that is no sha256
        info = os.lstat(tmp_path / "data")
        entry = [info.st_size, info.st_mtime_ns, info.st_ino, info.st_mode, None]
        damage = json.dumps({os.path.abspath(tmp_path / "data"): entry}).encode()
    cache.write_bytes(damage)

    _, stats = digest.files_digest(str(tmp_path), ["data"])
    assert len(hashed) == 1
    assert stats["data"][4] == expected_sha(b"payload")
    # ...and the file is whole again, with the fresh entry.
    entries = json.loads(cache.read_text())
    assert entries[os.path.abspath(tmp_path / "data")][4] == expected_sha(b"payload")


def test_file_modified_just_now_is_not_cached(tmp_path, monkeypatch, hashed):
    """A second write within the same timestamp tick would keep its mtime: only a
    settled file's hash is kept for later runs."""
    (tmp_path / "fresh").write_bytes(b"new")
    digest.files_digest(str(tmp_path), ["fresh"])
    assert not cache_file(tmp_path).exists()

    new_process(monkeypatch)
    digest.files_digest(str(tmp_path), ["fresh"])
    assert len(hashed) == 2


def test_saved_stats_hit_reads_no_cache_file(tmp_path, monkeypatch, hashed):
    write_old(tmp_path / "ctx", b"context")
    _, stats = digest.files_digest(str(tmp_path), ["ctx"])
    new_process(monkeypatch)
    reads_of_cache = []
    monkeypatch.setattr(digest, "_read_hash_cache", lambda path: reads_of_cache.append(path) or {})

    digest.files_digest(str(tmp_path), ["ctx"], saved_stats=stats)
    assert reads_of_cache == [] and len(hashed) == 1


def test_entries_of_removed_files_leave_the_cache(tmp_path, monkeypatch, hashed):
    write_old(tmp_path / "basic-app-1.0.0.tar", b"old")
    digest.files_digest(str(tmp_path), ["basic-app-1.0.0.tar"])
    (tmp_path / "basic-app-1.0.0.tar").unlink()
    write_old(tmp_path / "basic-app-1.0.1.tar", b"new")

    new_process(monkeypatch)
    digest.files_digest(str(tmp_path), ["basic-app-1.0.1.tar"])
    assert sorted(json.loads(cache_file(tmp_path).read_text())) == [os.path.abspath(tmp_path / "basic-app-1.0.1.tar")]
