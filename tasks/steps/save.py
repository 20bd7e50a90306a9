"""save: an image -> a tar file (docker save -o), with its sha256 beside it.

The engine's stream is written chunk by chunk (never the whole image in memory)
to a temp name that is fsynced and renamed into place; `<tar>.sha256` follows,
written the same way. `gzip: true` compresses on the way.
Up to date when the tar and its checksum file are there and agree, and the tar
holds the image id the engine has now. The tar's sha256 is remembered with its
size, ctime, inode and mode, so a no-op run does not read the tar again.
"""
from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

from .. import engine, ui
from ..errors import StepFailed
from ..files import atomic_writer
from . import Verdict, contract, image_ref_problems

if TYPE_CHECKING:  # for mypy only: each step module is imported on every no-op
    from typing import TypedDict

    from ..workflow import Step

    class SaveMemo(TypedDict):
        image_id: str

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock

# imagetar and progress are imported in the functions that check or run: loading
# the workflows imports every step module, and it needs neither.

CHUNK = 1 << 20


def outputs(step):
    return [("file", step.path("tar"))]


def inputs(step):
    return [("image", step.get("image"))]


def problems(step):
    return image_ref_problems(step, "image")


def check(step: Step, saved: dict[str, Any]) -> Verdict[SaveMemo]:
    from .. import imagetar

    daemon = engine.for_step(step)
    image_ref, tar_path = step.get("image"), step.path("tar")
    image_id = daemon.image_id(image_ref)
    if image_id is None:
        raise StepFailed("%s: image %s is not in the engine %s (no step builds or tags it?)"
                         % (step.where("image"), image_ref, daemon.host))
    memo: SaveMemo = {"image_id": image_id}
    shown = os.path.relpath(tar_path)
    if not os.path.isfile(tar_path):
        return Verdict(False, "saving %s (%s) to %s: no such file yet" % (image_ref, image_id[7:19], shown), memo)
    recorded = imagetar.read_sidecar(tar_path)
    if recorded is None:
        return Verdict(False, "saving %s again: %s has no checksum file beside it" % (image_ref, shown), memo)
    sha256, _ = imagetar.cached_sha256(tar_path, step.workflow.project.cache_dir, saved.get("files"))
    if sha256 != recorded:
        return Verdict(False, "saving %s again: %s does not match its checksum file" % (image_ref, shown), memo)
    if saved.get("sha256") == sha256 and saved.get("image_id"):
        tar_ids = [saved["image_id"]]
    else:  # no record of this file (a lost .dockflow): ask the tar itself
        tar_ids = imagetar.ImageTar(tar_path).image_ids()
    if image_id not in tar_ids:
        return Verdict(False, "saving %s again: it is now %s, %s holds %s"
                       % (image_ref, image_id[7:19], shown, ", ".join(i[7:19] for i in tar_ids)), memo)
    return Verdict(True, memo=memo)


class _Hashing:
    """A write-only file that hashes and counts what goes through it."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self):
        self.handle.flush()


def run(step: Step, verdict: Verdict[SaveMemo]) -> dict[str, Any]:
    import gzip  # here, not at the top: the no-op path never compresses

    from .. import imagetar
    from ..progress import bytes_bar, human_size

    memo = verdict.memo
    daemon = engine.for_step(step)
    image_ref, tar_path = step.get("image"), step.path("tar")
    image = daemon.inspect_image(image_ref) or {}
    read = 0
    try:
        with atomic_writer(tar_path) as handle, bytes_bar("save " + image_ref, image.get("Size")) as bar:
            hashing = _Hashing(handle)
            out = gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0, filename="") if step.get("gzip") else hashing
            # by name, not id: the tar keeps the tag
            for chunk in daemon.save("%s: save of %s" % (step.name, image_ref), image_ref, CHUNK):
                out.write(chunk)
                read += len(chunk)
                bar.advance(len(chunk))
            if isinstance(out, gzip.GzipFile):
                out.close()  # writes the gzip trailer; the file itself stays open
        sha256 = hashing.digest.hexdigest()
        imagetar.write_sidecar(tar_path, sha256)
    except OSError as err:
        raise StepFailed("%s: cannot write %s: %s" % (step.name, tar_path, err.strerror or err)) from None
    stats = imagetar.known_sha256(tar_path, sha256, step.workflow.project.cache_dir)
    ui.say(step.name, "saved %s (%s) to %s: %s%s, sha256 %s" % (
        image_ref, memo["image_id"][7:19], os.path.relpath(tar_path), human_size(hashing.size),
        " (gzip of %s)" % human_size(read) if step.get("gzip") else "", sha256[:12]))
    return {"image_id": memo["image_id"], "sha256": sha256, "files": stats, "size": hashing.size}

