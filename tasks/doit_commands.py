"""doit's own commands, kept to the conventions of dockflow's: no traceback for a
misspelt step or a closed pipe, and answers in terms of steps.

    doit info STEP        why it would run; an unknown name gets a did-you-mean
    doit list | head -1   ends quietly (exit 141), as a run does
    doit help STEP        the step's fields and the name=value variables it reads, with values
    doit clean STEP ...   removes what the steps made, with prune's protections (tasks/clean.py)
    doit dumpdb           reads dockflow's sqlite3 state file, .dockflow/doit.sqlite3
    doit tabcompletion    a zsh script that zsh accepts, whatever the docs hold

They subclass doit's and are named in the same `[tool.doit.plugins.command]` table
as validate and plan; a project without that table gets doit's own.
"""
import copy
import json
import os
import pprint
import sqlite3
import sys

from doit import cmd_clean, cmd_completion, cmd_dumpdb, cmd_help, cmd_info, cmd_list
from doit.exceptions import InvalidCommand

from . import ui

STATE_FILE = os.path.join(".dockflow", "doit.sqlite3")  # DOIT_CONFIG's dep_file (tasks/dodo.py)
SQLITE_HEADER = b"SQLite format 3\x00"


class HelpOption:
    """`doit COMMAND --help` (or -h) prints what `doit help COMMAND` prints: doit's
    parser knows no such option and would stop with a parse error."""

    def parse_execute(self, in_args):
        if "--help" in in_args or "-h" in in_args:
            return self._print_help()
        return super().parse_execute(in_args)

    @ui.stdout_pipe_safe
    def _print_help(self):
        print(self.help())
        return 0


def step_names():
    """The steps dodo.py gave doit in this process (none when it is not dockflow's)."""
    from . import doit_tasks

    return doit_tasks.loaded_steps()[0]


def refuse_unknown(name, tasks):
    """InvalidCommand for a name that is no task: doit prints it as one line, exit 3."""
    from .workflow import did_you_mean

    if name not in tasks:
        raise InvalidCommand("'%s' is not a step%s" % (name, did_you_mean(name, tasks)))


# --- info -----------------------------------------------------------------------
class Info(HelpOption, cmd_info.Info):
    @ui.stdout_pipe_safe
    def _execute(self, pos_args, hide_status=False):
        if len(pos_args) == 1:
            refuse_unknown(pos_args[0], {task.name for task in self.task_list})
        return super()._execute(pos_args, hide_status)

    @staticmethod
    def get_reasons(reasons):
        """doit's reasons, with each failing up-to-date check said in words: prune's
        `[False]` is "runs every time", a step's check says why it would run."""
        checks = reasons.get("uptodate_false") or []
        others = copy.copy(reasons)  # doit's defaultdict: every other reason it knows
        others["uptodate_false"] = []
        text = cmd_info.Info.get_reasons(others)
        if not checks:
            return text
        lines = [" * Not up to date:"]
        for check, _args, _kwargs in checks:
            lines.append("    - %s" % ("runs every time (this kind of step is never up to date)"
                                      if check is False else check))
        return "\n".join([text] + lines if text else lines)


# --- list -----------------------------------------------------------------------
class List(HelpOption, cmd_list.List):
    @ui.stdout_pipe_safe
    def _execute(self, subtasks=False, quiet=True, status=False, private=False,
                 list_deps=False, template=None, sort="name", pos_args=None):
        # doit passes options by the names of this signature: it is doit's own
        tasks = {task.name for task in self.task_list}
        for name in pos_args or []:
            refuse_unknown(name, tasks)
        return super()._execute(subtasks, quiet, status, private, list_deps, template, sort, pos_args)


# --- help -----------------------------------------------------------------------
class Help(HelpOption, cmd_help.Help):
    @ui.stdout_pipe_safe
    def execute(self, params, args):
        return super().execute(params, args)

    def _execute(self, pos_args):
        steps = step_names()
        name = pos_args[0]
        if name not in steps:
            if steps:  # dockflow's dodo.py: a near miss is a misspelt step
                refuse_unknown(name, set(steps) | set(self.cmds))
            return super()._execute(pos_args)
        sys.stdout.write(describe_step(steps[name]))
        return True


def describe_step(step):
    """`doit help STEP`: its doc, where it is, its fields as written (with the value a
    field has now when it holds variables), and the variables it reads."""
    from . import steps, variables

    lines = ["%s  %s" % (step.name, step.doc or "%s step" % step.kind), "",
             "defined at %s" % step.where().split(": ")[0]]
    width = max(len(field) for field in step.spec)
    for field, written in step.spec.items():
        if field == "doc":
            continue
        lines.append("  %-*s  %s" % (width, field, _shown(written)))
        if variables.names_in_value(written):
            lines.append("  %-*s  = %s" % (width, "", _now(step, lambda: step.get(field))))
    names = sorted(set(variables.names_in_value(step.definition())))
    switches = steps.module_for(step.kind).COMMAND_LINE_SWITCHES
    if names or switches:
        lines += ["", "variables it reads (change one for a run: doit %s NAME=VALUE):" % step.name]
        flow_vars = step.workflow.variables
        for var in names:
            lines.append("  %s = %s  (%s)" % (var, _now(step, lambda: flow_vars.get(var)),
                                             _source(flow_vars, var)))
        for switch in switches:
            given = flow_vars.override(switch)
            lines.append("  %s = %s  (%s)" % (switch, given if given is not None else step.get(switch, "false"),
                                             "the command line" if given is not None else "the step"))
    else:
        lines += ["", "it reads no variables"]
    return "\n".join(lines) + "\n"


def _shown(value):
    return value if isinstance(value, str) else json.dumps(value)


