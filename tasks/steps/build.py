"""build: a context folder and a Dockerfile -> an image (docker build).

Up to date when the engine's image under that name is the one this step last
built (its id, recorded in doit's state) and the digest of its inputs is the one
recorded with it: the context files Docker would send (after .dockerignore), the
Dockerfile, the step's definition (args, labels, target...), and the id of every
base image named in FROM (or COPY --from). A rebuilt base changes its id, so
everything built on it rebuilds too; a file touched without a content change
rebuilds nothing.

The engine's BuildKit builds it, as `docker build` does since Engine 23 (see
uses_buildkit); the legacy builder where a step has cache_from, where
DOCKER_BUILDKIT=0, or where the engine has no BuildKit.

The digest is not put on the image as a label: the legacy builder turns labels into
one more step that creates and commits a container, 60-80 ms on every build. A lost
.dockflow/ state costs one build from Docker's cache, which yields the same image id.
Except with `cache_from`: the legacy builder then trusts only the layers of the
cache_from images, rebuilds the step's own layers and makes a new id, so such a step
keeps its digest in the `io.dockflow.inputs` label; an image whose label matches is
up to date whatever doit's state holds.
"""
from __future__ import annotations

import itertools
import os
import re
from typing import TYPE_CHECKING, Any

from .. import dockerignore, engine, ui
from ..digest import changed_files, files_digest, value_digest
from ..labels import INPUTS_LABEL
from ..errors import StepFailed
from . import Verdict, contract, image_ref_problems, remove_container

if TYPE_CHECKING:  # for mypy only: each step module is imported on every no-op
    from typing import TypedDict

    from ..workflow import Step

    class _BuildInputs(TypedDict):
        input_digest: str
        files: dict[str, Any]  # files_digest's stats, recorded for the next check
        bases: dict[str, str | None]  # FROM image -> its id in the engine (None: not there)
        definition_digest: str
        relpaths: list[str]  # the context's files and folders, sent as hashed

    class BuildMemo(_BuildInputs, total=False):
        image_id: str  # the engine's image, set where only its tags are missing: no build

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock

LAST_LINES = 8
OUTSIDE_DOCKERFILE = ".dockflow.Dockerfile"  # its name in the context tar
MAX_TAR_NAME = 100  # bytes of a name in a tar header without an extra header before it


def outputs(step):
    return [("image", ref) for ref in [step.get("image")] + step.get("tags", [])]


def inputs(step):
    bases = base_images(step)
    return ([("image", ref) for ref in bases + step.get("cache_from", [])]
            + [("file", step.path("context"))])


def problems(step):
    found = []
    context = step.path("context")
    if not os.path.isdir(context):
        found.append("%s: %r is not a folder" % (step.where("context"), step.get("context")))
    elif not os.path.isfile(dockerfile_path(step)):
        field = "dockerfile" if "dockerfile" in step.spec else "context"
        found.append("%s: no Dockerfile at %s" % (step.where(field), os.path.relpath(dockerfile_path(step))))
    return found + image_ref_problems(step, "image", "tags")


def dockerfile_path(step):
    return os.path.normpath(os.path.join(step.path("context"), step.get("dockerfile", "Dockerfile")))


def _dockerfile_in_context(step):
    """The Dockerfile's path inside the context, or None when it lies outside."""
    relpath = os.path.relpath(dockerfile_path(step), step.path("context"))
    return None if relpath.startswith("..") else relpath


def base_images(step):
    """Images the Dockerfile reads: FROM lines and COPY --from (not stages, not scratch)."""
    try:
        # Bytes that are not UTF-8 (a Latin-1 comment) are kept as they are: Docker builds such a file.
        with open(dockerfile_path(step), encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except OSError:
        return []  # problems() reports it
    return parse_from_lines(text, step.get("args", {}))


def parse_from_lines(text, build_args):
    text = re.sub(r"\\\r?\n", " ", text)  # join continued lines
    args, stages, bases, seen_from = {}, set(), [], False

    def add_base(word, by_index=False):
        """An image the build reads: not a stage (by name, or by index for COPY --from), not scratch."""
        image = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), ""), word.strip("\"'"))
        if image and image.lower() not in stages and image != "scratch" and image not in bases \
                and not (by_index and image.isdigit()):
            bases.append(image)

    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "ARG" and not seen_from and len(words) > 1:
            name, _, default = words[1].partition("=")
            args[name] = str(build_args.get(name, default.strip('"')))
        elif instruction == "FROM":
            seen_from = True
            words = [w for w in words[1:] if not w.startswith("--")]
            if words:
                add_base(words[0])
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
        elif instruction == "COPY":  # COPY --from=<an image, not a stage>: an input too
            for flag in itertools.takewhile(lambda word: word.startswith("--"), words[1:]):
                name, _, image = flag.partition("=")
                if name.lower() == "--from":
                    add_base(image, by_index=True)
    return bases


