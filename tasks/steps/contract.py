"""The contract of a step kind, written as code (as pre-commit's languages/ hold to
lang_base.py). A kind is one module of this package that has every member of
StepKind; where a kind has nothing of its own to say, it assigns the named default
below, so that a reader sees every member in every kind and nothing is read with a
getattr fallback. tests/test_contract.py holds each kind of STEP_KINDS to it, and
mypy checks the signatures.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..workflow import Step
    from . import Verdict

# ("image", ref) or ("file", absolute path): what a step makes or reads. A step's
# inputs that another step outputs make it depend on that step. An input may also be
# ("registry", ref): read from a registry, not from the step's engine (pull); a step
# that outputs ("image", ref), a push, comes first.
Item = tuple[str, str]


@runtime_checkable
class StepKind(Protocol):
    # Never up to date: the step runs each time it is asked (prune).
    ALWAYS_RUN: bool
    # `name=value` switches of doit's command line the kind reads itself (prune's dry_run).
    COMMAND_LINE_SWITCHES: tuple[str, ...]

    def outputs(self, step: Step) -> list[Item]:
        """What the step makes."""

    def inputs(self, step: Step) -> list[Item]:
        """What the step reads."""

    def problems(self, step: Step) -> list[str]:
        """Definition errors found when the workflows load (`file:line:col: path: message`)."""

    def check(self, step: Step, saved: dict[str, Any]) -> Verdict:
        """Up to date? Asks the engine, never a stamp; `saved` is what the last success recorded."""

    def run(self, step: Step, verdict: Verdict) -> dict[str, Any]:
        """Does the work; the dict is recorded by doit for the next check."""

    def exclusive(self, step: Step) -> bool:
        """Hold the project lock alone (a real prune), not shared with other steps."""


# The named defaults a kind assigns when it has nothing of its own.
RUNS_WHEN_OUT_OF_DATE = False
NO_SWITCHES: tuple[str, ...] = ()


def no_problems(step: Step) -> list[str]:
    return []


def shares_the_lock(step: Step) -> bool:
    return False


def lands_on_other_engines(step: Step) -> list[Item]:
    """outputs() of a kind whose image lands in its target engines (load, pull), which may
    be other hosts: nothing here for later steps of this engine to depend on."""
    return []
