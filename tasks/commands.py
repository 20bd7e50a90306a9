"""doit commands that show a workflow instead of running it.

    doit validate            every workflow file checked; every error with file:line:col
    doit plan [TASK...]      what would run, in what order, and why; runs nothing
    doit graph [-o FILE]     the dependency graph as SVG (and PNG where Graphviz is installed)
    doit layers IMAGE        docker history with the base image's share and the dangling images

doit 0.37 reads them from the project's pyproject.toml:

    [tool.doit.plugins.command]
    validate = "tasks.commands:Validate"

(doit hoists `tool.doit.plugins.command` to its COMMAND plugin table; an installed
dockflow also offers them through the `doit.COMMAND` entry-point group.) A plugin
module is imported only when its command is typed, so `doit build_app` pays nothing.

`validate` and `layers` are plain commands: they never load dodo.py, so a broken
workflow (which stops every task command with exit 3) is still reported in full.
`plan` and `graph` load the tasks as `doit info` does, read each step's saved values
from doit's state file, and ask each step kind's check(): inspections only, nothing
in the engine or the state file is changed (a step with no saved values may write
its file hashes under .dockflow/cache/hashes, as any run does).
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
from xml.sax.saxutils import escape

from doit.cmd_base import Command, DoitCmdBase
from doit.exceptions import InvalidCommand

from . import doit_tasks, engine, graph, project_checks, steps, ui, workflow
from .doit_commands import HelpOption
from .errors import StepFailed, WorkflowError
from .files import write_atomic
from .progress import human_size

# Exit code of a definition error, as doit uses it when a dodo.py cannot load.
DEFINITION_ERROR = 3
# `doit plan --exit-code`: something would run (as `git diff --exit-code` says "differs").
WOULD_RUN_EXIT = 2

DANGLING_SHOWN = 15  # the largest; a terminal is not the place for hundreds of lines
UP_TO_DATE, WILL_RUN, MAY_RUN, FAILS = "up to date", "will run", "may run", "fails"
STATE_COLOURS = {UP_TO_DATE: "#d9f2d9", WILL_RUN: "#ffe0b3", MAY_RUN: "#fff7cc", FAILS: "#f7c6c6"}


def counted(count, noun):
    """`1 step`, `2 steps`."""
    return "%d %s%s" % (count, noun, "s" * (count != 1))


# --- validate -----------------------------------------------------------------
class Validate(HelpOption, Command):
    name = "validate"
    doc_purpose = "check every workflow file; print every error with file:line:col and path"
    doc_usage = ""
    doc_description = ("Reads workflows/*.yaml of the current folder: YAML, schema, variables, "
                       "each step kind's own checks, references and cycles. Exit 0 when all is well, "
                       "%d otherwise. Touches no Docker engine." % DEFINITION_ERROR)

    @ui.stdout_pipe_safe
    def execute(self, params, args):
        file_count, step_count, problems = validate_project(os.getcwd())
        for problem in problems:
            print(problem)
        if problems:
            print("%s in %s" % (counted(len(problems), "error"), counted(file_count, "workflow file")),
                  file=sys.stderr)
            return DEFINITION_ERROR
        print("%s, %s: OK" % (counted(file_count, "workflow file"), counted(step_count, "step")))
        return 0


def validate_project(project_dir):
    """(number of workflow files, number of steps, every problem found): the same
    checks, in the same one pass, as doit's own loading of the workflows."""
    workflow_dir = os.path.join(project_dir, "workflows")
    try:
        file_count = sum(1 for n in os.listdir(workflow_dir) if n.endswith((".yaml", ".yml")))
    except FileNotFoundError:
        return 0, 0, ["%s: no such folder; put workflow files in workflows/" % os.path.relpath(workflow_dir)]
    try:
        all_steps, _ = project_checks.checked_steps(project_dir)
    except WorkflowError as err:
        return file_count, 0, err.problems
    return file_count, len(all_steps), file_variable_problems(all_steps)


def file_variable_problems(all_steps):
    """Variables read from a file (`{file: VERSION, semver: true}`): a run reads them only
    when a step uses them, so a bad VERSION would wait for `doit tag`; validate reads
    them now. (Environment and git variables may differ where the steps run.)"""
    problems = []
    for flow in project_checks.workflows_of(all_steps):
        for name, source in flow.variables.declared.items():
            if isinstance(source, dict) and "file" in source \
                    and os.path.exists(os.path.join(flow.base_dir, str(source["file"]))):  # a step may make it
                try:
                    flow.variables.get(name)
                except StepFailed as err:
                    problems.append(str(err))
    return problems


