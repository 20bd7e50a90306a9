"""tasks/digest.py: a step with no saved values keeps its file stats in its own hash
file, so its files are hashed once, not on every run; a changed or replaced file is
always hashed again. No engine: files_digest on files in a temp folder."""
import hashlib
import json
import os
import subprocess

import pytest

from tasks import digest, files, runstate


@pytest.fixture
def hashed(tmp_path, monkeypatch):
    """The list of files whose content was read. Files count as settled at once
    (SETTLED_NS 0) unless a test says otherwise."""
    monkeypatch.setattr(digest, "SETTLED_NS", 0)
    reads = []

    def counting_sha256(path):
        reads.append(os.path.basename(path))
        return files.sha256_file(path)

    monkeypatch.setattr(digest, "sha256_file", counting_sha256)
    return reads


def hash_file(tmp_path, name="base_rootfs.files"):
    return tmp_path / ".dockflow" / "cache" / "hashes" / (name + ".json")


def cache_dir(tmp_path):
    return str(tmp_path / ".dockflow" / "cache")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def run(tmp_path, *relpaths, saved=None, name="base_rootfs.files"):
    return digest.files_digest(str(tmp_path), list(relpaths), saved, hash_file=str(hash_file(tmp_path, name)))


def test_a_step_without_saved_values_hashes_a_file_once(tmp_path, hashed):
    (tmp_path / "busybox").write_bytes(b"x" * 5000)
    first = run(tmp_path, "busybox")
    second = run(tmp_path, "busybox")
    assert hashed == ["busybox"]
    assert first == second and first[1]["busybox"][4] == sha(b"x" * 5000)
    assert json.loads(hash_file(tmp_path).read_text()) == first[1]


def test_a_run_that_hashed_nothing_writes_nothing(tmp_path, hashed):
    """A no-op run reads no file content and leaves the step's hash file as it was."""
    (tmp_path / "busybox").write_bytes(b"x" * 5000)
    run(tmp_path, "busybox")
    written = os.stat(hash_file(tmp_path))
    run(tmp_path, "busybox")
    assert hashed == ["busybox"]
    assert os.stat(hash_file(tmp_path)).st_ino == written.st_ino  # a write would be a new file (os.replace)


def test_the_digest_of_the_same_files_is_the_same_in_every_release(tmp_path, hashed):
    """Saved digests stay valid across an upgrade: a new way of writing it would rebuild
    every image once."""
    (tmp_path / "app.py").write_bytes(b"print(1)\n")
    os.chmod(tmp_path / "app.py", 0o644)
    assert digest.files_digest(str(tmp_path), ["app.py"])[0] == \
        "sha256:80699a25d572258ffa92df2b91c556c67d3abcf6e49d047abf8b72964c1e6495"
    os.chmod(tmp_path / "app.py", 0o600)  # the field of modes other than the usual ones, too
    assert digest.files_digest(str(tmp_path), ["app.py"])[0] == \
        "sha256:94e8a8386b826260d98dd576ef86b850e727a4377e5c5eb5f74bd9525fe266a6"


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
    runstate.reset()
    return runstate.reset


def test_a_tar_saved_here_is_not_read_again_by_the_next_step(tmp_path, hashed, fresh_tar_store):
    from tasks import imagetar

    tar = tmp_path / "build" / "basic-app-1.0.0.tar"
    tar.parent.mkdir()
    tar.write_bytes(b"t" * 4096)
    imagetar.known_sha256(str(tar), sha(b"t" * 4096), cache_dir(tmp_path))  # what save does after writing it
    fresh_tar_store()
    assert imagetar.cached_sha256(str(tar), cache_dir(tmp_path))[0] == sha(b"t" * 4096)  # transfer, load: no saved values
    assert hashed == []
    tar.write_bytes(b"u" * 4096)
    fresh_tar_store()
    assert imagetar.cached_sha256(str(tar), cache_dir(tmp_path))[0] == sha(b"u" * 4096)
    assert hashed == ["basic-app-1.0.0.tar"]


