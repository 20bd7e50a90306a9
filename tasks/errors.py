"""The two kinds of failure a user sees, kept apart as doit keeps them.

WorkflowError: the definition is wrong (YAML, schema, references, cycles). Found
before anything touches Docker; doit prints it and exits 3.
StepFailed: a step ran and failed (daemon down, build error, refused push).
The step's task fails with one readable message; doit exits 1.
"""
from doit.exceptions import InvalidDodoFile


class WorkflowError(InvalidDodoFile):
    """One or more definition problems, each already formatted
    `file:line:col: path: message`."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        count = len(self.problems)
        head = "workflow definition has %d error%s:" % (count, "" if count == 1 else "s")
        super().__init__("\n  ".join([head] + self.problems))


class StepFailed(Exception):
    """A step could not do its work; the message says what and what to check."""


class EngineUnreachable(StepFailed):
    """No Docker engine answered at the address tried."""
