"""A project's definition checks, before anything touches Docker: what each step needs
(`needs:` plus every step that outputs an image or file it reads), two steps that make
one thing, an image read on an engine where no step makes it, each kind's own load-time
checks, unknown `name=value` arguments; every problem of every file at once.

tasks/doit_tasks.py turns the checked steps into doit tasks; `doit validate` and
`doit plan` (tasks/commands.py) read the checks here too.
"""
import os
import re

from . import engine, graph, refs, steps, workflow
from .errors import StepFailed, WorkflowError
from .project import Project


def load(project_dir, override=None, collect=None):
    """All steps of `project_dir/workflows`, keyed by name (Project.load's steps)."""
    return Project.load(project_dir, override, collect).steps


def dependencies(all_steps):
    """name -> sorted names it depends on; WorkflowError on unknown names and cycles."""
    problems, producers, producers_below, makers = [], {}, {}, {}
    broken = {name for flow in workflows_of(all_steps) for name in flow.broken_steps}
    # Each step's inputs once: a build step's are read from its Dockerfile.
    input_keys = {name: [_key(item) for item in _safe(step, "inputs")] for name, step in all_steps.items()}
    for name, step in all_steps.items():
        for item in _safe(step, "outputs"):
            key = _key(item)
            if key in input_keys[name]:
                continue  # pushing an image under the name it has makes nothing new
            other = producers.setdefault(key, name)
            makers.setdefault(key, []).append(name)
            if other != name and _same_engine(step, all_steps[other], key):
                problems.append(_made_twice(step, all_steps[other], item))
            if key[0] == "file":  # a file made inside a folder another step reads
                for folder in _parent_folders(key[1]):
                    producers_below.setdefault(folder, set()).add(name)
    deps = {}
    for name, step in all_steps.items():
        needed = set()
        for key in input_keys[name]:
            if _made_as(key) in producers:
                needed.add(producers[_made_as(key)])
            if key[0] == "file":
                needed.update(producers_below.get(key[1], ()))
        needed.discard(name)  # reading what it makes itself is no dependency; `needs: [self]` is a cycle
        for index, other in enumerate(step.spec.get("needs", [])):
            if other in broken:
                continue  # that step's own problem is reported; a fixed file checks this again
            if other not in all_steps:
                problems.append("%s: unknown step %r%s" % (step.where("needs", index), other,
                                                            workflow.did_you_mean(other, set(all_steps) | broken)))
            else:
                needed.add(other)
        deps[name] = sorted(needed)
    problems += _engine_crossings(all_steps, input_keys, makers)
    cycle = graph.find_cycle(deps)
    if cycle:
        first = all_steps[cycle[0]]
        problems.append("%s: dependency cycle: %s" % (first.where(), " -> ".join(cycle)))
    if problems:
        raise WorkflowError(problems)
    return deps


def _same_engine(step, other, key):
    """Files are this machine's; images belong to the engine each step talks to (an
    engine not known yet, its variable unset, is taken for another)."""
    if key[0] == "file":
        return True
    host = _engine_host(step)
    return host is not None and host == _engine_host(other)


def _engine_crossings(all_steps, input_keys, makers):
    """A step reads its images from the engine it talks to: one that reads (FROM, source,
    image) an image that steps make only on other engines would never find it there."""
    problems = []
    for name, step in all_steps.items():
        host = _engine_host(step)
        if host is None:
            continue
        # files are this machine's, and a registry every engine reaches
        for key in (key for key in input_keys[name] if key[0] == "image"):
            others = [all_steps[other] for other in makers.get(key, ()) if other != name]
            hosts = [_engine_host(other) for other in others]
            if others and None not in hosts and host not in hosts:
                problems.append("%s: reads image %s from the engine %s, but step %r (%s) makes it on %s: give "
                                "both steps the same docker_host, or load or pull the image into %s first" % (
                                    step.where(), _shown_ref(key[1]), host, others[0].name, others[0].where(),
                                    hosts[0], host))
    return problems


def _made_as(key):
    """The output that makes an input: a registry reference is what a push outputs."""
    return ("image", key[1]) if key[0] == "registry" else key


