"""`doit clean STEP ...`: remove what steps made, or say why a thing stays.

What a step made is what its kind's outputs() names: images (removed by name, as
`docker rmi NAME` does: an image with another name keeps it) and files (with a
`.sha256` beside a tar). It never forces and never removes by id.

Kept, with the reason on its line, as prune keeps what is still wanted:
  - an image or file that a step not being cleaned reads (its inputs());
  - an image with prune's keep label (io.dockflow.keep);
  - an image a container uses, running or stopped (the engine would refuse).
What a step makes elsewhere is not touched: a load's image in another engine, a
registry's container, a pushed image in the registry, files sent by scp.
"""
import os

from . import engine, imagetar, refs, steps
from .errors import StepFailed
from .labels import KEEP_LABEL


def clean_steps(chosen, all_steps, dry_run, out):
    """Clean the `chosen` steps; lines to `out`. The number of things that could not be removed."""
    chosen_names = {step.name for step in chosen}
    readers = _readers(step for step in all_steps.values() if step.name not in chosen_names)
    failures = 0
    for step in chosen:
        try:
            made = steps.module_for(step.kind).outputs(step)
        except StepFailed as err:
            out.write("%s: cannot tell what it made: %s\n" % (step.name, err))
            failures += 1
            continue
        if not made:
            out.write("%s: nothing to clean (a %s step makes nothing here that clean removes)\n"
                      % (step.name, step.kind))
        for item in made:
            failures += _clean_one(step, item, readers, dry_run, out)
    return failures


def _readers(other_steps):
    """(kind, normalised value) -> the name of a step that reads it."""
    readers = {}
    for step in other_steps:
        try:
            read = steps.module_for(step.kind).inputs(step)
        except StepFailed:
            continue  # an input not resolvable now: that step cannot run now either
        for item in read:
            readers.setdefault(_key(item), step.name)
    return readers


def _key(item):
    kind, value = item
    return kind, refs.normalize(value) if kind == "image" else os.path.normpath(value)


def _clean_one(step, item, readers, dry_run, out):
    """One line `STEP: KIND NAME: what happens (why)`; 1 when it could not be removed."""
    kind, value = item
    line = "%s: %s %s: " % (step.name, kind, value if kind == "image" else os.path.relpath(value))
    reader = readers.get(_key(item))
    if reader:
        out.write(line + "%s (step %s reads it; clean that step too)\n" % (KEPT, reader))
        return 0
    try:
        verdict, reason = _image_kept(step, value) if kind == "image" else _file_kept(value)
        if verdict:
            out.write(line + "%s (%s)\n" % (verdict, reason))
            return 0
        if not dry_run:
            (_remove_image if kind == "image" else _remove_file)(step, value)
    except StepFailed as err:
        out.write(line + "not removed: %s\n" % err)
        return 1
    out.write(line + ("would be removed\n" if dry_run else "removed\n"))
    return 0


GONE, KEPT, MAY_GO = "nothing to remove", "kept", ""


def _image_kept(step, ref):
    """(GONE or KEPT, why), or (MAY_GO, "")."""
    daemon = engine.for_step(step)
    image = daemon.inspect_image(ref)
    if image is None:
        return GONE, "the engine %s has no such image" % daemon.host
    if KEEP_LABEL in ((image.get("Config") or {}).get("Labels") or {}):
        return KEPT, "it has the keep label %s" % KEEP_LABEL
    users = [c for c in daemon.containers("list containers", all=True) if c.get("ImageID") == image["Id"]]
    if users:
        state = "running" if any(c.get("State") == "running" for c in users) else "stopped"
        return KEPT, "%s container %s uses it" % (state, (users[0].get("Names") or ["?"])[0].lstrip("/"))
    return MAY_GO, ""


def _remove_image(step, ref):
    engine.for_step(step).remove_image("remove %s" % ref, ref)


def _file_kept(path):
    """As _image_kept, for a file."""
    if os.path.isdir(path):
        return KEPT, "a folder; remove it yourself if nothing else is in it"
    if not os.path.lexists(path):
        return GONE, "no such file"
    return MAY_GO, ""


def _remove_file(step, path):
    for each in (path, imagetar.sidecar_path(path)):
        try:
            os.unlink(each)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise StepFailed(err.strerror) from None