def check(step: Step, saved: dict[str, Any]) -> Verdict[BuildMemo]:
    daemon = engine.for_step(step)
    context = step.path("context")
    inside = _dockerfile_in_context(step)
    folders: list[str] = []  # sent as entries of their own, as `docker build` sends them: an empty one, a folder's mode
    files = dockerignore.context_files(context, always=tuple(p for p in (inside, ".dockerignore") if p),
                                       folders=folders)
    relpaths = sorted(files + folders)
    # A Dockerfile from outside the context is an input too, hashed like the files
    # (as ../path), though the context sent holds it under another name.
    hashed = relpaths if inside else relpaths + [os.path.relpath(dockerfile_path(step), context)]
    context_digest, file_stats = files_digest(context, hashed, saved.get("files"),
                                               hash_file=step.workflow.project.hash_file(step.name))
    bases = {ref: daemon.image_id(ref) for ref in base_images(step)}
    definition_digest = value_digest(step.expanded_definition())
    input_digest = value_digest({"definition": definition_digest, "context": context_digest, "bases": bases})
    memo: BuildMemo = {"input_digest": input_digest, "files": file_stats, "bases": bases,
            "definition_digest": definition_digest, "relpaths": relpaths}
    image_ref = step.get("image")
    image = daemon.image_summary(image_ref)
    if image is None:
        return Verdict(False, "building %s: the engine has no such image" % image_ref, memo)
    recorded = saved.get("image_id") == image["Id"] and saved.get("input_digest") == input_digest
    if not recorded and image["Labels"].get(INPUTS_LABEL) != input_digest:
        return Verdict(False, "rebuilding %s: %s" % (image_ref, why_changed(saved, memo, image["Id"])), memo)
    missing = [t for t in step.get("tags", []) if daemon.image_id(t) != image["Id"]]
    if missing:
        memo["image_id"] = image["Id"]
        return Verdict(False, "tagging %s as %s" % (image_ref, ", ".join(missing)), memo)
    return Verdict(True, memo=memo)


def why_changed(saved, memo, engine_image_id):
    if not saved.get("image_id"):
        # doit keeps a step's values from its last success only: a first run here, a lost
        # .dockflow/, or a last build that failed.
        return ("no successful build of it is recorded in this project (a first run here, or its last build "
                "failed); Docker's cache makes an unchanged build quick")
    if saved["image_id"] != engine_image_id:
        return "the engine's image of that name (%s) is not the one this step built (%s)" % (
            engine_image_id[7:19], saved["image_id"][7:19])
    reasons = []
    changed = changed_files(saved.get("files"), memo["files"])
    if changed:
        reasons.append("changed: " + ", ".join(changed))
    for ref, image_id in memo["bases"].items():
        if (saved.get("bases") or {}).get(ref) != image_id:
            reasons.append("base image %s is %s" % (ref, "missing" if image_id is None else "new (%s)" % image_id[7:19]))
    if saved.get("definition_digest") != memo["definition_digest"]:
        reasons.append("the step's definition changed")
    return "; ".join(reasons) or "its inputs differ from those recorded"


def run(step: Step, verdict: Verdict[BuildMemo]) -> dict[str, Any]:
    memo = verdict.memo
    daemon = engine.for_step(step)
    image_ref = step.get("image")
    image_id = memo.get("image_id") or _build(step, daemon, image_ref, memo)
    for extra in step.get("tags", []):
        daemon.tag("%s: tag %s" % (step.name, extra), image_id, extra)
    return {"image_id": image_id, "input_digest": memo["input_digest"], "files": memo["files"],
            "bases": memo["bases"], "definition_digest": memo["definition_digest"]}


