"""tasks/files.py: a write lands whole or not at all, and temp files of dead writers go."""
import os
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


def test_the_data_is_on_disk_before_the_file_takes_its_name(tmp_path, monkeypatch):
    """flush, fsync, then rename: a crash can leave the old file or the new, never half."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_size))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", os.path.basename(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    files.write_atomic(str(tmp_path / "app.tar"), b"whole")
    assert events == [("fsync", 5), ("replace", "app.tar")]