def _shown_ref(normalized):
    ref = refs.parse(normalized)
    if ref is None:
        return normalized
    return "%s@%s" % (ref.name, ref.digest) if ref.digest else "%s:%s" % (ref.name, ref.tag)


def _engine_host(step):
    try:
        return engine.host_for(step)
    except StepFailed:
        return None  # not resolvable yet: that step's check reports it


def _made_twice(step, other, item):
    kind, value = item
    shown = os.path.relpath(value) if kind == "file" else value
    return ("%s: %s %s is also made by step %r (%s); two steps that make one %s undo each other's work "
            "on every run: give one of them another %s" % (
                step.where(), kind, shown, other.name, other.where(), kind, "name" if kind == "image" else "path"))


def _parent_folders(path):
    parent = os.path.dirname(path)
    while parent and parent != path:
        yield parent
        path, parent = parent, os.path.dirname(parent)


def _key(item):
    kind, value = item
    return (kind, refs.normalize(value) if kind in ("image", "registry") else os.path.normpath(value))


def _safe(step, what):
    """A step module's inputs/outputs. A value that cannot be resolved yet (no git
    repository for ${commit}, say) is left out here: that step's own check reports
    it when it runs, and unrelated steps stay usable."""
    try:
        return getattr(steps.module_for(step.kind), what)(step)
    except StepFailed:
        return []


def step_problem_list(all_steps):
    """Each step kind's own load-time checks (paths exist, references are valid)."""
    problems = []
    for step in all_steps.values():
        try:
            problems.extend(steps.module_for(step.kind).problems(step))
        except StepFailed:
            # A value not resolvable yet (${commit} outside a git checkout): that
            # step reports it when it runs; unrelated steps stay usable.
            continue
    return problems


def workflows_of(all_steps):
    """The workflow files the steps come from, each once."""
    return list({id(step.workflow): step.workflow for step in all_steps.values()}.values())


def unknown_variables(all_steps, given):
    """A problem for each `name=value` of the command line (`given`, a dict) that no
    workflow declares: doit would pass it on silently, and the run ignore it."""
    declared = {str(name) for flow in workflows_of(all_steps) for name in flow.variables.declared}
    if set(given) <= declared:
        return []
    declared |= steps.command_line_switches()  # imports every kind: only when it is needed
    return ["command line: %s=%s: no workflow declares a variable %r%s (variables: %s)"
            % (name, value, name, workflow.did_you_mean(name, declared), ", ".join(sorted(declared)))
            for name, value in sorted(given.items()) if name not in declared]


def checked_steps(project_dir, override=None, given=None):
    """(steps, deps) of the checked project (checked_project), schedules included."""
    project = checked_project(project_dir, override, given, schedules=True)
    return project.steps, project.deps


def checked_project(project_dir, override=None, given=None, schedules=False):
    """The Project with its steps and what each needs; every definition problem of every
    file, and every unknown `name=value` of the command line (`given`), in one
    WorkflowError, before anything touches Docker. `schedules`: also the check that
    `schedule install` makes (doit validate); a run leaves it to those two, since a
    schedule is read only when it is installed (and the check costs every run ~15 ms)."""
    problems = []
    project = Project.load(project_dir, override, collect=problems)
    all_steps = project.steps
    problems += unknown_variables(all_steps, given or {})
    problems += step_problem_list(all_steps)
    if schedules and any("schedule" in step.spec for step in all_steps.values()):
        from . import schedule  # imported only then: every run loads this module
        problems += schedule.schedule_problems(all_steps)  # the check `schedule install` makes
    try:
        deps = dependencies(all_steps)
    except WorkflowError as err:
        problems += err.problems
    if problems:
        raise WorkflowError(sorted(problems, key=_position))
    project.deps = deps
    return project


def _position(problem):
    """Sort key of a problem: those of the command line first, then file by file in line order."""
    match = _POSITION_RE.match(problem)
    return (1, match.group(1), int(match.group(2)), int(match.group(3))) if match else (0, "", 0, 0)


_POSITION_RE = re.compile(r"([^:]+):(\d+):(\d+): ")