def _build(step, daemon, image_ref, memo):
    import tempfile  # here, not at the top: the no-op path never packs a tar
    missing_bases = [ref for ref, image_id in memo["bases"].items() if image_id is None]
    if missing_bases and not step.get("pull"):
        ui.warn(step.name, "base image %s is not in the engine; the build will try to pull it"
                % ", ".join(missing_bases))
    labels = dict(step.get("labels", {}))
    if step.get("cache_from"):  # see the module's doc: its id cannot be had back from the cache
        labels[INPUTS_LABEL] = memo["input_digest"]
    options = dict(tag=image_ref, buildargs={k: str(v) for k, v in step.get("args", {}).items()},
                   labels=labels or None, target=step.get("target"), cache_from=step.get("cache_from") or None,
                   pull=bool(step.get("pull")), rm=True, forcerm=True)
    # The context sent is exactly the files hashed for the digest (our .dockerignore
    # reading, not the SDK's, which differs from the engine's in corner cases).
    with tempfile.TemporaryFile(prefix="dockflow-context-") as context_tar:
        options["dockerfile"] = _pack_context(step, memo["relpaths"], context_tar)
        what = "%s: build of %s from %s" % (step.name, image_ref, os.path.relpath(dockerfile_path(step)))
        buildkit = _buildkit_for(step, daemon, options["dockerfile"])
        try:
            image_id = follow_build(what, daemon.build(what, context_tar, buildkit=buildkit, **options), daemon,
                                     buildkit)
        except _NoBuildKit as err:
            ui.warn(step.name, "the engine cannot build with BuildKit (%s); building with its legacy builder" % err)
            context_tar.seek(0)
            image_id = follow_build(what, daemon.build(what, context_tar, **options), daemon)
    daemon.forget(image_ref)
    return image_id or daemon.image_id(image_ref)


def uses_buildkit(step):
    """True where the engine's BuildKit builds the step, as `docker build` does since
    Engine 23: faster (an instruction that only sets metadata creates no container)
    and it reads the Dockerfile syntax users write today (RUN --mount=type=cache).
    The legacy builder where a step has cache_from (see the module's doc) or where
    DOCKER_BUILDKIT is false, the docker CLI's own switch back to it."""
    return not step.get("cache_from") and _docker_buildkit_setting()


# The docker CLI reads DOCKER_BUILDKIT as Go's strconv.ParseBool does, and refuses other values.
_TRUE_WORDS, _FALSE_WORDS = ("1", "t", "true"), ("0", "f", "false")


def _docker_buildkit_setting():
    value = os.environ.get("DOCKER_BUILDKIT", "1")
    if value.lower() not in _TRUE_WORDS + _FALSE_WORDS:
        raise StepFailed("DOCKER_BUILDKIT=%s: expected a boolean, as the docker CLI reads it (1, 0, true, false)"
                         % value)
    return value.lower() in _TRUE_WORDS


def _buildkit_for(step, daemon, dockerfile_in_tar):
    """Whether this build asks for BuildKit; a line says why not where the step would
    have had it but the SDK must send the build (it knows only the legacy builder)."""
    if not uses_buildkit(step) or not _fits_one_header(dockerfile_in_tar):
        return False
    if not daemon.sends_work_plain():
        ui.say(step.name, "the legacy builder builds it: the SDK sends this build (the docker config holds "
                          "credentials, proxies or headers it adds, or the engine is ssh:// or TLS), and the SDK "
                          "knows only that builder")
        return False
    return True


class _NoBuildKit(Exception):
    """The engine refused a BuildKit build before it began (an engine without it)."""


def _pack_context(step, relpaths, handle):
    """Write the build context as a tar to `handle`; the Dockerfile's name in it.

    The Dockerfile goes first, in GNU format: BuildKit tells a context tar from a
    bare Dockerfile by its first header alone, and a PAX header (Python's default,
    written for every file whose mtime has a fraction) or a long name's extra header
    there makes it read the whole tar as a Dockerfile."""
    import tarfile  # here, not at the top: the no-op path never packs a tar
    context = step.path("context")
    dockerfile = _dockerfile_in_context(step) or OUTSIDE_DOCKERFILE
    with tarfile.open(fileobj=handle, mode="w", format=tarfile.GNU_FORMAT) as archive:
        if dockerfile == OUTSIDE_DOCKERFILE:
            archive.add(dockerfile_path(step), arcname=OUTSIDE_DOCKERFILE)
        else:
            archive.add(os.path.join(context, dockerfile), arcname=dockerfile, recursive=False)
        for relpath in relpaths:
            if relpath != dockerfile:
                archive.add(os.path.join(context, relpath), arcname=relpath, recursive=False)
    handle.seek(0)
    return dockerfile


def _fits_one_header(name):
    """True when a tar member of that name needs no extra header (see _pack_context)."""
    return len(name.encode()) <= MAX_TAR_NAME


