"""The step kinds: one module of this package per kind, each holding to the contract
in contract.py (outputs, inputs, problems, check, run, exclusive, ALWAYS_RUN,
COMMAND_LINE_SWITCHES). Adding a kind: one module, one line in STEP_KINDS, its part
of the schema, its tests. The schema's `kind` enum must equal STEP_KINDS
(tests/test_schema.py checks it), and tests/test_contract.py holds every kind to
the contract.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Generic, TypeVar, cast

from ..labels import PROJECT_LABEL, RUN_LABEL, TEMPORARY_LABEL

# kind -> module name in this package ("import" is a Python keyword).
STEP_KINDS = {
    "build": "build",
    "import": "import_rootfs",
    "tag": "tag",
    "registry": "registry",
    "push": "push",
    "commit": "commit",
    "copy_out": "copy_out",
    "save": "save",
    "transfer": "transfer",
    "load": "load",
    "pull": "pull",
    "prune": "prune",
}



def module_for(kind):
    return importlib.import_module("%s.%s" % (__name__, STEP_KINDS[kind]))


def always_runs(kind):
    """Is a step of this kind never up to date (ALWAYS_RUN)?"""
    return module_for(kind).ALWAYS_RUN


def command_line_switches():
    """The `name=value` switches every kind reads from doit's command line."""
    return {name for kind in STEP_KINDS for name in module_for(kind).COMMAND_LINE_SWITCHES}


# A kind's memo: the TypedDict its check() fills and its run() reads (each kind's module
# names its own, e.g. tag.TagMemo); Verdict[Any] where a kind has none.
Memo = TypeVar("Memo", bound=Mapping[str, Any])


class Verdict(Generic[Memo]):
    """The answer of a check: up to date or not, why, and what the check learned
    (`memo`) so that run() need not ask again."""

    __slots__ = ("current", "reason", "memo", "error")

    def __init__(self, current: bool, reason: str = "", memo: Memo | None = None,
                 error: Exception | None = None) -> None:
        self.current = current
        self.reason = reason
        self.memo: Memo = memo or cast(Memo, {})
        self.error = error


def image_ref_problems(step, *fields):
    """problems() lines for fields that must hold an image reference, or a list of
    them (a bad item is marked by its index); a field the step does not set is skipped."""
    from .. import refs

    found = []
    for field in (f for f in fields if f in step.spec):
        value = step.get(field)
        marked = [((field, index), ref) for index, ref in enumerate(value)] if isinstance(value, list) \
            else [((field,), value)]
        found += ["%s: %r is not a valid image reference" % (step.where(*where), ref)
                  for where, ref in marked if not refs.is_valid(ref)]
    return found


def source_changes(step, saved, memo):
    """Why a step that reads one source image runs again, from the values its last
    success saved: the source's id or the step's definition is not the one recorded."""
    reasons = []
    if saved.get("source_id") != memo["source_id"]:
        reasons.append("source image %s is new (%s)" % (step.get("source"), memo["source_id"][7:19]))
    if saved.get("definition_digest") != memo["definition_digest"]:
        reasons.append("the step's definition changed")
    return reasons


def source_image_id(step, field="source"):
    """The id of the image a step reads, or StepFailed naming where it is asked for."""
    from .. import engine
    from ..errors import StepFailed

    daemon = engine.for_step(step)
    image_id = daemon.image_id(step.get(field))
    if image_id is None:
        raise StepFailed("%s: source image %s is not in the engine %s (no step builds it?)"
                         % (step.where(field), step.get(field), daemon.host))
    return image_id


def create_container(step, daemon, source_id, command):
    """A temporary container of the step's source image (labelled for prune); its id."""
    labels = {TEMPORARY_LABEL: step.name, PROJECT_LABEL: step.workflow.project.dir, RUN_LABEL: this_run()}
    return daemon.create_container("%s: create a container of %s" % (step.name, step.get("source")),
                                   source_id, command=command, labels=labels)


def this_run():
    """The RUN_LABEL value of this process: host:pid."""
    import os
    import socket

    return "%s:%d" % (socket.gethostname(), os.getpid())


def run_is_gone(run):
    """Is the run a RUN_LABEL value names over? Yes for a process of this host that no
    longer exists, and for no value (a container made before the label); no for
    another host's run, which this host cannot see."""
    host, _, pid = (run or "").rpartition(":")
    if not run:
        return True
    return host == this_run().rpartition(":")[0] and pid.isdigit() and process_is_gone(int(pid))


def process_is_gone(pid):
    """Has process `pid` of this host ended?"""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return False


def remove_container(daemon, container):
    """Remove a temporary container; a failure here only warns (the work is done or failed already)."""
    from .. import ui
    from ..errors import StepFailed

    try:
        daemon.remove_container("remove temporary container %s" % container[:12], container)
    except StepFailed as err:
        ui.warn("engine", "could not remove temporary container %s: %s" % (container[:12], err))
