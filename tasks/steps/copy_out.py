"""copy_out: a file or folder of an image -> a file or folder of the project
(docker create + docker cp + docker rm, Exercise 3.03).

The copy goes through a temporary container that is created, never started, and
always removed. `target` is the path written (the file itself, or the folder
itself), relative to the workflow file. A file is written to a temp name, fsynced
and renamed into place (tasks/files.py); a folder is unpacked beside its target
(`.NAME.partial-PID-*`) and swapped in: a failed copy leaves nothing where a later
run would trust it. A run killed half way (kill -9) cannot clean up: the next run
of the step removes the temporary containers and unpacked folders of runs of this
step whose process is gone (its containers carry the step, project and run labels).

What lands on the host, as tar unpacks it for a user who is not root: modes are
the image's without the bits the umask takes away (`docker cp` keeps 0777 even
under umask 077; this never writes more than the umask allows), no owner, no
setuid/setgid bits; symbolic links are copied as links, whatever they point at
(an absolute link of /usr/bin stays absolute, as `docker cp` leaves it), and
nothing is ever written through a link: a member whose path leads out of the
target folder is refused. Device files and fifos are left out, with a warning.

Up to date when the source image's id and the step's definition are those of the
last successful copy (doit's saved values) and the target exists.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .. import engine, ui
from ..digest import value_digest
from ..errors import StepFailed
from ..files import atomic_writer
from ..labels import PROJECT_LABEL, RUN_LABEL, TEMPORARY_LABEL
from . import (Verdict, contract, create_container, image_ref_problems,
               process_is_gone, remove_container, run_is_gone, source_changes, source_image_id)

if TYPE_CHECKING:  # for mypy only: each step module is imported on every no-op
    from typing import TypedDict

    from ..workflow import Step

    class CopyOutMemo(TypedDict):
        source_id: str
        definition_digest: str

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock

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


def check(step: Step, saved: dict[str, Any]) -> Verdict[CopyOutMemo]:
    source = step.get("source")
    source_id = source_image_id(step)
    memo: CopyOutMemo = {"source_id": source_id, "definition_digest": value_digest(step.expanded_definition())}
    what = "copying %s out of %s to %s" % (step.get("path"), source, os.path.relpath(step.path("target")))
    if not os.path.lexists(step.path("target")):
        return Verdict(False, "%s: the target does not exist" % what, memo)
    if not saved:
        return Verdict(False, "%s: no earlier copy recorded here" % what, memo)
    reasons = source_changes(step, saved, memo)
    if reasons:
        return Verdict(False, "%s: %s" % (what, "; ".join(reasons)), memo)
    return Verdict(True, memo=memo)


def run(step: Step, verdict: Verdict[CopyOutMemo]) -> dict[str, Any]:
    import tarfile  # here and below, not at the top: loading the workflows must stay cheap
    import tempfile

    memo = verdict.memo
    daemon = engine.for_step(step)
    target = step.path("target")
    _sweep_killed_runs(step, daemon, target)
    # never started: the command need not exist in the image, but an image
    # without CMD (FROM scratch) cannot be created without one
    container = create_container(step, daemon, memo["source_id"], ["dockflow-copy-out"])
    try:
        with tempfile.TemporaryFile() as archive:
            kind = _fetch(step, daemon, container, step.get("path"), archive)
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                if kind == "file":
                    _write_file(step, tar, target)
                else:
                    _write_folder(step, tar, target)
    finally:
        remove_container(daemon, container)
    ui.say(step.name, "copied %s:%s to %s" % (step.get("source"), step.get("path"), os.path.relpath(target)))
    return {"source_id": memo["source_id"], "definition_digest": memo["definition_digest"]}


def _fetch(step, daemon, container, path, archive):
    """Write the tar of `path` (symlinks followed) into `archive`; "file" or "folder"."""
    for _ in range(MAX_LINKS):
        found = daemon.get_archive("%s: copy %s out of %s" % (step.name, path, step.get("source")), container, path)
        if found is None:
            raise StepFailed("%s: %s is not in image %s (nothing copied)"
                             % (step.where("path"), path, step.get("source")))
        stream, stat = found
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


def _sweep_killed_runs(step, daemon, target):
    """What runs of this step killed half way left: their temporary containers (by
    label) and their unpacked folders beside the target (.NAME.partial-PID-*, and
    .NAME.old-PID, the copy being replaced). A live run's are left alone."""
    import glob
    import shutil

    mine = ["%s=%s" % (TEMPORARY_LABEL, step.name), "%s=%s" % (PROJECT_LABEL, step.workflow.project.dir)]
    left = daemon.containers("%s: list the temporary containers of earlier runs" % step.name,
                             all=True, filters={"label": mine})
    for container in left:
        if run_is_gone((container.get("Labels") or {}).get(RUN_LABEL)):
            remove_container(daemon, container["Id"])
    folder, name = os.path.split(target)
    for kind in ("partial", "old"):
        for leftover in glob.glob(os.path.join(glob.escape(folder), ".%s.%s-*" % (glob.escape(name), kind))):
            pid = leftover.rsplit(".%s-" % kind, 1)[1].split("-")[0]
            if pid.isdigit() and process_is_gone(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True) if os.path.isdir(leftover) and \
                    not os.path.islink(leftover) else _unlink(leftover)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def current_umask():
    """The process's umask, read without changing it where Linux shows it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and put back at once
    os.umask(mask)
    return mask


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
        os.fchmod(handle.fileno(), member.mode & 0o777 & ~current_umask())


def _write_folder(step, tar, target):
    """Unpack beside the target, then swap it in; the old copy is removed last."""
    import shutil
    import tarfile
    import tempfile

    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    unpacked = tempfile.mkdtemp(prefix=".%s.partial-%d-" % (os.path.basename(target), os.getpid()), dir=parent)
    old = None
    try:
        on_host = HostMembers(step, current_umask())
        try:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4+
                tar.extractall(unpacked, filter=on_host)
            else:  # Debian 12's Python 3.11.2 has no extraction filters: ours, member by member
                # lazily: a member is judged after the links before it are on disk
                tar.extractall(unpacked, members=(kept for kept in (on_host(member, unpacked)
                                                                    for member in tar.getmembers()) if kept))
        except (tarfile.TarError, OSError) as err:
            raise StepFailed("%s: cannot unpack %s of %s into %s: %s" % (
                step.where("path"), step.get("path"), step.get("source"), os.path.relpath(parent),
                getattr(err, "strerror", None) or err)) from None
        if on_host.skipped:
            ui.warn(step.name, "left out %d device file(s) or fifo(s), e.g. %s" % (len(on_host.skipped),
                                                                                   on_host.skipped[0]))
        tops = os.listdir(unpacked)  # the archive holds the folder under its own name
        if len(tops) != 1:
            raise StepFailed("%s: the engine's tar of %s holds %d entries at its top, not one folder"
                             % (step.where("path"), step.get("path"), len(tops)))
        top = tops[0]
        if os.path.lexists(target):
            old = os.path.join(parent, ".%s.old-%d" % (os.path.basename(target), os.getpid()))
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
            shutil.rmtree(old, ignore_errors=True) if os.path.isdir(old) and not os.path.islink(old) \
                else _unlink(old)


class HostMembers:
    """The extraction filter of a folder copy: each member of docker's tar as it is
    written on the host (see the module's doc), or StepFailed for one whose path
    leaves the folder being unpacked."""

    def __init__(self, step, umask):
        self.step = step
        self.umask = umask
        self.skipped = []

    def __call__(self, member, dest):
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            self.skipped.append(member.name)
            return None
        dest = os.path.realpath(dest)
        # A link itself is replaced, never followed, when it is unpacked: only its folder
        # must lie inside. Anything else must not reach outside through a link unpacked before.
        place = os.path.dirname(member.name) if member.issym() else member.name
        self._inside(member, dest, os.path.join(dest, place))
        if member.islnk():
            self._inside(member, dest, os.path.join(dest, member.linkname))
        mode = member.mode if member.issym() else member.mode & 0o777 & ~self.umask
        if hasattr(member, "replace"):  # Python 3.11.4+: no owner at all
            return member.replace(mode=mode, uid=None, gid=None, uname=None, gname=None, deep=False)
        import copy  # 3.11.2: tarfile chowns as root and knows no None: the user's own ids

        kept = copy.copy(member)
        kept.mode, kept.uid, kept.gid, kept.uname, kept.gname = mode, os.getuid(), os.getgid(), "", ""
        return kept

    def _inside(self, member, dest, path):
        if os.path.isabs(member.name) or os.path.commonpath([os.path.realpath(path), dest]) != dest:
            raise StepFailed("%s: %s of %s holds %s, whose path leads out of the folder being unpacked "
                             "(through a link); nothing copied" % (self.step.where("path"), self.step.get("path"),
                                                                   self.step.get("source"), member.name))
