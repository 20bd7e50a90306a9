"""tasks/digest.py: a step with no saved values keeps its file stats in its own hash
file, so its files are hashed once, not on every run; a changed or replaced file is
always hashed again. No engine: files_digest on files in a temp folder."""
import hashlib
import json
import os

import pytest

from tasks import digest, files, plan


@pytest.fixture
def hashed(tmp_path, monkeypatch):
    """A project folder for the run, and the list of files whose content was read.
    Files count as settled at once (SETTLED_NS 0) unless a test says otherwise."""
    monkeypatch.setitem(plan._project, "dir", str(tmp_path))
    monkeypatch.setattr(digest, "SETTLED_NS", 0)
    reads = []

    def counting_sha256(path):
        reads.append(os.path.basename(path))
        return files.sha256_file(path)

    monkeypatch.setattr(digest, "sha256_file", counting_sha256)
    return reads


def hash_file(tmp_path, name="base_rootfs.files"):
    return tmp_path / ".dockflow" / "cache" / "hashes" / (name + ".json")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def run(tmp_path, *relpaths, saved=None, name="base_rootfs.files"):
    return digest.files_digest(str(tmp_path), list(relpaths), saved, cache_name=name)


def test_a_step_without_saved_values_hashes_a_file_once(tmp_path, hashed):
    (tmp_path / "busybox").write_bytes(b"x" * 5000)
    first = run(tmp_path, "busybox")
    second = run(tmp_path, "busybox")
    assert hashed == ["busybox"]
    assert first == second and first[1]["busybox"][4] == sha(b"x" * 5000)
    assert json.loads(hash_file(tmp_path).read_text()) == first[1]


def test_changed_content_is_hashed_again(tmp_path, hashed):
    (tmp_path / "app.bin").write_bytes(b"aaaa")
    before, _ = run(tmp_path, "app.bin")
    (tmp_path / "app.bin").write_bytes(b"bbbb")  # same size
    after, stats = run(tmp_path, "app.bin")
    assert hashed == ["app.bin", "app.bin"]
    assert stats["app.bin"][4] == sha(b"bbbb") and after != before


def test_a_file_replaced_with_the_same_size_and_mtime_is_hashed_again(tmp_path, hashed):
    """tar and `touch -d` keep an mtime, and a new file may get the old inode back."""
    path = tmp_path / "tool"
    path.write_bytes(b"old!")
    kept = os.stat(path)
    run(tmp_path, "tool")
    path.unlink()
    path.write_bytes(b"new!")
    os.utime(path, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    _, stats = run(tmp_path, "tool")
    assert hashed == ["tool", "tool"]
    assert stats["tool"][4] == sha(b"new!")
    # The case itself, which this file system may not give: the old inode back, so
    # only the ctime tells (recorded: the old ctime with today's inode).
    now = os.stat(path)
    _, stats = run(tmp_path, "tool", saved={"tool": [now.st_size, kept.st_ctime_ns, now.st_ino, now.st_mode,
                                                      sha(b"old!")]})
    assert hashed == ["tool", "tool", "tool"] and stats["tool"][4] == sha(b"new!")


def test_a_mode_change_is_hashed_again(tmp_path, hashed):
    (tmp_path / "tool").write_bytes(b"#!/bin/sh\n")
    run(tmp_path, "tool")
    os.chmod(tmp_path / "tool", 0o755)
    run(tmp_path, "tool")
    assert hashed == ["tool", "tool"]
    # chmod also moves the ctime: the mode alone must tell too (recorded: another mode)
    now = os.stat(tmp_path / "tool")
    run(tmp_path, "tool", saved={"tool": [now.st_size, now.st_ctime_ns, now.st_ino, now.st_mode ^ 0o111,
                                          sha(b"#!/bin/sh\n")]})
    assert hashed == ["tool", "tool", "tool"]


@pytest.mark.parametrize("damage", [b"{not json", b"[1, 2, 3]", b"", b'{"data": "not a list"}'])
def test_a_damaged_hash_file_is_ignored_and_written_whole_again(tmp_path, hashed, damage):
    (tmp_path / "data").write_bytes(b"payload")
    hash_file(tmp_path).parent.mkdir(parents=True)
    hash_file(tmp_path).write_bytes(damage)
    _, stats = run(tmp_path, "data")
    assert hashed == ["data"] and stats["data"][4] == sha(b"payload")
    assert json.loads(hash_file(tmp_path).read_text()) == stats


def test_a_file_changed_just_now_is_not_kept(tmp_path, hashed, monkeypatch):
    """A second write within the same timestamp tick would keep its ctime."""
    monkeypatch.setattr(digest, "SETTLED_NS", 60 * 10**9)
    (tmp_path / "fresh").write_bytes(b"new")
    run(tmp_path, "fresh")
    run(tmp_path, "fresh")
    assert hashed == ["fresh", "fresh"]
    assert json.loads(hash_file(tmp_path).read_text()) == {}


def test_saved_values_leave_the_hash_file_alone(tmp_path, hashed):
    (tmp_path / "ctx").write_bytes(b"context")
    _, stats = digest.files_digest(str(tmp_path), ["ctx"])
    run(tmp_path, "ctx", saved=stats)
    assert hashed == ["ctx"]
    assert not hash_file(tmp_path).exists()


def test_each_step_keeps_only_its_own_files(tmp_path, hashed):
    for name in ("a", "b", "c", "d"):
        (tmp_path / name).write_bytes(name.encode())
    run(tmp_path, "a", "b", name="one")
    run(tmp_path, "c", name="two")
    run(tmp_path, "a", "d", name="one")  # b is no longer one of its files: it leaves
    assert sorted(json.loads(hash_file(tmp_path, "one").read_text())) == ["a", "d"]
    assert sorted(json.loads(hash_file(tmp_path, "two").read_text())) == ["c"]


@pytest.fixture
def fresh_tar_store(monkeypatch):
    """A new process's view of the project's tar hashes."""
    from tasks import imagetar

    def new_process():
        monkeypatch.setattr(imagetar, "_tars", {})
    new_process()
    return new_process


def test_a_tar_saved_here_is_not_read_again_by_the_next_step(tmp_path, hashed, fresh_tar_store):
    from tasks import imagetar

    tar = tmp_path / "build" / "basic-app-1.0.0.tar"
    tar.parent.mkdir()
    tar.write_bytes(b"t" * 4096)
    imagetar.known_sha256(str(tar), sha(b"t" * 4096))  # what save does after writing it
    fresh_tar_store()
    assert imagetar.cached_sha256(str(tar))[0] == sha(b"t" * 4096)  # transfer, load: no saved values
    assert hashed == []
    tar.write_bytes(b"u" * 4096)
    fresh_tar_store()
    assert imagetar.cached_sha256(str(tar))[0] == sha(b"u" * 4096)
    assert hashed == ["basic-app-1.0.0.tar"]


def test_a_damaged_tar_store_is_ignored(tmp_path, hashed, fresh_tar_store):
    from tasks import imagetar

    tar = tmp_path / "x.tar"
    tar.write_bytes(b"tar")
    store = tmp_path / ".dockflow" / "cache" / "tar-hashes.json"
    store.parent.mkdir(parents=True)
    store.write_text(json.dumps({str(tar): digest.stat_key(os.lstat(tar)) + ["not a sha"]}))
    assert imagetar.cached_sha256(str(tar))[0] == sha(b"tar")
    assert hashed == ["x.tar"]
