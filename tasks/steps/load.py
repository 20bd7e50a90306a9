"""load: a tar -> a Docker engine (docker load), the local one or another.

`docker_host:` picks the target: unix://, tcp://, or ssh://[user@]host[:port]
(reached through an ssh tunnel to its `remote_socket`, with the `ssh:` options).
The tar is checked against its `<tar>.sha256` before anything is sent: a
truncated or altered tar is refused and the engine keeps what it had. After the
load, the engine must report the tar's image id under each of its tags.
Only the missing layers: the target's images tell which layer chains it holds;
the tar is sent without those layers' folders (docker load does not open them),
so an app whose base is already there costs a few KiB. When the target cannot be
asked, or the tar is gzip, the whole tar goes.
Up to date when the target engine has the tar's image id (under its tags).
"""
import os
import time

from .. import engine, refs, ssh, ui
from ..errors import StepFailed
from ..files import CHUNK, sha256_file
from . import Verdict, contract, image_ref_problems

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock

# imagetar and progress are imported in the functions that check or run: loading
# the workflows imports every step module, and it needs neither.

DEFAULT_REMOTE_SOCKET = "/var/run/docker.sock"


def outputs(step):
    # The image lands in the target engine, which may be another host: nothing
    # here for later steps of this engine to depend on.
    return []


def inputs(step):
    return [("file", step.path("tar"))]


def problems(step):
    return image_ref_problems(step, "image") if step.get("image") else []


def target(step):
    """The target Engine; an ssh:// host is reached through a tunnel of ours."""
    host = engine.host_for(step)
    if host.startswith("ssh://"):
        return engine.get(ssh.tunnel(host, step.get("ssh"), step.workflow.base_dir,
                                     step.get("remote_socket", DEFAULT_REMOTE_SOCKET)))
    return engine.get(host)


def check(step, saved):
    from .. import imagetar

    tar_path = step.path("tar")
    if not os.path.isfile(tar_path):
        raise StepFailed("%s: %s does not exist (run the save step that makes it)" % (step.where("tar"), tar_path))
    stats = imagetar.cached_sha256(tar_path, saved.get("files"))[1]
    if saved.get("files") == stats and saved.get("images"):
        images = saved["images"]  # the same file as last time: no need to read its index again
    else:
        try:
            images = [{"id": i["id"], "ids": i["ids"], "tags": i["tags"]} for i in imagetar.ImageTar(tar_path).images]
        except StepFailed:
            _verify(step, tar_path)  # a damaged tar: say so in the checksum's words if it can
            raise
    wanted = _wanted(step, images)
    docker = target(step)
    missing = [ref for ref, image_ids in wanted if _id_on(docker, ref) not in image_ids]
    memo = {"files": stats, "images": images, "wanted": wanted}
    if not missing:
        return Verdict(True, memo=memo)
    return Verdict(False, "loading %s into %s: it has no %s" % (
        os.path.relpath(tar_path), engine.host_for(step), ", ".join(missing)), memo)


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


def _id_on(docker, ref):
    return docker.image_id(ref)


def run(step, verdict):
    from .. import imagetar
    from ..progress import bytes_bar, human

    memo = verdict.memo
    tar_path = step.path("tar")
    actual = _verify(step, tar_path)
    tar = imagetar.ImageTar(tar_path)
    docker = target(step)
    full_size = os.path.getsize(tar_path)
    skip, why_full = _present_layers(step, docker, tar)
    ranges = tar.ranges_without(skip) if skip else [(0, full_size)]
    shipped = sum(end - start for start, end in ranges) + (2 * imagetar.BLOCK if skip else 0)
    started = time.monotonic()
    with bytes_bar("load into " + engine.host_for(step), shipped) as bar:
        lines = _send(step, docker, _counted(imagetar.read_ranges(tar_path, ranges, CHUNK) if skip
                                             else _whole(tar_path), bar))
    seconds = time.monotonic() - started
    docker.forget()
    for ref, image_ids in memo["wanted"]:
        now = _id_on(docker, ref)
        if now not in image_ids:
            raise StepFailed("%s: after the load, %s on %s is %s, not the tar's %s (%s)" % (
                step.name, ref, engine.host_for(step), now and now[7:19], image_ids[0][7:19], "; ".join(lines[-3:])))
    layer_count = len(tar.layer_chains())
    ui.say(step.name, "loaded %s into %s: shipped %s of %s (%.2f%%), %d of %d layers, in %.1f s%s" % (
        ", ".join(ref for ref, _ in memo["wanted"]), engine.host_for(step), human(shipped), human(full_size),
        100.0 * shipped / max(full_size, 1), layer_count - len(skip), layer_count, seconds,
        "; whole tar: " + why_full if why_full else ""))
    return {"files": imagetar.known_sha256(tar_path, actual), "images": memo["images"], "sha256": actual,
            "shipped": shipped, "full_size": full_size}


def _verify(step, tar_path):
    """The tar's sha256, read now; StepFailed unless it equals the one recorded beside it."""
    from .. import imagetar

    recorded = imagetar.read_sidecar(tar_path)
    if recorded is None:
        raise StepFailed("%s: no checksum file %s beside the tar (a save step writes it); nothing was loaded"
                         % (step.name, imagetar.sidecar_path(tar_path)))
    actual = sha256_file(tar_path)
    if actual != recorded:
        raise StepFailed("%s: %s does not match its checksum (sha256 %s, expected %s): truncated or changed "
                         "since it was saved; nothing was loaded" % (step.name, tar_path, actual[:12], recorded[:12]))
    return actual


def _present_layers(step, docker, tar):
    """(layer members of the tar the target need not get, why the whole tar goes or "")."""
    if step.get("only_missing_layers") is False:
        return set(), "only_missing_layers is false"
    if tar.gzip:
        return set(), "the tar is gzip-compressed"
    try:
        if docker.uses_containerd_store():
            # containerd's importer reads every blob index.json names, present or not
            return set(), "the target keeps images in containerd's image store, whose load needs every layer"
        present = docker.layer_chains()
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


def _send(step, docker, blocks):
    """POST the blocks to /images/load; the engine's lines, or StepFailed with its error."""
    lines = []
    try:
        for chunk in docker.api.load_image(blocks):
            # an error inside the stream, or an HTTP error body ({"message": ...})
            error = engine.stream_error(chunk)
            if error is None and set(chunk) == {"message"}:
                error = chunk["message"]
            if error is not None:
                raise StepFailed("%s: the engine %s refused the tar: %s" % (step.name, engine.host_for(step), error))
            text = (chunk.get("stream") or "").strip()
            if text:
                lines.append(text)
                ui.detail(text)
    except docker.sdk_errors() as err:
        raise docker.failure("%s: load into %s" % (step.name, engine.host_for(step)), err) from None
    return lines
