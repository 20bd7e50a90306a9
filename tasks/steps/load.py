"""load: a tar -> Docker engines (docker load): the local one, another, or several at once.

`docker_host:` picks the target: unix://, tcp://, or ssh://[user@]host[:port]
(reached through an ssh tunnel to its `remote_socket`, with the `ssh:` options).
`docker_hosts: [...]` lists several targets, filled at once, `parallel:` at a time
(tasks/fanout.py): one line per target says what it got; a target that fails does
not stop the others, the step then fails naming it, and a rerun loads only there.
The tar is checked against its `<tar>.sha256` before anything is sent: a
truncated or altered tar is refused and the engines keep what they had. After the
load, each engine must report the tar's image id under each of its tags.
Only the missing layers: each target's images tell which layer chains it holds;
it gets the tar without those layers' folders (docker load does not open them), its
own thin stream, so an app whose base is already there costs a few KiB. When a
target cannot be asked, or the tar is gzip, the whole tar goes there.
Up to date when every target engine has the tar's image id (under its tags).
"""
import os
import time

from .. import engine, fanout, refs, ui
from ..errors import StepFailed
from ..files import CHUNK
from . import Verdict, contract, image_ref_problems

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock
outputs = contract.lands_on_other_engines

# imagetar and progress are imported in the functions that check or run: loading
# the workflows imports every step module, and it needs neither.


def inputs(step):
    return [("file", step.path("tar"))]


def problems(step):
    return (image_ref_problems(step, "image") if step.get("image") else []) + fanout.problems(step)


def check(step, saved):
    from .. import imagetar

    tar_path = step.path("tar")
    if not os.path.isfile(tar_path):
        raise StepFailed("%s: %s does not exist (run the save step that makes it)" % (step.where("tar"), tar_path))
    stats = imagetar.cached_sha256(tar_path, step.workflow.project.cache_dir, saved.get("files"))[1]
    if saved.get("files") == stats and saved.get("images"):
        images = saved["images"]  # the same file as last time: no need to read its index again
    else:
        try:
            images = [{"id": i["id"], "ids": i["ids"], "tags": i["tags"]} for i in imagetar.ImageTar(tar_path).images]
        except StepFailed:
            _verify(step, tar_path)  # a damaged tar: say so in the checksum's words if it can
            raise
    wanted = _wanted(step, images)
    hosts = fanout.targets(step)
    answers = fanout.each(step, hosts, lambda host, _stopping: _missing_on(step, host, wanted))
    if len(hosts) == 1 and answers[hosts[0]][1]:
        raise answers[hosts[0]][1]  # its one engine cannot be asked: the step's own error
    # host -> (refs it lacks, None) or (None, why it could not be asked)
    pending = {host: answer for host, answer in answers.items() if answer[0] or answer[1]}
    memo = {"files": stats, "images": images, "wanted": wanted, "hosts": hosts, "pending": pending}
    if not pending:
        return Verdict(True, memo=memo)
    return Verdict(False, "loading %s into %s" % (os.path.relpath(tar_path), "; ".join(
        "%s: %s" % (host, "it has no " + ", ".join(missing) if missing else "not asked: %s" % error)
        for host, (missing, error) in pending.items())), memo)


def _missing_on(step, host, wanted):
    """The refs of `wanted` that the engine at `host` lacks (or has as another image)."""
    daemon = engine.for_step(step, host)
    return [ref for ref, image_ids in wanted if daemon.image_id(ref) not in image_ids]


def _wanted(step, images):
    """[(ref to confirm, the ids it may have)]: the step's `image`, else every tag in the tar.
    An image has more than one id where the target may name it by its manifest's digest."""
    image_ref = step.get("image")
    if image_ref:
        for image in images:
            if any(refs.normalize(t) == refs.normalize(image_ref) for t in image["tags"]):
                return [(image_ref, _ids(image))]
        raise StepFailed("%s: the tar %s holds no image tagged %s (it holds %s)" % (
            step.where("image"), step.path("tar"), image_ref,
            ", ".join(t for i in images for t in i["tags"]) or "untagged images"))
    return [(tag, _ids(image)) for image in images for tag in image["tags"]] + \
           [(image["id"], _ids(image)) for image in images if not image["tags"]]


def _ids(image):
    return image.get("ids") or [image["id"]]  # images recorded before ids were kept have one