def follow_build(what, chunks, daemon, buildkit=False):
    """Show the build's output live, each line once; StepFailed with the failing
    instruction and the last lines if it fails; the new image's id. `buildkit`: it
    was asked of BuildKit, so a refusal before the build began is _NoBuildKit."""
    output = _BuildOutput()
    error = None
    try:
        for chunk in chunks:
            error = engine.stream_error(chunk)
            if error is not None:
                break
            output.read(chunk)
    except StepFailed as err:  # the engine's answer to the request itself: a refusal
        if buildkit and not output.answered:
            _refuse_without_buildkit(_engine_words(what, str(err)))
        raise
    except (KeyboardInterrupt, SystemExit):
        # Ctrl-C, or the reader of our output gone: the legacy builder lets a RUN go on
        # to its end after its client leaves, so its container is removed here.
        # (BuildKit stops a build whose client left.)
        if output.running:
            remove_container(daemon, output.running)
        raise
    if error is not None:  # the build's own failure, in its stream (only its first words can be a refusal)
        if buildkit and not output.answered:
            _refuse_without_buildkit(error)
        raise StepFailed(output.failure(what, _without_buildkit_wrapping(error)))
    output.finish()
    return output.image_id


class _BuildOutput:
    """What a build's stream has shown so far, from either builder: the legacy
    builder's text lines (`Step 2/3 : RUN make`), BuildKit's trace messages."""

    def __init__(self):
        from ..buildkit_trace import Progress

        self.lines = []
        self.trace = Progress()
        self.instruction = None  # the legacy builder's current `RUN make`
        self.running = None      # the legacy builder's RUN container: removed on Ctrl-C
        self.image_id = None
        self.answered = False    # the engine began the build: a later error is the build's, not a refusal
        self.unreadable = 0      # trace messages that were not protobuf

    def read(self, chunk):
        from ..buildkit_trace import TRACE_ID, TraceError

        self.answered = True
        if chunk.get("id") == TRACE_ID:
            try:
                self._show(self.trace.feed(chunk.get("aux") or ""))
            except TraceError:
                self.unreadable += 1  # a progress message lost: the build goes on, its end says so
            return
        for line in ui.plain(chunk.get("stream", "")).splitlines():
            if line.strip():
                self._show([line.rstrip()])
                if line.startswith("Step "):
                    self.instruction, self.running = line.split(" : ", 1)[-1], None
                elif line.startswith(" ---> Running in "):
                    self.running = line.split()[-1]
        if "ID" in (chunk.get("aux") or {}):
            self.image_id = chunk["aux"]["ID"]

    def _show(self, lines):
        for line in lines:
            self.lines.append(line)
            ui.detail(line)

    def finish(self):
        self._show(self.trace.finish())
        if self.unreadable:
            ui.detail("(%d of BuildKit's progress messages could not be read: lines of its output may be missing)"
                      % self.unreadable)
            self.unreadable = 0

    def failure(self, what, error):
        self.finish()
        where = _instruction(self.trace.failed or self.trace.current) or self.instruction
        return _failure_message(what, error, where, self.lines)


# What BuildKit puts before the Dockerfile's own error; the legacy builder says only the error.
_BUILDKIT_WRAPPING = ("failed to solve with frontend dockerfile.v0: ", "failed to solve: ",
                      "failed to create LLB definition: ")


def _without_buildkit_wrapping(error):
    """`dockerfile parse error line 1: ...` of BuildKit's `failed to solve with
    frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error ...`."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in _BUILDKIT_WRAPPING:
            if error.startswith(prefix):
                error, stripped = error[len(prefix):], True
    return error


def _instruction(vertex_name):
    """`RUN make` of BuildKit's `[2/3] RUN make`: the legacy builder's words for it."""
    return vertex_name.split("] ", 1)[-1] if vertex_name else None


def _refuse_without_buildkit(engine_words):
    """_NoBuildKit where the engine's refusal names BuildKit: `buildkit not supported by
    daemon`, `buildkit is only supported with experimental mode` (Engine 18.09)."""
    if "buildkit" in engine_words.lower():
        raise _NoBuildKit(engine_words)


def _engine_words(what, message):
    """The engine's own words of a StepFailed `what: words` (a step or an image may be
    called buildkit-something: only the engine's words tell a refusal)."""
    return message[len(what) + 2:] if message.startswith(what + ": ") else message


def _failure_message(what, error, instruction, lines):
    """`what` is `step: build of IMAGE from DOCKERFILE`, as the engine's refusals say it."""
    where = " at `%s`" % instruction if instruction else ""
    tail = ui.indented(lines[-LAST_LINES:])
    return "%s failed%s: %s%s" % (what, where, error, "\n    last lines of its output:\n" + tail if tail else "")
