"""tag: one image, more names (docker tag), e.g. `lab/basic-app:${version}`.

Up to date when every tag already names the source image. A version tag that
names another image is not moved unless `force: true` (a released 1.0.0 must not
silently change); `latest` may move, with a warning that it is a moving target, and
so may the tags listed in `moving` (the lab's git-commit tag: edit, build and tag
again before committing, and it names the newest build), with a note of the move.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import engine, refs, ui
from ..errors import StepFailed
from . import Verdict, contract, image_ref_problems, source_image_id

if TYPE_CHECKING:  # for mypy only: each step module is imported on every no-op
    from typing import TypedDict

    from ..workflow import Step

    class TagMemo(TypedDict):
        """What check() learned for run()."""
        source_id: str
        to_tag: dict[str, str | None]  # ref -> the image it names now (None: a new name)

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock


def outputs(step):
    return [("image", ref) for ref in step.get("tags")]


def inputs(step):
    return [("image", step.get("source"))]


def problems(step):
    found = image_ref_problems(step, "source", "tags")
    tags = step.get("tags")
    return found + ["%s: %r is not one of this step's tags" % (step.where("moving", index), ref)
                    for index, ref in enumerate(step.get("moving", [])) if ref not in tags]


def check(step: Step, saved: dict[str, Any]) -> Verdict[TagMemo]:
    daemon = engine.for_step(step)
    source = step.get("source")
    source_id = source_image_id(step)
    to_tag: dict[str, str | None] = {}
    for ref in step.get("tags"):
        current_id = daemon.image_id(ref)
        if current_id == source_id:
            continue
        if current_id is not None and not step.get("force") and refs.parse(ref).tag != "latest" \
                and ref not in step.get("moving", []):
            raise StepFailed(
                "%s: %s already names another image (%s), not %s (%s); a version tag is not moved: "
                "bump the version or set force: true" % (step.where("tags"), ref, current_id[7:19],
                                                        source, source_id[7:19]))
        to_tag[ref] = current_id
    memo: TagMemo = {"source_id": source_id, "to_tag": to_tag}
    if not to_tag:
        return Verdict(True, memo=memo)
    return Verdict(False, "tagging %s (%s) as %s" % (source, source_id[7:19], ", ".join(to_tag)), memo)


def run(step: Step, verdict: Verdict[TagMemo]) -> dict[str, Any]:
    memo = verdict.memo
    daemon = engine.for_step(step)
    for ref, previous_id in memo["to_tag"].items():
        if refs.split_tag(ref)[1] == "latest":
            ui.warn(step.name, "%s is a moving target: whoever runs it gets whatever was tagged last; "
                               "deploy a version tag instead" % ref)
        elif previous_id is not None:  # a moving tag, or one forced: say what it named
            ui.say(step.name, "moving %s from %s to %s" % (ref, previous_id[7:19], memo["source_id"][7:19]))
        daemon.tag("%s: tag %s" % (step.name, ref), memo["source_id"], ref)
    return {"source_id": memo["source_id"], "tags": step.get("tags")}