def test_a_damaged_tar_store_is_ignored(tmp_path, hashed, fresh_tar_store):
    from tasks import imagetar

    tar = tmp_path / "x.tar"
    tar.write_bytes(b"tar")
    store = tmp_path / ".dockflow" / "cache" / "tar-hashes.json"
    store.parent.mkdir(parents=True)
    store.write_text(json.dumps({str(tar): digest.stat_key(os.lstat(tar)) + ["not a sha"]}))
    assert imagetar.cached_sha256(str(tar), cache_dir(tmp_path))[0] == sha(b"tar")
    assert hashed == ["x.tar"]


# --- what a build's reason says changed ----------------------------------------
def entry(sha, mode=0o100644):
    """A stats entry as files_digest keeps it: size, ctime, inode, mode, content."""
    return [1, 2, 3, mode, sha]


def test_changed_files_names_new_removed_and_changed_files_in_order():
    old = {"app.py": entry("a"), "gone.txt": entry("g"), "same.txt": entry("s")}
    new = {"app.py": entry("A"), "added.txt": entry("n"), "same.txt": entry("s")}
    assert digest.changed_files(old, new) == ["added.txt (new)", "app.py", "gone.txt (removed)"]


def test_changed_files_with_nothing_recorded_calls_every_file_new():
    assert digest.changed_files(None, {"b": entry("b"), "a": entry("a")}) == ["a (new)", "b (new)"]


def test_changed_files_ignores_stats_that_do_not_reach_the_build():
    """Another ctime, inode or size with the same content: the image would be the same."""
    assert digest.changed_files({"x": [1, 2, 3, 0o100644, "c"]}, {"x": [9, 8, 7, 0o100644, "c"]}) == []


@pytest.mark.parametrize("old_mode, new_mode, changed", [
    (0o100644, 0o100755, True),   # made executable
    (0o100755, 0o100744, True),   # no longer executable by its group and others
    (0o100644, 0o100645, True),   # executable by others only
    (0o100644, 0o100600, True),   # no longer readable by others: COPY keeps that too
    (0o100644, 0o100664, True),   # writable by its group
    (0o100666, 0o100666, False),  # the same mode
])
def test_changed_files_names_a_file_whose_permission_bits_changed(old_mode, new_mode, changed):
    assert digest.changed_files({"run.sh": entry("c", old_mode)}, {"run.sh": entry("c", new_mode)}) == \
        (["run.sh (mode %o -> %o)" % (old_mode & 0o7777, new_mode & 0o7777)] if changed else [])


def test_changed_files_shortens_a_long_list():
    new = {"f%d" % i: entry(str(i)) for i in range(6)}
    assert digest.changed_files({}, new) == ["f0 (new)", "f1 (new)", "f2 (new)", "3 more"]
    assert digest.changed_files({}, new, limit=6) == ["f%d (new)" % i for i in range(6)]
    assert digest.changed_files({}, dict(list(new.items())[:4]), limit=4) == ["f%d (new)" % i for i in range(4)]


# --- digests -------------------------------------------------------------------
def test_value_digest_does_not_depend_on_key_order():
    assert digest.value_digest({"a": 1, "b": {"c": 2, "d": 3}}) == digest.value_digest({"b": {"d": 3, "c": 2}, "a": 1})
    assert digest.value_digest({"a": 1}) != digest.value_digest({"a": 2})
    assert digest.value_digest({"a": 1}) == "sha256:" + sha(b'{"a":1}')


def test_the_digest_of_a_value_is_the_same_in_every_release():
    """A step's definition digest is saved: compact JSON with sorted keys, written the
    same way by every release, or an upgrade would rebuild every image once."""
    assert digest.value_digest({"b": [2, "x"], "a": {"d": None, "c": True}}) == \
        "sha256:" + sha(b'{"a":{"c":true,"d":null},"b":[2,"x"]}')


def digest_after_chmod(tmp_path, new_mode):
    """The digest of one file at 0o644, then at `new_mode`."""
    (tmp_path / "run.sh").write_bytes(b"echo\n")
    os.chmod(tmp_path / "run.sh", 0o644)
    before, _ = digest.files_digest(str(tmp_path), ["run.sh"])
    os.chmod(tmp_path / "run.sh", new_mode)
    return before, digest.files_digest(str(tmp_path), ["run.sh"])[0]


@pytest.mark.parametrize("new_mode", [0o755, 0o645])  # executable; by others only
def test_the_digest_follows_the_executable_bits(tmp_path, hashed, new_mode):
    before, after = digest_after_chmod(tmp_path, new_mode)
    assert after != before