# --- plan ---------------------------------------------------------------------
class PlanCommand(HelpOption, DoitCmdBase):
    name = "plan"
    doc_purpose = "show what would run, in what order, and why; runs nothing"
    doc_usage = "[--json] [--exit-code] [TASK ...]"
    doc_description = ("Asks each step's up-to-date check (the same one `doit` uses) and prints the steps "
                       "the given tasks need, dependencies first. `may run` means up to date now but "
                       "checked again after a step it needs has run. Exit 1 when a step would fail; with "
                       "--exit-code, exit %d when a step would run and 0 only when all is up to date."
                       % WOULD_RUN_EXIT)
    cmd_options = (
        {"name": "as_json", "long": "json", "type": bool, "default": False,
         "help": "print the plan as one JSON object (steps in run order, counts, would_run)"},
        {"name": "exit_code", "long": "exit-code", "type": bool, "default": False,
         "help": "exit %d when a step would run (will run or may run), 0 when all is up to date: "
                 "for CI to gate on" % WOULD_RUN_EXIT},
    )

    @ui.stdout_pipe_safe
    def _execute(self, pos_args, as_json=False, exit_code=False):
        rows = assess_tasks(self, pos_args)
        self.outstream.write(plan_json(rows) if as_json else format_plan(rows))
        if any(row[2] == FAILS for row in rows):
            return 1  # as the run would fail
        would_run = any(row[2] in (WILL_RUN, MAY_RUN) for row in rows)
        return WOULD_RUN_EXIT if exit_code and would_run else 0


Plan = PlanCommand  # the name plugin tables copied from an older pyproject.toml give


def plan_json(rows):
    """The plan for scripts: steps in run order with state, reason and needs; counts per state."""
    steps_out = [{"step": name, "kind": kind, "state": state, "reason": reason, "needs": list(needs)}
                 for name, kind, state, reason, needs in rows]
    counts = {state: sum(1 for row in rows if row[2] == state) for state in STATE_COLOURS}
    return json.dumps({"steps": steps_out, "counts": counts,
                       "would_run": counts[WILL_RUN] + counts[MAY_RUN] > 0}, indent=2) + "\n"


def assess_tasks(command, pos_args):
    """Rows for the selected tasks of a DoitCmdBase command; closes its state file."""
    try:
        tasks = {t.name: t for t in command.task_list}
        for name in pos_args:
            if name not in tasks:
                raise InvalidCommand("'%s' is not a step%s" % (name, workflow.did_you_mean(name, tasks)))
        all_steps, deps = doit_tasks.loaded_steps()  # doit's loading of dodo.py made them
        selected = pos_args or [n for n in (command.sel_tasks or []) if n in all_steps] or sorted(all_steps)
        return assess(all_steps, deps, selected, command.dep_manager.get_values)
    finally:
        command.dep_manager.close()


def assess(all_steps, deps, selected, saved_values):
    """[(name, kind, state, reason, deps)] for `selected` and what they need, in run order.

    Nothing is run: each step's check() inspects the engine. A step that is up to
    date now but needs a step that will run is `may run`: doit checks it again then.
    """
    needed, todo = set(), list(selected)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(deps[name])
    order = graph.topological_order({name: deps[name] for name in needed})
    states, rows = {}, []
    for name in order:
        step = all_steps[name]
        upstream = [d for d in deps[name] if states[d] in (WILL_RUN, MAY_RUN)]
        after = "checked again after %s" % ", ".join(upstream)
        if steps.always_runs(step.kind):
            state, reason = WILL_RUN, "runs every time"
        else:
            verdict = doit_tasks.verdict_for(step, saved_values(name) or {})
            if verdict.error:
                state, reason = (MAY_RUN, "%s (now: %s)" % (after, verdict.error)) if upstream \
                    else (FAILS, str(verdict.error))
            elif not verdict.current:
                state, reason = WILL_RUN, verdict.reason or "out of date"
            elif upstream:
                state, reason = MAY_RUN, "up to date now; " + after
            else:
                state, reason = UP_TO_DATE, ""
        states[name] = state
        rows.append((name, step.kind, state, reason, deps[name]))
    return rows