def run(step, verdict):
    from .. import imagetar
    from ..progress import bytes_bar

    memo = verdict.memo
    tar_path = step.path("tar")
    actual = _verify(step, tar_path)
    tar = imagetar.ImageTar(tar_path)
    # The check's answers stand: a target it could not ask is not tried again in this run.
    # Nothing pending, yet run (doit -a): every target gets the tar again.
    pending = memo["pending"] or {host: ([], None) for host in memo["hosts"]}
    failed = {host: error for host, (_missing, error) in pending.items() if error}
    to_load = [host for host in pending if host not in failed]
    # First what each target lacks (its own thin tar), then all the streams at once.
    plans = fanout.each(step, to_load, lambda host, _stopping: _plan(step, host, tar))
    failed.update({host: error for host, (_plan_made, error) in plans.items() if error})
    plans = {host: plan for host, (plan, error) in plans.items() if not error}
    label = "load into " + (next(iter(plans)) if len(plans) == 1 else "%d engines" % len(plans))
    with bytes_bar(label, sum(plan["shipped"] for plan in plans.values())) as bar:

        def load_into(host, stopping):
            blocks = fanout.checked(_counted(_blocks(tar_path, plans[host]), bar), stopping)
            return _load(step, plans[host], memo["wanted"], blocks)

        done = fanout.each(step, list(plans), load_into)
    failed.update({host: error for host, (_result, error) in done.items() if error})
    for host in memo["hosts"]:
        if host not in pending:
            ui.say(step.name, "%s already has %s: up to date" % (host, ", ".join(ref for ref, _ in memo["wanted"])))
    if failed:
        raise fanout.failure(step, failed, memo["hosts"])
    files = imagetar.known_sha256(tar_path, actual, step.workflow.project.cache_dir)
    return {"files": files, "images": memo["images"], "sha256": actual,
            "shipped": {host: plan["shipped"] for host, plan in plans.items()},
            "full_size": os.path.getsize(tar_path)}


def _plan(step, host, tar):
    """What the target at `host` gets: the byte ranges of the tar, and why it gets all of it."""
    from .. import imagetar

    daemon = engine.for_step(step, host)
    skip, why_full = _present_layers(step, daemon, tar)
    full_size = os.path.getsize(tar.path)
    ranges = tar.ranges_without(skip) if skip else [(0, full_size)]
    shipped = sum(end - start for start, end in ranges) + (2 * imagetar.BLOCK if skip else 0)
    return {"daemon": daemon, "skip": skip, "why_full": why_full, "ranges": ranges, "shipped": shipped,
            "full_size": full_size, "layers": len(tar.layer_chains())}


def _blocks(tar_path, plan):
    from .. import imagetar

    return imagetar.read_ranges(tar_path, plan["ranges"], CHUNK) if plan["skip"] else _whole(tar_path)


def _load(step, plan, wanted, blocks):
    """Send one target its blocks, confirm its image ids, and say so in one line."""
    from ..progress import human_size

    daemon = plan["daemon"]
    started = time.monotonic()
    lines = _send(step, daemon, blocks)
    seconds = time.monotonic() - started
    daemon.forget()
    for ref, image_ids in wanted:
        now = daemon.image_id(ref)
        if now not in image_ids:
            raise StepFailed("%s: after the load, %s on %s is %s, not the tar's %s (%s)" % (
                step.name, ref, daemon.host, now and now[7:19], image_ids[0][7:19], "; ".join(lines[-3:])))
    shipped, full_size, layers = plan["shipped"], plan["full_size"], plan["layers"]
    ui.say(step.name, "loaded %s into %s: shipped %s of %s (%.2f%%), %d of %d layers, in %.1f s%s" % (
        ", ".join(ref for ref, _ in wanted), daemon.host, human_size(shipped), human_size(full_size),
        100.0 * shipped / max(full_size, 1), layers - len(plan["skip"]), layers, seconds,
        "; whole tar: " + plan["why_full"] if plan["why_full"] else ""))


def _verify(step, tar_path):
    """The tar's sha256; StepFailed unless it equals the one recorded beside it. Read
    again unless the save that wrote it (or an earlier read) learnt it and the file's
    size, ctime, inode and mode are still those: any write since changes its ctime."""
    from .. import imagetar

    recorded = imagetar.read_sidecar(tar_path)
    if recorded is None:
        raise StepFailed("%s: no checksum file %s beside the tar (a save step writes it); nothing was loaded"
                         % (step.name, imagetar.sidecar_path(tar_path)))
    actual = imagetar.cached_sha256(tar_path, step.workflow.project.cache_dir)[0]
    if actual != recorded:
        raise StepFailed("%s: %s does not match its checksum (sha256 %s, expected %s): truncated or changed "
                         "since it was saved; nothing was loaded" % (step.name, tar_path, actual[:12], recorded[:12]))
    return actual


def _present_layers(step, daemon, tar):
    """(layer members of the tar the target need not get, why the whole tar goes or "")."""
    if step.get("only_missing_layers") is False:
        return set(), "only_missing_layers is false"
    if tar.gzip:
        return set(), "the tar is gzip-compressed"
    try:
        if daemon.uses_containerd_store():
            # containerd's importer reads every blob index.json names, present or not
            return set(), "the target keeps images in containerd's image store, whose load needs every layer"
        present = daemon.layer_chains()
    except StepFailed as err:
        return set(), "the target's layers could not be listed (%s)" % err
    return tar.layers_to_skip(present), ""


def _whole(path):
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


def _counted(blocks, bar):
    for block in blocks:
        bar.advance(len(block))
        yield block


def _send(step, daemon, blocks):
    """POST the blocks to /images/load; the engine's lines, or StepFailed with its error."""
    lines = []
    for chunk in daemon.load("%s: load into %s" % (step.name, daemon.host), blocks):
        # an error inside the stream, or an HTTP error body ({"message": ...})
        error = engine.stream_error(chunk)
        if error is None and set(chunk) == {"message"}:
            error = chunk["message"]
        if error is not None:
            raise StepFailed("%s: the engine %s refused the tar: %s" % (step.name, daemon.host, error))
        text = (chunk.get("stream") or "").strip()
        if text:
            lines.append(text)
            ui.detail(text)
    return lines