def test_the_digest_follows_the_permission_bits_docker_copies(tmp_path, hashed):
    """Docker's builder copies the read and write bits too (test_a_permission_change_reaches_
    the_image): a chmod 600 must not leave a stale image with the file readable by all."""
    before, after = digest_after_chmod(tmp_path, 0o600)
    assert after != before


def test_two_unusual_modes_are_two_digests(tmp_path, hashed):
    """Private to its owner, or readable by its group too: two images."""
    (tmp_path / "key").write_bytes(b"k")
    seen = set()
    for mode in (0o600, 0o640, 0o711, 0o111):  # 0o111: not rwx--x--x taken for the old "111" field
        os.chmod(tmp_path / "key", mode)
        seen.add(digest.files_digest(str(tmp_path), ["key"])[0])
    os.chmod(tmp_path / "key", 0o755)
    seen.add(digest.files_digest(str(tmp_path), ["key"])[0])
    assert len(seen) == 5


def test_an_executable_with_the_usual_bits_keeps_the_digest_earlier_releases_saved(tmp_path, hashed):
    """rwxr-xr-x digests as before read/write bits counted: no rebuild after an upgrade."""
    (tmp_path / "run.sh").write_bytes(b"echo hi\n")
    os.chmod(tmp_path / "run.sh", 0o755)
    old_way = "sha256:" + hashlib.sha256(b"run.sh\x00111\x00%s\n" % sha(b"echo hi\n").encode()).hexdigest()
    assert digest.files_digest(str(tmp_path), ["run.sh"])[0] == old_way


def test_a_symlink_is_digested_as_its_target_name_not_read(tmp_path, hashed):
    """Docker sends the link itself: a new target name is a change, the target's content is not."""
    (tmp_path / "real.txt").write_bytes(b"one")
    os.symlink("real.txt", tmp_path / "link")
    first, stats = digest.files_digest(str(tmp_path), ["link"])
    assert stats["link"][4] == "link:real.txt" and hashed == []
    (tmp_path / "real.txt").write_bytes(b"two")
    assert digest.files_digest(str(tmp_path), ["link"])[0] == first
    os.unlink(tmp_path / "link")
    os.symlink("other.txt", tmp_path / "link")  # a dangling link is fine too
    assert digest.files_digest(str(tmp_path), ["link"])[0] != first


def test_a_folder_is_an_entry_without_content(tmp_path, hashed):
    (tmp_path / "empty").mkdir()
    first, stats = digest.files_digest(str(tmp_path), ["empty"])
    assert stats["empty"][4] == "dir" and hashed == []
    (tmp_path / "empty" / "inside").write_bytes(b"x")  # its files are entries of their own
    assert digest.files_digest(str(tmp_path), ["empty"])[0] == first
    assert digest.files_digest(str(tmp_path), ["empty", "empty/inside"])[0] != first


@pytest.mark.engine
def test_a_permission_change_reaches_the_image(tmp_path, docker_host, busybox_image, names):
    """What the digest must follow: the builder dockflow uses (the API's, not BuildKit)
    copies a file's read and write bits into the image."""
    (tmp_path / "Dockerfile").write_text("FROM %s\nCOPY secret /secret\n" % busybox_image)
    (tmp_path / "secret").write_bytes(b"key")
    image, modes = "%s/mode" % names, []
    for mode in (0o644, 0o600):
        os.chmod(tmp_path / "secret", mode)
        subprocess.run(["docker", "-H", docker_host, "build", "-q", "-t", image, str(tmp_path)], check=True,
                       capture_output=True, env=dict(os.environ, DOCKER_BUILDKIT="0"))
        modes.append(subprocess.run(["docker", "-H", docker_host, "run", "--rm", image, "/bin/busybox", "stat",
                                     "-c", "%a", "/secret"], capture_output=True, text=True, check=True).stdout.strip())
    assert modes == ["644", "600"]


def test_a_file_name_that_is_not_utf8_counts_by_its_bytes(tmp_path, hashed):
    """Docker sends such a name as it is; two names one byte apart are two digests."""
    names = [os.fsdecode(name) for name in (b"caf\xe9.txt", b"caf\xe8.txt")]
    for name in names:
        (tmp_path / name).write_bytes(b"same")
    first, second = (digest.files_digest(str(tmp_path), [name])[0] for name in names)
    assert first != second
