"""import: a root filesystem -> a base image, with no registry (docker import).

The root filesystem is a folder (`rootfs`), a tar (`tar`), and/or host files and
symlinks listed in the step (`files`, `symlinks`): the lab's busybox base is
`/bin/busybox` plus its applet links. The tar is packed deterministically (no
owners, no times) in a temp file and imported with the inputs' digest as a label.
Up to date when the engine has the image with that label.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .. import engine, refs, ui
from ..digest import files_digest, mode_field, value_digest
from ..labels import INPUTS_LABEL
from ..errors import StepFailed
from . import Verdict, contract, image_ref_problems

if TYPE_CHECKING:  # for mypy only: each step module is imported on every no-op
    from typing import TypedDict

    from ..workflow import Step

    class ImportMemo(TypedDict):
        input_digest: str
        stats: dict[str, Any]  # files_digest's stats, recorded for the next check

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock


def outputs(step):
    return [("image", step.get("image"))]


def inputs(step):
    paths = [step.path(f) for f in ("rootfs", "tar") if f in step.spec]
    return [("file", p) for p in paths + list(_host_files(step).values())]


def problems(step):
    found = image_ref_problems(step, "image")
    if "tar" in step.spec and ("rootfs" in step.spec or "files" in step.spec):
        found.append("%s: give either a tar, or rootfs/files, not both" % step.where("tar"))
    return found


def missing_sources(step):
    """Sources that are not there. Asked when the step runs, not when workflows load:
    another step may make them, and a missing package (docker-registry for the
    registry image) must not stop `doit build_app`."""
    missing = []
    for field, test in (("rootfs", os.path.isdir), ("tar", os.path.isfile)):
        if field in step.spec and not test(step.path(field)):
            missing.append("%s: %s does not exist" % (step.where(field), step.get(field)))
    base = step.workflow.base_dir
    for key, host in step.get("files", {}).items():  # the key as written: where() finds it in the YAML
        path = os.path.join(base, host)
        if not os.path.isfile(path):
            missing.append("%s: %s does not exist on this machine" % (step.where("files", key), path))
    return missing


def _host_files(step):
    """{path in image: absolute host path}."""
    base = step.workflow.base_dir
    return {inside.strip("/"): os.path.join(base, host) for inside, host in step.get("files", {}).items()}


def input_digest(step, saved):
    """Digest of the definition and every byte of the root filesystem's sources."""
    previous = saved.get("stats") or {}
    parts, stats = {"definition": value_digest(step.expanded_definition())}, {}
    sources = {}
    for field in ("rootfs", "tar"):
        if field in step.spec:
            path = step.path(field)
            sources[field] = (path, _tree(path)) if field == "rootfs" else \
                (os.path.dirname(path), [os.path.basename(path)])
    if step.spec.get("files"):
        sources["files"] = ("/", sorted(p.lstrip("/") for p in _host_files(step).values()))
    for name, (root, relpaths) in sources.items():
        parts[name], stats[name] = files_digest(root, relpaths, previous.get(name),
                                                  hash_file=step.workflow.project.hash_file(
                                                      "%s.%s" % (step.name, name)))
    if "files" in stats:
        # By path in the image, not on the host: the same project in another folder
        # (a fresh clone) makes the same image and must not re-import it.
        parts["files"] = value_digest(sorted(
            (inside, stats["files"][host.lstrip("/")][4], mode_field(stats["files"][host.lstrip("/")][3]))
            for inside, host in _host_files(step).items()))
    return value_digest(parts), stats


def _tree(root):
    found = []
    for folder, dirs, names in os.walk(root):
        for name in names + dirs:
            found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


def check(step: Step, saved: dict[str, Any]) -> Verdict[ImportMemo]:
    missing = missing_sources(step)
    if missing:
        raise StepFailed("; ".join(missing))
    digest, stats = input_digest(step, saved)
    memo: ImportMemo = {"input_digest": digest, "stats": stats}
    image_ref = step.get("image")
    labels = engine.for_step(step).image_labels(image_ref)
    if labels is None:
        return Verdict(False, "importing %s: the engine has no such image" % image_ref, memo)
    if labels.get(INPUTS_LABEL) != digest:
        return Verdict(False, "re-importing %s: its root filesystem or definition changed" % image_ref, memo)
    return Verdict(True, memo=memo)


def run(step: Step, verdict: Verdict[ImportMemo]) -> dict[str, Any]:
    import tempfile  # here, not at the top: the no-op path never packs a tar
    memo = verdict.memo
    daemon = engine.for_step(step)
    image_ref = step.get("image")
    repository, tag = refs.split_tag(image_ref)
    changes = list(step.get("changes", [])) + ['LABEL %s="%s"' % (INPUTS_LABEL, memo["input_digest"])]
    with tempfile.TemporaryDirectory(prefix="dockflow-import-") as scratch:
        tar_path = step.path("tar") if "tar" in step.spec else _pack(step, os.path.join(scratch, "rootfs.tar"))
        ui.say(step.name, "importing %s (%d KiB)" % (os.path.relpath(tar_path) if "tar" in step.spec else "root filesystem",
                                                     os.path.getsize(tar_path) // 1024))
        try:
            rootfs_tar = open(tar_path, "rb")
        except OSError as err:
            raise StepFailed("%s: cannot read %s: %s" % (step.name, tar_path, err.strerror or err)) from None
        with rootfs_tar:
            daemon.import_image("%s: import of %s" % (step.name, image_ref), rootfs_tar, repository, tag, changes)
    daemon.forget(image_ref)
    image_id = daemon.image_id(image_ref)
    if image_id is None:
        raise StepFailed("%s: the engine accepted the import but has no image %s" % (step.name, image_ref))
    return {"image_id": image_id, "input_digest": memo["input_digest"], "stats": memo["stats"]}


def _pack(step, tar_path):
    """The root filesystem as a tar: folder first, then listed files and symlinks."""
    import tarfile  # here, not at the top: the no-op path never packs a tar
    made_dirs = set()

    def ensure_parents(archive, inside):
        parent = os.path.dirname(inside)
        if parent and parent not in made_dirs:
            ensure_parents(archive, parent)
            info = tarfile.TarInfo(parent)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
            made_dirs.add(parent)

    def clean(info):
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with tarfile.open(tar_path, "w") as archive:
        if "rootfs" in step.spec:
            root = step.path("rootfs")
            for relpath in _tree(root):
                archive.add(os.path.join(root, relpath), arcname=relpath, recursive=False, filter=clean)
                if os.path.isdir(os.path.join(root, relpath)):
                    made_dirs.add(relpath)
        for inside, host in sorted(_host_files(step).items()):
            ensure_parents(archive, inside)
            archive.add(host, arcname=inside, recursive=False, filter=clean)
        for inside, target in sorted(step.get("symlinks", {}).items()):
            inside = inside.strip("/")
            ensure_parents(archive, inside)
            info = tarfile.TarInfo(inside)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(target), 0o777
            archive.addfile(info)
    return tar_path
