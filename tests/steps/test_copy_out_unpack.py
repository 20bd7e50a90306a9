"""copy_out's unpacking rules on crafted tars (no engine): a tar no real filesystem
gives (a link, then a member beneath it) must not write outside the target."""
import io
import os
import tarfile

import pytest

from tasks.errors import StepFailed
from tasks.steps import copy_out


@pytest.fixture(autouse=True, params=["filters", "no filters"])
def tarfile_of(request, monkeypatch):
    """Every test twice: with tarfile's extraction filters (Python 3.11.4+), and without
    them, as Debian 12's own Python 3.11.2 has it."""
    if request.param == "no filters":  # raising=False: a Python without them runs this case as it is
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        monkeypatch.delattr(tarfile.TarInfo, "replace", raising=False)
    return request.param


class Step:
    name = "copy"

    def where(self, *field):
        return "flow.yaml:3:5: steps.copy." + ".".join(field)

    def get(self, field):
        return {"path": "/d", "source": "img"}[field]


def crafted(*members):
    """A tar of (name, kind, link or data, mode) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, kind, extra, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif kind in ("sym", "hard"):
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = extra
                archive.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                archive.addfile(info)
            else:
                info.size = len(extra)
                archive.addfile(info, io.BytesIO(extra))
    buffer.seek(0)
    return tarfile.open(fileobj=buffer)


@pytest.mark.parametrize("members", [
    [("d", "dir", None, 0o755), ("d/out", "sym", "/tmp/OUTSIDE", 0o777), ("d/out/x", "file", b"pwned", 0o644)],
    [("d", "dir", None, 0o755), ("d/up", "sym", "../..", 0o777), ("d/up/x", "file", b"pwned", 0o644)],
    [("d", "dir", None, 0o755), ("d/victim", "sym", "/tmp/OUTSIDE/victim", 0o777),
     ("d/victim", "file", b"pwned", 0o644)],
    [("d", "dir", None, 0o755), ("d/l", "sym", "/tmp/OUTSIDE/victim", 0o777), ("d/h", "hard", "d/l", 0o644)],
    [("d", "dir", None, 0o755), ("d/../../x", "file", b"pwned", 0o644)],
])
def test_nothing_is_written_through_a_link(tmp_path, members):
    outside = tmp_path / "OUTSIDE"
    outside.mkdir()
    (outside / "victim").write_text("safe")
    members = [(name, kind, extra.replace("/tmp/OUTSIDE", str(outside)) if isinstance(extra, str) else extra, mode)
               for name, kind, extra, mode in members]
    target = tmp_path / "project" / "d"
    with pytest.raises(StepFailed) as caught:
        copy_out._write_folder(Step(), crafted(*members), str(target))
    assert "whose path leads out of the folder being unpacked" in str(caught.value)
    assert os.listdir(outside) == ["victim"] and (outside / "victim").read_text() == "safe"
    assert os.listdir(tmp_path / "project") == [], "nothing half-unpacked is left"


def test_links_stay_links_and_modes_lose_the_umask(tmp_path):
    saved = os.umask(0o027)
    try:
        copy_out._write_folder(Step(), crafted(
            ("d", "dir", None, 0o777), ("d/abs", "sym", "/usr/bin/python3", 0o777),
            ("d/run", "file", b"#!/bin/sh\n", 0o4777), ("d/same", "hard", "d/run", 0o4777),
            ("d/pipe", "fifo", None, 0o644)), str(tmp_path / "d"))
    finally:
        os.umask(saved)
    assert os.readlink(tmp_path / "d" / "abs") == "/usr/bin/python3"
    assert oct(os.stat(tmp_path / "d" / "run").st_mode & 0o7777) == oct(0o750)
    assert oct(os.stat(tmp_path / "d").st_mode & 0o7777) == oct(0o750)
    assert os.stat(tmp_path / "d" / "same").st_ino == os.stat(tmp_path / "d" / "run").st_ino
    assert sorted(os.listdir(tmp_path / "d")) == ["abs", "run", "same"]  # no fifo


def test_the_umask_is_read_without_changing_it():
    saved = os.umask(0o037)
    try:
        assert copy_out.current_umask() == 0o037
        assert os.umask(0o037) == 0o037
    finally:
        os.umask(saved)
