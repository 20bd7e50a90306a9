"""tasks/imagetar.py: a tar that save has just written and hashed is not read again
by the steps after it (transfer, load) in a cold run of a project that ran before,
nor when save ran in another process (a worker of doit -n N). No engine: tars in a
temp folder, the hashing counted."""
import hashlib
import os

import pytest

from tasks import digest, files, imagetar, runstate


@pytest.fixture
def hashed(monkeypatch):
    """The names of the files whose content was read."""
    reads = []

    def counting_sha256(path):
        reads.append(os.path.basename(path))
        return files.sha256_file(path)

    monkeypatch.setattr(digest, "sha256_file", counting_sha256)
    runstate.reset()
    yield reads
    runstate.reset()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def write_tar(path, data):
    """A new file under that name, as save writes one (a temp file renamed into place)."""
    temp = path.with_suffix(".partial")
    temp.write_bytes(data)
    os.replace(temp, path)


def test_a_tar_saved_anew_is_not_read_again_though_the_step_recorded_the_previous_one(tmp_path, hashed):
    cache = str(tmp_path / ".dockflow" / "cache")
    tar = tmp_path / "basic-app-1.0.0.tar"
    write_tar(tar, b"old" * 1000)
    _, previous_run = imagetar.cached_sha256(str(tar), cache)  # transfer's record of the last run's tar
    hashed.clear()
    write_tar(tar, b"new" * 1000)  # a cold run: save writes the tar again...
    imagetar.known_sha256(str(tar), sha(b"new" * 1000), cache)  # ...and records what it hashed while writing
    assert imagetar.cached_sha256(str(tar), cache, previous_run)[0] == sha(b"new" * 1000)
    assert hashed == []


def test_a_tar_saved_by_another_process_since_the_records_were_read_is_not_read_again(tmp_path, hashed):
    cache = str(tmp_path / ".dockflow" / "cache")
    other = tmp_path / "other.tar"
    write_tar(other, b"other")
    imagetar.cached_sha256(str(other), cache)  # this process has read the records now
    tar = tmp_path / "basic-app-1.0.0.tar"
    write_tar(tar, b"new" * 1000)
    records_here = {store: dict(records) for store, records in runstate.RUN.tars.items()}
    imagetar.known_sha256(str(tar), sha(b"new" * 1000), cache)  # save, in a worker process
    runstate.RUN.tars.clear()
    runstate.RUN.tars.update(records_here)  # this process has not seen that record
    hashed.clear()
    assert imagetar.cached_sha256(str(tar), cache)[0] == sha(b"new" * 1000)
    assert hashed == []


def test_a_tar_changed_after_its_record_is_read_again(tmp_path, hashed):
    cache = str(tmp_path / ".dockflow" / "cache")
    tar = tmp_path / "basic-app-1.0.0.tar"
    write_tar(tar, b"new" * 1000)
    imagetar.known_sha256(str(tar), sha(b"new" * 1000), cache)
    write_tar(tar, b"edited" * 1000)
    assert imagetar.cached_sha256(str(tar), cache)[0] == sha(b"edited" * 1000)
    assert hashed == ["basic-app-1.0.0.tar"]