def format_plan(rows):
    width = max([len(r[0]) for r in rows] + [4])
    lines = ["plan: %s, in the order doit would take them" % counted(len(rows), "step")]
    for index, (name, kind, state, reason, _deps) in enumerate(rows, 1):
        lines.append("%3d. %-*s  %-10s %s" % (index, width, name, state, reason))
    counts = [(s, sum(1 for r in rows if r[2] == s)) for s in (WILL_RUN, MAY_RUN, FAILS, UP_TO_DATE)]
    lines.append(", ".join("%d %s" % (n, s) for s, n in counts if n) + ". Nothing was run.")
    return "\n".join(lines) + "\n"


# --- graph --------------------------------------------------------------------
class Graph(HelpOption, DoitCmdBase):
    name = "graph"
    doc_purpose = "draw the dependency graph, each step coloured by its state, as SVG (and PNG with Graphviz)"
    doc_usage = "[-o FILE] [TASK ...]"
    doc_description = ("Each step is a box coloured by its state (up to date, will run, may run, fails); "
                       "an arrow goes from a step to each step that needs it. Runs nothing.")
    cmd_options = ({"name": "output", "short": "o", "long": "output", "type": str,
                    "default": os.path.join("build", "workflow-graph.svg"),
                    "help": "SVG file to write [default: %(default)s]; a PNG beside it when `dot` is installed"},)

    @ui.stdout_pipe_safe
    def _execute(self, pos_args, output):
        rows = assess_tasks(self, pos_args)
        write_atomic(output, render_svg(rows).encode())
        written = [output]
        dot = shutil.which("dot")
        if dot:
            png = os.path.splitext(output)[0] + ".png"
            done = subprocess.run([dot, "-Tpng"], input=render_dot(rows).encode(), capture_output=True)
            if done.returncode == 0:
                write_atomic(png, done.stdout)
                written.append(png)
            else:
                print("graph: dot failed: %s" % done.stderr.decode(errors="replace").strip(), file=sys.stderr)
        which = "" if pos_args else " (those `doit` alone runs: name a step to add it)"
        self.outstream.write("graph: %s%s written to %s\n" % (counted(len(rows), "step"), which, " and ".join(written)))
        return 0


def _layers(rows):
    """Column of each step: the longest chain of steps it needs."""
    depth = {}
    for name, _kind, _state, _reason, deps in rows:  # rows are in dependency order
        depth[name] = 1 + max([depth[d] for d in deps if d in depth], default=-1)
    return depth


