"""commit: run a command in a container of an image, keep the result as a new image
(docker run + docker commit, Exercise 3.02 steps 15-21: basic-app-test holds
prod_test_data.txt on top of basic-app).

The command is an argument list (`[sh, -c, "echo ... > prod_test_data.txt"]`), run
like `docker run SOURCE ARGV...`: the source's ENTRYPOINT, if any, still applies.
The new image keeps the source's CMD (docker commit would otherwise record the
command that made the data as the image's default command). The container is
removed whatever happens.

Up to date when the engine has the image and its `io.dockflow.inputs` label equals
the digest of (source image id + command + step definition): a rebuilt source
image, or an edited command, commits again.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .. import engine, refs, ui
from ..digest import value_digest
from ..labels import INPUTS_LABEL
from ..errors import StepFailed
from . import Verdict, contract, create_container, image_ref_problems, remove_container, source_changes, source_image_id

if TYPE_CHECKING:  # for mypy only: each step module is imported on every no-op
    from typing import TypedDict

    from ..workflow import Step

    class CommitMemo(TypedDict):
        source_id: str
        input_digest: str
        definition_digest: str

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock

LAST_LINES = 8


def outputs(step):
    return [("image", step.get("image"))]


def inputs(step):
    return [("image", step.get("source"))]


def problems(step):
    found = image_ref_problems(step, "source", "image")
    if not found and refs.normalize(step.get("source")) == refs.normalize(step.get("image")):
        found.append("%s: the committed image must differ from its source" % step.where("image"))
    return found


def check(step: Step, saved: dict[str, Any]) -> Verdict[CommitMemo]:
    daemon = engine.for_step(step)
    source_id = source_image_id(step)
    definition_digest = value_digest(step.expanded_definition())
    input_digest = value_digest({"source": source_id, "command": step.get("command"),
                                 "definition": definition_digest})
    memo: CommitMemo = {"source_id": source_id, "input_digest": input_digest, "definition_digest": definition_digest}
    image_ref = step.get("image")
    labels = daemon.image_labels(image_ref)
    if labels is None:
        return Verdict(False, "committing %s: the engine has no such image" % image_ref, memo)
    if labels.get(INPUTS_LABEL) != input_digest:
        return Verdict(False, "committing %s again: %s" % (image_ref, _why_changed(step, saved, memo)), memo)
    return Verdict(True, memo=memo)


def _why_changed(step, saved, memo):
    if not saved:
        return "its source or command differ from those it was made from (no earlier run recorded here)"
    reasons = source_changes(step, saved, memo)
    return "; ".join(reasons) or "the image's label does not match its inputs (made elsewhere?)"


def run(step: Step, verdict: Verdict[CommitMemo]) -> dict[str, Any]:
    memo = verdict.memo
    daemon = engine.for_step(step)
    image_ref = step.get("image")
    source_config = (daemon.inspect_image(memo["source_id"]) or {}).get("Config") or {}
    container = _start(step, daemon, memo["source_id"])
    try:
        _wait(step, daemon, container)
        changes = ["LABEL %s=%s" % (INPUTS_LABEL, memo["input_digest"]),
                   "CMD %s" % json.dumps(source_config.get("Cmd") or [])]
        image_id = daemon.commit("%s: commit as %s" % (step.name, image_ref), container, image_ref,
                                 message=step.get("message"), changes=changes)
    finally:
        remove_container(daemon, container)
    ui.say(step.name, "committed %s (%s)" % (image_ref, image_id[7:19]))
    return {"image_id": image_id, "source_id": memo["source_id"], "input_digest": memo["input_digest"],
            "definition_digest": memo["definition_digest"]}


def _start(step, daemon, source_id):
    container = create_container(step, daemon, source_id, step.get("command"))
    try:
        daemon.start_container("%s: start %s in %s" % (step.name, " ".join(step.get("command")),
                                                       step.get("source")), container)
    except StepFailed:
        remove_container(daemon, container)
        raise
    return container


def _wait(step, daemon, container):
    what = "%s: wait for the command" % step.name
    status = daemon.wait_container(what, container)
    logs = daemon.container_logs(what, container, stdout=True, stderr=True)
    lines = [line for line in logs.splitlines() if line.strip()]
    for line in lines:
        ui.detail(line)
    if status != 0:
        tail = ui.indented(lines[-LAST_LINES:])
        raise StepFailed("%s: the command %s exited with %d in a container of %s; nothing committed%s"
                         % (step.where("command"), json.dumps(step.get("command")), status,
                            step.get("source"), "\n    last lines of its output:\n" + tail if tail else ""))
