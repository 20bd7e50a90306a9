"""tasks/files.py: a write lands whole or not at all, and temp files of dead writers go."""
import os
import stat
import subprocess
import sys

import pytest

from tasks import files


def test_a_write_removes_the_temp_files_of_writers_that_died(tmp_path):
    """A killed run, or a worker of doit -n N stopped by Ctrl-C, leaves its temp file."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    target = tmp_path / "app.tar"
    dead_partial = tmp_path / (".app.tar.partial-%s" % dead)
    live_partial = tmp_path / (".app.tar.partial-%d" % os.getppid())  # a writer still running
    other = tmp_path / (".other.tar.partial-%s" % dead)                # another file's
    for path in (dead_partial, live_partial, other):
        path.write_bytes(b"half")
    files.write_atomic(str(target), b"whole")
    assert target.read_bytes() == b"whole"
    assert not dead_partial.exists()
    assert live_partial.exists() and other.exists()


def test_a_write_that_fails_leaves_no_file_and_no_temp_file(tmp_path):
    """The block raised: the target keeps what it had (here: nothing, then the old
    content), and the half-written temp file is gone."""
    target = tmp_path / "app.tar"
    for before in (None, b"old"):
        if before is not None:
            target.write_bytes(before)
        with pytest.raises(RuntimeError):
            with files.atomic_writer(str(target)) as handle:
                handle.write(b"half")
                raise RuntimeError("the save failed")
        assert (target.read_bytes() if target.exists() else None) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ([] if before is None else ["app.tar"])


def test_a_writer_killed_mid_write_leaves_a_temp_file_the_next_write_removes(tmp_path):
    target = tmp_path / "app.tar"
    script = ("import os, sys\nfrom tasks import files\n"
              "with files.atomic_writer(sys.argv[1]) as handle:\n"
              "    handle.write(b'half')\n    os._exit(9)  # killed here: no cleanup runs\n")
    done = subprocess.run([sys.executable, "-c", script, str(target)], cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 9
    assert [p.name.startswith(".app.tar.partial-") for p in tmp_path.iterdir()] == [True]
    files.write_atomic(str(target), b"whole")
    assert [p.name for p in tmp_path.iterdir()] == ["app.tar"] and target.read_bytes() == b"whole"


def recorded(monkeypatch, events, name, what):
    """os.NAME still does its work, and appends (NAME, what(*its arguments)) to events."""
    real = getattr(os, name)

    def recording(*args):
        events.append((name, what(*args)))
        return real(*args)
    monkeypatch.setattr(os, name, recording)


def size_of(fd):
    return os.fstat(fd).st_size


def target_name(source, target):
    return os.path.basename(target)


def test_the_data_is_on_disk_before_the_file_takes_its_name(tmp_path, monkeypatch):
    """flush, fsync, then rename: a crash can leave the old file or the new, never half."""
    events = []
    recorded(monkeypatch, events, "fsync", size_of)
    recorded(monkeypatch, events, "replace", target_name)
    files.write_atomic(str(tmp_path / "app.tar"), b"whole")
    assert events == [("fsync", 5), ("replace", "app.tar")]


def dead_pid():
    """The pid of a process that has ended (and was reaped)."""
    return subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()


def test_two_writes_of_one_file_at_once_each_have_their_own_temp_file(tmp_path):
    """Two writers of one path in one process (threads of doit -n N): neither waits for
    nor writes into the other's temp file; the last to finish wins whole."""
    target = str(tmp_path / "app.tar")
    with files.atomic_writer(target) as first:
        with files.atomic_writer(target) as second:
            assert first.name != second.name
            second.write(b"second")
        first.write(b"first")
    assert (tmp_path / "app.tar").read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["app.tar"]


def test_a_file_whose_name_holds_partial_still_has_its_dead_writers_swept(tmp_path):
    """The writer's pid is read after the last `.partial-` of the temp file's name."""
    target = tmp_path / "x.partial-1.tar"
    dead_partial = tmp_path / (".x.partial-1.tar.partial-%s-0a1b2c" % dead_pid())
    dead_partial.write_bytes(b"half")
    files.write_atomic(str(target), b"whole")
    assert os.listdir(tmp_path) == ["x.partial-1.tar"]


# --- the user's secret ------------------------------------------------------------------
@pytest.fixture
def fresh_secret(monkeypatch):
    """user_secret() as on a process's first call (the real one is left alone)."""
    monkeypatch.setattr(files, "_user_secret", {})


def test_the_secret_is_kept_in_the_users_cache_folder(tmp_path, monkeypatch, fresh_secret):
    """~/.cache/dockflow/secret when XDG_CACHE_HOME is unset or relative (the XDG rule),
    in a private folder, with no temp file or descriptor left behind."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for xdg in (None, "relative/cache"):
        if xdg is None:
            monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        else:
            monkeypatch.setenv("XDG_CACHE_HOME", xdg)
        monkeypatch.setattr(files, "_user_secret", {})
        assert files._secret_path() == str(tmp_path / ".cache" / "dockflow" / "secret")
    descriptors = len(os.listdir("/proc/self/fd"))
    made = files.user_secret()
    assert len(os.listdir("/proc/self/fd")) == descriptors
    folder = tmp_path / ".cache" / "dockflow"
    assert os.listdir(folder) == ["secret"] and (folder / "secret").read_bytes() == made
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_secret_is_made_in_a_cache_folder_that_exists(tmp_path, monkeypatch, fresh_secret):
    (tmp_path / "dockflow").mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    made = files.user_secret()
    assert made is not None and (tmp_path / "dockflow" / "secret").read_bytes() == made


def test_a_secret_an_earlier_run_made_is_taken(tmp_path, monkeypatch, fresh_secret):
    """32 bytes, mode 0600: what every earlier run wrote, so its caches still hold."""
    (tmp_path / "dockflow").mkdir(mode=0o700)
    earlier = os.urandom(32)
    (tmp_path / "dockflow" / "secret").write_bytes(earlier)
    os.chmod(tmp_path / "dockflow" / "secret", 0o600)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert files.user_secret() == earlier


def test_the_secret_is_read_once_per_run(tmp_path, monkeypatch, fresh_secret):
    """A run seals and checks every cache entry with one secret, even if the file
    changes under it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    made = files.user_secret()
    (tmp_path / "dockflow" / "secret").write_bytes(os.urandom(32))
    assert files.user_secret() == made


def test_a_written_file_has_the_mode_open_gives_never_an_executable_bit(tmp_path):
    """0666 less the umask, as open() makes a file: under umask 0 that is 0666 (a
    digest follows the executable bits, so a stray one would rebuild an image)."""
    old = os.umask(0)
    try:
        files.write_atomic(str(tmp_path / "app.tar"), b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "app.tar").stat().st_mode) == 0o666


def test_the_secret_is_on_disk_before_it_takes_its_name(tmp_path, monkeypatch, fresh_secret):
    """fsync, then link: a crash leaves no secret file, or the whole one, never a short
    one that later runs would refuse (and then cache nothing)."""
    events = []
    recorded(monkeypatch, events, "fsync", size_of)
    recorded(monkeypatch, events, "link", target_name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert files.user_secret() is not None
    assert events == [("fsync", files.SECRET_BYTES), ("link", "secret")]