def render_svg(rows):
    """A standalone SVG: columns by dependency depth, boxes coloured by state."""
    depth = _layers(rows)
    box_w = max([len(r[0]) for r in rows] + [14]) * 8 + 24
    box_h, gap_x, gap_y, margin = 44, 60, 18, 20
    columns = {}
    position = {}
    for name, *_rest in rows:
        column = columns.setdefault(depth[name], [])
        position[name] = (margin + depth[name] * (box_w + gap_x), margin + len(column) * (box_h + gap_y))
        column.append(name)
    width = margin * 2 + (max(columns, default=0) + 1) * (box_w + gap_x) - gap_x
    legend_y = margin + max([len(c) for c in columns.values()] + [0]) * (box_h + gap_y)
    height = legend_y + 40
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="sans-serif" font-size="12">' % (width, height, width, height),
           '<title>dockflow workflow graph</title>',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    for name, _kind, _state, _reason, deps in rows:
        x2, y2 = position[name]
        for dep in deps:
            if dep in position:
                x1, y1 = position[dep]
                out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#555" marker-end="url(#arrow)"/>'
                           % (x1 + box_w, y1 + box_h // 2, x2, y2 + box_h // 2))
    for name, kind, state, reason, _deps in rows:
        x, y = position[name]
        out.append('<g class="step" id="step-%s"><title>%s</title>' % (escape(name), escape(
            "%s (%s): %s%s" % (name, kind, state, ": " + reason if reason else ""))))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" rx="6" fill="%s" stroke="#333"/>'
                   % (x, y, box_w, box_h, STATE_COLOURS[state]))
        out.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (x + 10, y + 18, escape(name)))
        out.append('<text x="%d" y="%d" fill="#333">%s · %s</text></g>' % (x + 10, y + 35, escape(kind),
                                                                           escape(state)))
    x = margin
    for state, colour in STATE_COLOURS.items():
        out.append('<rect x="%d" y="%d" width="14" height="14" fill="%s" stroke="#333"/>' % (x, legend_y + 10, colour))
        out.append('<text x="%d" y="%d">%s</text>' % (x + 20, legend_y + 22, escape(state)))
        x += 110
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render_dot(rows):
    """The same graph in Graphviz's language, for `dot -Tpng`."""
    def quote(text):
        return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')

    lines = ["digraph workflow {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname=sans];']
    for name, kind, state, _reason, _deps in rows:
        lines.append("  %s [label=%s, fillcolor=%s];" % (quote(name), quote("%s\n%s · %s" % (name, kind, state)),
                                                         quote(STATE_COLOURS[state])))
    for name, _kind, _state, _reason, deps in rows:
        lines.extend("  %s -> %s;" % (quote(dep), quote(name)) for dep in deps)
    return "\n".join(lines + ["}"]) + "\n"


# --- layers -------------------------------------------------------------------
class Layers(HelpOption, Command):
    name = "layers"
    doc_purpose = "show the layers of an image as docker history does, the share of its base, and the dangling images"
    doc_usage = "IMAGE [--base IMAGE] [--json FILE]"
    doc_description = ("Exercises 3.01 and 3.02: each history entry's instruction and size, which of them "
                       "come from the base image (the nearest tagged image in its history, or --base), the "
                       "total, and the dangling <none> images with their sizes (Exercise 3.01 step 7). "
                       "Reads the engine of DOCKER_HOST (default: the local socket); changes nothing.")
    cmd_options = (
        {"name": "base", "long": "base", "type": str, "default": "",
         "help": "the base image to compare with [default: the nearest tagged image in its history]"},
        {"name": "json", "long": "json", "type": str, "default": "", "help": "also write the report as JSON here"},
        {"name": "no_trunc", "long": "no-trunc", "type": bool, "default": False,
         "help": "do not shorten instructions"},
    )

    def parse_execute(self, in_args):
        # doit's parser stops at the first word that is not an option: accept
        # `doit layers IMAGE --json FILE` as well as `doit layers --json FILE IMAGE`.
        if in_args and not in_args[0].startswith("-"):
            in_args = in_args[1:] + in_args[:1]
        return super().parse_execute(in_args)

    @ui.stdout_pipe_safe
    def execute(self, params, args):
        if len(args) != 1:
            print("usage: doit layers IMAGE [--base IMAGE] [--json FILE]", file=sys.stderr)
            return DEFINITION_ERROR
        try:
            report = layer_report(engine.get(engine.default_host()), args[0], params["base"] or None)
        except StepFailed as err:
            print("layers: %s" % err, file=sys.stderr)
            return 1
        sys.stdout.write(format_layers(report, truncate=not params["no_trunc"]))
        if params["json"]:
            write_atomic(params["json"], (json.dumps(report, indent=2) + "\n").encode())
            print("report written to %s" % params["json"])
        return 0


def layer_report(daemon, image_ref, base_ref=None):
    """docker history of `image_ref`, its base's share, and the dangling images, as plain data."""
    image = daemon.inspect_image(image_ref)
    if image is None:
        raise StepFailed("the engine %s has no image %s" % (daemon.host, image_ref))
    history = _history(daemon, image_ref)
    if base_ref is None:  # the nearest tagged image below the top, as docker history lists it
        base_ref = next((entry["tags"][0] for entry in history[1:] if entry["tags"]), None) \
            or _base_by_layers(daemon, image)
    base = daemon.inspect_image(base_ref) if base_ref else None
    if base_ref and base is None:
        raise StepFailed("the engine %s has no base image %s" % (daemon.host, base_ref))
    shared_entries = shared_layers = shared_size = 0
    if base is not None:
        base_history = _history(daemon, base["Id"])
        for mine, theirs in zip(reversed(history), reversed(base_history)):
            if (mine["created"], mine["created_by"], mine["size"]) != \
                    (theirs["created"], theirs["created_by"], theirs["size"]):
                break
            shared_entries += 1
        image_layers, base_layers = image["RootFS"].get("Layers", []), base["RootFS"].get("Layers", [])
        while shared_layers < min(len(image_layers), len(base_layers)) \
                and image_layers[shared_layers] == base_layers[shared_layers]:
            shared_layers += 1
        shared_size = base["Size"] if shared_layers == len(base_layers) else \
            sum(entry["size"] for entry in history[len(history) - shared_entries:])
    for index, entry in enumerate(history):
        entry["from_base"] = index >= len(history) - shared_entries
    dangling = daemon.images("list dangling images", filters={"dangling": True})
    dangling = [{"id": d["Id"], "created": _iso(d["Created"]), "size": d["Size"]} for d in dangling]
    return {
        "image": image_ref, "id": image["Id"], "total_size": image["Size"],
        "layers": len(image["RootFS"].get("Layers", [])),
        "base": {"image": base_ref, "id": base["Id"], "size": base["Size"]} if base else None,
        "shared_entries": shared_entries, "shared_layers": shared_layers, "shared_size": shared_size,
        "own_size": image["Size"] - shared_size,
        "history": history,
        "dangling": dangling, "dangling_size": sum(d["size"] for d in dangling),
    }


def _base_by_layers(daemon, image):
    """The tagged image whose layers begin this image's, the most of them, or None. An
    image BuildKit built has no parent and left no intermediate images, so docker
    history names no tag below it. One inspect per tagged image no larger than it,
    largest first, until one fits."""
    layers = image["RootFS"].get("Layers", [])
    candidates = sorted((listed for listed in daemon.images("list images to find a base")
                         if listed["Id"] != image["Id"] and listed["Size"] <= image["Size"]
                         and any(tag != "<none>:<none>" for tag in listed.get("RepoTags") or [])),
                        key=lambda listed: listed["Size"], reverse=True)
    for listed in candidates:
        theirs = (daemon.inspect_image(listed["Id"]) or {}).get("RootFS", {}).get("Layers", [])
        if theirs and layers[:len(theirs)] == theirs:
            return next(tag for tag in listed["RepoTags"] if tag != "<none>:<none>")
    return None


def _history(daemon, ref):
    entries = daemon.history("history of %s" % ref, ref)
    if entries is None:
        raise StepFailed("no image %s in the engine %s" % (ref, daemon.host))
    return [{"id": e["Id"] if e["Id"] != "<missing>" else None, "created": _iso(e["Created"]),
             "created_by": e.get("CreatedBy", ""), "size": e.get("Size", 0), "comment": e.get("Comment", ""),
             "tags": [t for t in (e.get("Tags") or []) if t != "<none>:<none>"]} for e in entries]


def _iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cli_size(count):
    """As `docker history` and `docker images` print a size: 476kB."""
    return human_size(count, between="")


def format_layers(report, truncate=True):
    def short(text, width=45):
        text = " ".join(text.split())
        return text if not truncate or len(text) <= width else text[:width - 1] + "…"

    base = report["base"]
    lines = ["%s (%s): %d history entries, %d layers, %s" % (
        report["image"], report["id"][7:19], len(report["history"]), report["layers"],
        _cli_size(report["total_size"])),
        "%-12s  %-20s  %-45s  %8s  %s" % ("IMAGE", "CREATED", "CREATED BY", "SIZE", "")]
    for entry in report["history"]:
        lines.append("%-12s  %-20s  %-45s  %8s  %s" % (
            entry["id"][7:19] if entry["id"] else "<missing>", entry["created"], short(entry["created_by"]),
            _cli_size(entry["size"]), "base" if entry["from_base"] else ""))
    if base:
        lines.append("total %s: %s own, %s shared with base %s (%d of %d entries, %d of %d layers)" % (
            _cli_size(report["total_size"]), _cli_size(report["own_size"]), _cli_size(report["shared_size"]),
            base["image"], report["shared_entries"], len(report["history"]), report["shared_layers"],
            report["layers"]))
    else:
        lines.append("total %s; no base image found (imported, or pulled without its base; "
                     "name one with --base)" % _cli_size(report["total_size"]))
    lines.append("dangling images (<none>:<none>): %d, %s%s" % (
        len(report["dangling"]), _cli_size(report["dangling_size"]),
        "; `doit prune dry_run=true` shows what a prune would free" if report["dangling"] else ""))
    largest = sorted(report["dangling"], key=lambda item: -item["size"])
    for item in largest[:DANGLING_SHOWN]:
        lines.append("  %-12s  %-20s  %8s" % (item["id"][7:19], item["created"], _cli_size(item["size"])))
    if len(largest) > DANGLING_SHOWN:
        lines.append("  ... %d more (all of them in --json)" % (len(largest) - DANGLING_SHOWN))
    return "\n".join(lines) + "\n"
