"""A project: the folder that holds workflows/, the steps of those files, what each
step needs, and the folder where dockflow keeps its caches. Built once per run
(`Project.load`) and handed down: each workflow knows its project (Workflow.project),
each step its workflow, so a step finds its project's folders without a global.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import workflow
from .errors import WorkflowError

if TYPE_CHECKING:
    from .workflow import Step


class Project:
    def __init__(self, folder: str, cache_dir: str | None = None) -> None:
        self.dir = folder
        # .dockflow/cache: the parse cache, the step hash files, the tar hashes.
        self.cache_dir = cache_dir or os.path.join(folder, ".dockflow", "cache")
        self.steps: dict[str, Step] = {}   # step name -> Step, across every workflow file
        self.deps: dict[str, list[str]] = {}  # step name -> the names of the steps it needs

    @classmethod
    def load(cls, folder: str, override=None, collect: list[str] | None = None) -> Project:
        """The project with every step of `folder/workflows`; WorkflowError if any is
        wrong (with a `collect` list, sound-structure problems are appended to it instead)."""
        project = cls(folder)
        problems = [] if collect is None else collect
        for flow in workflow.load_all(os.path.join(folder, "workflows"), project.cache_dir, override, problems):
            flow.project = project
            for name, step in flow.steps.items():
                if name in project.steps:
                    problems.append("%s: step %r is also defined at %s; step names are doit task names and must "
                                    "be unique across workflows/" % (step.where(), name, project.steps[name].where()))
                project.steps[name] = step
        if problems and collect is None:
            raise WorkflowError(problems)
        return project

    def hash_file(self, step_name: str) -> str:
        """The file that keeps the file stats of a step with no saved values (digest.py)."""
        return os.path.join(self.cache_dir, "hashes", step_name + ".json")