def _now(step, read):
    """A value as the run would read it now, or why it cannot be read."""
    from .errors import StepFailed

    try:
        return _shown(read())
    except StepFailed as err:
        return "(cannot be read now: %s)" % err


def _source(flow_vars, name):
    """Where a variable's value comes from, in the words of its declaration."""
    if flow_vars.override(name) is not None:
        return "the command line"
    declared = flow_vars.declared.get(name)
    if isinstance(declared, dict):
        for key in ("env", "file", "git"):
            if key in declared:
                return "%s %s%s" % (key, declared[key], ", default %s" % declared["default"]
                                    if "default" in declared else "")
    return "the workflow file"


# --- clean ----------------------------------------------------------------------
class Clean(HelpOption, cmd_clean.Clean):
    doc_purpose = "remove what steps made (images, tars, copied files); -n lists it first"
    doc_usage = "[-n] STEP ... | --clean-all"
    doc_description = ("Each named step's images are untagged (an image goes when it has no other name, "
                       "as docker rmi does) and its files removed. Kept, with the reason: an image or file "
                       "a step not being cleaned still reads, an image with the keep label, an image a "
                       "container uses. -c adds the steps they need; -a cleans every step. "
                       "`doit clean` alone cleans nothing: name the steps.")

    @ui.stdout_pipe_safe
    def _execute(self, dryrun, cleandep, cleanall, cleanforget, pos_args=None):
        if not pos_args and not cleanall and step_names():
            raise InvalidCommand("doit clean removes images and files: name the steps "
                                 "(doit clean -n STEP lists what would go), or give --clean-all")
        tasks = {task.name for task in self.task_list}
        for name in pos_args or []:
            if "*" not in name:
                refuse_unknown(name, tasks)
        self.failures = 0
        super()._execute(dryrun, cleandep, cleanall, cleanforget, pos_args)
        return 1 if self.failures else 0

    def clean_tasks(self, tasks, dryrun, cleanforget):
        from . import clean

        steps = step_names()
        chosen = [steps[task.name] for task in tasks if task.name in steps]
        self.failures = clean.clean_steps(chosen, steps, dryrun, self.outstream)
        if cleanforget and not dryrun:
            for step in chosen:
                self.dep_manager.remove(step.name)
        super().clean_tasks([task for task in tasks if task.name not in steps], dryrun, cleanforget)


# --- dumpdb ---------------------------------------------------------------------
class DumpDB(HelpOption, cmd_dumpdb.DumpDB):
    doc_description = ("Prints each step's record in doit's state file. dockflow keeps it in %s (sqlite3); "
                       "the same by hand: sqlite3 %s 'select task_id, task_data from doit'"
                       % (STATE_FILE, STATE_FILE))

    @ui.stdout_pipe_safe
    def execute(self, opt_values, pos_args):
        dep_file = opt_values["dep_file"]
        if not os.path.exists(dep_file) and dep_file == cmd_dumpdb.opt_depfile["default"]:
            dep_file = STATE_FILE  # no --db-file given: dockflow's, not doit's default
        if not os.path.exists(dep_file):
            raise InvalidCommand("no state file %s: no step has run in this folder yet" % dep_file)
        with open(dep_file, "rb") as handle:
            is_sqlite = handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
        if not is_sqlite:
            return super().execute(dict(opt_values, dep_file=dep_file), pos_args)
        print("%s: sqlite3 (read by hand: sqlite3 %s 'select task_id, task_data from doit')" % (dep_file, dep_file))
        for task_id, task_data in read_sqlite_state(dep_file):
            print("%s -> %s" % (task_id, pprint.pformat(json.loads(task_data), indent=4, width=100)))
        return 0


def read_sqlite_state(path):
    """(task name, its JSON record) of doit's sqlite3 backend, by name; read only."""
    connection = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return connection.execute("select task_id, task_data from doit order by task_id").fetchall()
    except sqlite3.DatabaseError as err:
        raise InvalidCommand("%s: not doit's state file (%s)" % (path, err)) from None
    finally:
        connection.close()


# --- tabcompletion --------------------------------------------------------------
class TabCompletion(HelpOption, cmd_completion.TabCompletion):
    """doit writes every description into zsh quotes as it is: an apostrophe in a doc
    ends the quote (`zsh -n` rejects the script) and a backquote in an option's help
    would run as a command each time the user presses Tab."""

    @ui.stdout_pipe_safe
    def execute(self, opt_values, pos_args):
        return super().execute(opt_values, pos_args)

    def _generate_zsh(self, opt_values, pos_args):
        quoted = {name: _with_doc(cls, _zsh_single_quoted(cls.doc_purpose)) for name, cls in self.cmds.items()}
        real_cmds, self.cmds = self.cmds, quoted
        real_load = self.loader.load_tasks
        self.loader.load_tasks = lambda *args, **kwargs: [
            _with_task_doc(task) for task in real_load(*args, **kwargs)]
        try:
            return super()._generate_zsh(opt_values, pos_args)
        finally:
            self.cmds = real_cmds
            self.loader.load_tasks = real_load

    @staticmethod
    def _zsh_arg_line(opt):
        # doit puts an option's help in double quotes: $ and ` would expand there.
        opt = copy.copy(opt)
        for char in ("\\", "$", "`"):
            opt.help = opt.help.replace(char, "\\" + char)
        return cmd_completion.TabCompletion._zsh_arg_line(opt)


def _zsh_single_quoted(text):
    """Text for inside '...' in zsh: a quote closes, is written escaped, and reopens."""
    return (text or "").replace("'", "'\\''")


def _with_doc(cls, doc_purpose):
    return type(cls.__name__, (cls,), {"doc_purpose": doc_purpose})


def _with_task_doc(task):
    task.doc = _zsh_single_quoted(task.doc)
    return task
