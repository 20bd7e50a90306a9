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
