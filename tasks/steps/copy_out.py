"""copy_out: a file or folder of an image -> a file or folder of the project
(docker create + docker cp + docker rm, Exercise 3.03).

The copy goes through a temporary container that is created, never started, and
always removed. `target` is the path written (the file itself, or the folder
itself), relative to the workflow file. A file is written to a temp name, fsynced
and renamed into place (tasks/files.py); a folder is unpacked beside its target
and swapped in: a failed copy leaves nothing where a later run would trust it.

Up to date when the source image's id and the step's definition are those of the
last successful copy (doit's saved values) and the target exists.
"""
import os

from .. import engine, ui
from ..digest import value_digest
from ..errors import StepFailed
from ..files import atomic_writer
from . import Verdict, create_container, image_ref_problems, remove_container, source_changes, source_image_id

MAX_LINKS = 8


def outputs(step):
    return [("file", step.path("target"))]


def inputs(step):
    return [("image", step.get("source"))]


def problems(step):
    found = image_ref_problems(step, "source")
    if not step.get("path", "").startswith("/"):
        found.append("%s: %r must be an absolute path inside the image" % (step.where("path"), step.get("path")))
    return found


def check(step, saved):
    source = step.get("source")
    source_id = source_image_id(step)
    memo = {"source_id": source_id, "definition_digest": value_digest(step.expanded_definition())}
    what = "copying %s out of %s to %s" % (step.get("path"), source, os.path.relpath(step.path("target")))
    if not os.path.lexists(step.path("target")):
        return Verdict(False, "%s: the target does not exist" % what, memo)
    if not saved:
        return Verdict(False, "%s: no earlier copy recorded here" % what, memo)
    reasons = source_changes(step, saved, memo)
    if reasons:
        return Verdict(False, "%s: %s" % (what, "; ".join(reasons)), memo)
    return Verdict(True, memo=memo)


def run(step, verdict):
    import tarfile  # here and below, not at the top: loading the workflows must stay cheap
    import tempfile

    memo = verdict.memo
    docker = engine.for_step(step)
    target = step.path("target")
    # never started: the command need not exist in the image, but an image
    # without CMD (FROM scratch) cannot be created without one
    container = create_container(step, docker, memo["source_id"], ["dockflow-copy-out"])
    try:
        with tempfile.TemporaryFile() as archive:
            kind = _fetch(step, docker, container, step.get("path"), archive)
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                if kind == "file":
                    _write_file(step, tar, target)
                else:
                    _write_folder(tar, target)
    finally:
        remove_container(docker, container)
    ui.say(step.name, "copied %s:%s to %s" % (step.get("source"), step.get("path"), os.path.relpath(target)))
    return {"source_id": memo["source_id"], "definition_digest": memo["definition_digest"]}


def _fetch(step, docker, container, path, archive):
    """Write the tar of `path` (symlinks followed) into `archive`; "file" or "folder"."""
    import docker as sdk

    for _ in range(MAX_LINKS):
        try:
            stream, stat = docker.api.get_archive(container, path)
        except sdk.errors.NotFound:
            raise StepFailed("%s: %s is not in image %s (nothing copied)"
                             % (step.where("path"), path, step.get("source"))) from None
        except docker.sdk_errors() as err:
            raise docker.failure("%s: copy %s out of %s" % (step.name, path, step.get("source")), err) from None
        link = stat.get("linkTarget")
        if not link or stat.get("mode", 0) & (1 << 27) == 0:  # os.ModeSymlink in Go
            archive.seek(0)
            archive.truncate()
            for chunk in stream:
                archive.write(chunk)
            return "folder" if stat.get("mode", 0) & (1 << 31) else "file"  # os.ModeDir
        for _chunk in stream:  # drain the response before the next request
            pass
        path = link if link.startswith("/") else os.path.normpath(os.path.join(os.path.dirname(path), link))
    raise StepFailed("%s: %s: too many levels of symbolic links in %s" % (step.where("path"), step.get("path"),
                                                                          step.get("source")))


def _write_file(step, tar, target):
    import shutil

    member = tar.next()
    if member is None or not member.isfile():
        raise StepFailed("%s: %s in %s is not a regular file" % (step.where("path"), step.get("path"),
                                                                 step.get("source")))
    if os.path.isdir(target):
        raise StepFailed("%s: %s is a folder; name the file to write" % (step.where("target"),
                                                                         os.path.relpath(target)))
    source = tar.extractfile(member)
    with atomic_writer(target) as handle:
        shutil.copyfileobj(source, handle)
        os.fchmod(handle.fileno(), member.mode & 0o777)


def _write_folder(tar, target):
    """Unpack beside the target, then swap it in; the old copy is removed last."""
    import shutil
    import tempfile

    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    unpacked = tempfile.mkdtemp(prefix=".%s.partial-" % os.path.basename(target), dir=parent)
    old = None
    try:
        tar.extractall(unpacked, filter="data")
        (top,) = os.listdir(unpacked)  # the archive holds the folder under its own name
        if os.path.lexists(target):
            old = target + ".old-%d" % os.getpid()
            os.rename(target, old)
        os.rename(os.path.join(unpacked, top), target)
    except BaseException:
        if old is not None and not os.path.lexists(target):
            os.rename(old, target)
            old = None
        raise
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if os.path.isdir(old) else os.unlink(old)
