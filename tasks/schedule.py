"""Run workflow steps on their own: a step's `schedule: "30 3 * * *"` as a crontab
entry or a systemd timer + service pair.

    python -m tasks.schedule install [STEP...] --via cron|systemd
    python -m tasks.schedule show    [STEP...] --via cron|systemd
    python -m tasks.schedule remove  [STEP...] --via cron|systemd

run from the project folder (or --project DIR). Each entry is one sh line: from the
project folder, `PYTHON -m doit STEP` with DOCKFLOW_LOG_FILE=.dockflow/logs/STEP.log
(tasks/ui.py rotates it at 10 MB and keeps 5) and its stderr appended to that log, so
a failed run's FAILED line and any Python or doit error are in it. PYTHON is the
project's `.venv/bin/python` when there is one, else the interpreter of the install.
The engine settings of the install (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH,
DOCKER_CONTEXT, DOCKER_CONFIG) and its PYTHONPATH go with it, so the scheduled run
sees what `doit STEP` sees now.

cron: the user's crontab is read with `crontab -l` and written back whole with
`crontab -` (argument lists, no shell), keeping every other entry; ours are the
line after a `# dockflow <project> <step>` marker. A cron command line is a shell
line by nature: every value in it is quoted with shlex.quote and `%` escaped, and
no value written may hold a control character (a newline would start an entry of
its own). --crontab-file FILE edits a file instead (written atomically), e.g. for
tests; --crontab-user USER (root only) edits USER's crontab.

systemd: dockflow-<project>-<hash>-<step>.service (Type=oneshot, after docker.service)
and .timer (OnCalendar from the cron fields, Persistent=true) in /etc/systemd/system
for root, else ~/.config/systemd/user, or --unit-dir DIR; then `systemctl
daemon-reload` and `enable --now` the timer where systemd runs (--no-activate: only
the files). The service runs the same sh line as cron.

The schedule check here (schedule_problems) is also the one `doit validate` and every
doit run make: what validate accepts, install accepts.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys

from .errors import StepFailed, WorkflowError
from .files import write_atomic

ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
SYSTEMD_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
# name, lowest, highest, names (index 0 = lowest)
FIELDS = [("minute", 0, 59, None), ("hour", 0, 23, None), ("day of month", 1, 31, None),
          ("month", 1, 12, MONTHS), ("day of week", 0, 7, DAYS)]
DAY_OF_MONTH, DAY_OF_WEEK = 2, 4
MARKER = "# dockflow %s %s (written by python -m tasks.schedule; `remove` deletes it)"
# What a scheduled run takes from the install: the engine as the docker CLI and the SDK
# choose it (host, TLS, context, config folder), and where Python finds `tasks`.
CARRIED_ENV = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT", "DOCKER_CONFIG",
               "PYTHONPATH")
# Their paths are made absolute: the scheduled run starts in the project folder, not
# in the folder the install ran from.
FOLDER_ENV = ("DOCKER_CERT_PATH", "DOCKER_CONFIG")
SEARCH_PATH_ENV = ("PYTHONPATH",)
# The schema's step-name pattern, matched as a whole: `$` would let "prune\n" through.
STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
FIELD_SEPARATOR = re.compile(r"[ \t]+")  # what cron itself splits fields on


class CronExpression:
    """Five cron fields, each a sorted list of values or None for every value, read as
    Debian's cron (vixie cron 3.0pl1) reads them; ValueError for what it would refuse."""

    def __init__(self, text):
        if not isinstance(text, str):
            raise ValueError("%r: a schedule is a string of cron fields, e.g. \"30 3 * * *\"" % (text,))
        if "${" in text:
            raise ValueError("%r: a schedule cannot use ${variables}: it is written into the crontab "
                             "or the timer as it stands" % text)
        if CONTROL_CHARACTER.search(text.replace("\t", " ")):
            raise ValueError("%r: a control character in a schedule (a newline would start another "
                             "crontab line)" % text)
        words = FIELD_SEPARATOR.split(text.strip(" \t"))
        self.text = words[0] if len(words) == 1 and words[0] in ALIASES else " ".join(words)
        fields = ALIASES.get(self.text, self.text).split(" ")
        if len(fields) != 5:
            raise ValueError("%r: a cron schedule has 5 fields (minute hour day-of-month month "
                             "day-of-week) or is one of %s" % (text, ", ".join(sorted(ALIASES))))
        self.fields = [_field_values(value, *spec) for value, spec in zip(fields, FIELDS)]
        if self.fields[DAY_OF_WEEK] is not None:
            self.fields[DAY_OF_WEEK] = _all_or_values({day % 7 for day in self.fields[DAY_OF_WEEK]}, 7)
        # cron.c (find_jobs): when either day field starts with `*` (even `*/2`), a day must
        # match both; when neither does, either one.
        self.either_day = not fields[DAY_OF_MONTH].startswith("*") and not fields[DAY_OF_WEEK].startswith("*")

    def on_calendar(self):
        """systemd OnCalendar= values, one per alternative: systemd matches a value's
        weekday AND its date, so cron's either-day rule takes two values."""
        minute, hour, dom, month, dow = self.fields
        clock = "%s:%s:00" % (_join(hour), _join(minute))
        if not self.either_day:
            return [_calendar(dow, month, dom, clock)]
        if dom is None or dow is None:  # either day, and one of them is every day
            return [_calendar(None, month, None, clock)]
        return [_calendar(None, month, dom, clock), _calendar(dow, month, None, clock)]


def _calendar(dow, month, dom, clock):
    weekdays = ",".join(SYSTEMD_DAYS[day] for day in dow) + " " if dow is not None else ""
    return "%s*-%s-%s %s" % (weekdays, _join(month), _join(dom), clock)


def _field_values(text, name, low, high, names):
    if text == "*":
        return None
    values = set()
    for item in text.split(","):
        match = re.fullmatch(r"(\*|[0-9a-zA-Z]+)(?:-([0-9a-zA-Z]+))?(?:/([0-9]+))?", item)
        if not match:
            raise ValueError("%s field %r: not a cron value" % (name, text))
        start_text, end_text, step_text = match.groups()
        if start_text == "*":
            if end_text:
                raise ValueError("%s field %r: `*` cannot start a range" % (name, text))
            start, end = low, high
        elif step_text and not end_text:
            raise ValueError("%s field %r: a step (/%s) follows a range or `*` (cron refuses %s)"
                             % (name, text, step_text, item))
        else:
            start = _number(start_text, name, low, high, names)
            end = _number(end_text, name, low, high, names) if end_text else start
        step = int(step_text) if step_text else 1
        if step == 0:
            raise ValueError("%s field %r: a step of 0" % (name, text))
        if end < start:
            raise ValueError("%s field %r: the range %s runs backwards" % (name, text, item))
        values.update(range(start, end + 1, step))
    return _all_or_values(values, high - low + 1)


def _all_or_values(values, count):
    """None when the values are every value of the field (`*/1`, `0-59`): written `*`."""
    return None if len(values) == count else sorted(values)


def _number(text, name, low, high, names):
    if names and text.lower() in names:  # cron takes the three-letter names only
        return names.index(text.lower()) + low
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError("%s %r is not in %d-%d%s" % (name, text, low, high,
                                                     " or one of %s" % ", ".join(names) if names else ""))
    return int(text)


def _join(values):
    return "*" if values is None else ",".join("%02d" % v for v in values)


def schedule_problems(all_steps):
    """`file:line:col: steps.NAME.schedule: ...` for each step whose schedule cron or
    systemd could not take: the one check of `doit validate`, of doit's loading of the
    workflows and of `install`."""
    problems = []
    for name, step in all_steps.items():  # in file and line order
        if "schedule" not in step.spec:
            continue
        if not STEP_NAME.fullmatch(name):
            problems.append("%s: step name %r cannot be scheduled: letters, digits, `_`, `.`, `-` only"
                            % (step.where(), name))
            continue
        try:
            CronExpression(step.spec["schedule"])
        except ValueError as err:
            problems.append("%s: %s" % (step.where("schedule"), err))
    return problems


def project_python(project_dir):
    """The interpreter of scheduled runs: the project's own environment (`.venv/`, which
    bootstrap makes) when it has one, else the one running this install. Not resolved:
    a venv's python is a symlink, and only called by that name does it use the venv."""
    venv_python = os.path.join(project_dir, ".venv", "bin", "python")
    if os.access(venv_python, os.X_OK):
        return venv_python
    return sys.executable


def carried_env(env):
    """The variables of CARRIED_ENV that `env` sets, paths made absolute."""
    carried = {}
    for name in CARRIED_ENV:
        value = env.get(name)
        if not value:
            continue
        if name in FOLDER_ENV:
            value = os.path.abspath(value)
        elif name in SEARCH_PATH_ENV:
            value = os.pathsep.join(os.path.abspath(part) for part in value.split(os.pathsep))
        carried[name] = value
    return carried


class Entry:
    """One scheduled step of one project: what runs, when, with which log."""

    def __init__(self, project_dir, step_name, schedule, log_dir=None, env=None, python=None):
        self.project_dir = os.path.abspath(project_dir)
        self.step = step_name
        self.cron = CronExpression(schedule)
        self.log_dir = os.path.abspath(log_dir or os.path.join(self.project_dir, ".dockflow", "logs"))
        self.log_file = os.path.join(self.log_dir, step_name + ".log")
        self.env = carried_env(os.environ if env is None else env)
        self.env["DOCKFLOW_LOG_FILE"] = self.log_file
        self.argv = [python or project_python(self.project_dir), "-m", "doit", step_name]
        for what, value in self._written_values():
            if CONTROL_CHARACTER.search(value):
                raise ValueError("the %s %r holds a control character: written into a crontab line or a "
                                 "unit file, a newline would start an entry of its own" % (what, value))

    def _written_values(self):
        yield "project folder", self.project_dir
        yield "step name", self.step
        yield "log folder", self.log_dir
        yield "python", self.argv[0]
        for name, value in self.env.items():
            yield "value of %s" % name, value

    @property
    def unit(self):
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(self.project_dir)) or "project"
        digest = hashlib.sha256(self.project_dir.encode()).hexdigest()[:8]
        return "dockflow-%s-%s-%s" % (base, digest, self.step)

    def marker(self):
        return MARKER % (self.project_dir, self.step)

    def command(self, with_env=True):
        """The sh line both cron and the service run. ui.py's log sink writes every line
        of the run to the log itself, so stdout (the same lines) goes nowhere; stderr is
        appended to the log: doit's FAILED line, and whatever fails before the log
        sink exists (a missing module, a broken dodo.py); a run that rotates the log
        leaves the rest of its stderr in the rotated file. The log folder is made first,
        because `2>>` into a missing folder would stop the line before the run."""
        import shlex  # here: doit's loading of a project with a schedule imports this module

        words = ["cd", shlex.quote(self.project_dir), "&&", "mkdir", "-p", shlex.quote(self.log_dir), "&&"]
        if with_env:
            words += ["%s=%s" % (name, shlex.quote(value)) for name, value in sorted(self.env.items())]
        words += ["exec"] + [shlex.quote(arg) for arg in self.argv]
        words += [">/dev/null", "2>>%s" % shlex.quote(self.log_file)]
        return " ".join(words)

    def cron_line(self):
        # `%` ends a cron command (the rest is stdin) unless escaped.
        return "%s %s" % (self.cron.text, self.command().replace("%", "\\%"))

    def service_text(self):
        # After/Wants: at boot, a timer that missed its time (Persistent=true) fires at
        # once; the local engine must be up first. A Wants= on a unit that does not
        # exist (a remote engine, a user manager) is no error.
        lines = ["[Unit]", "Description=dockflow: %s of %s" % (self.step, _specifier_escape(self.project_dir)),
                 "After=docker.service", "Wants=docker.service",
                 "", "[Service]", "Type=oneshot"]
        lines += ["Environment=%s" % _unit_quote("%s=%s" % item) for item in sorted(self.env.items())]
        # `$` is expanded in ExecStart= alone (not in Environment=, where it stays as written).
        lines += ["ExecStart=/bin/sh -c %s" % _unit_quote(self.command(with_env=False).replace("$", "$$")), ""]
        return "\n".join(lines)

    def timer_text(self):
        lines = ["[Unit]", "Description=dockflow: %s of %s, %s" % (self.step, _specifier_escape(self.project_dir),
                                                                    self.cron.text),
                 "", "[Timer]"]
        lines += ["OnCalendar=%s" % value for value in self.cron.on_calendar()]
        lines += ["Persistent=true", "Unit=%s.service" % self.unit, "", "[Install]", "WantedBy=timers.target", ""]
        return "\n".join(lines)


def _specifier_escape(text):
    return text.replace("%", "%%")


def _unit_quote(text):
    """One word of a unit setting that systemd unquotes (systemd.syntax(7) "Quoting")."""
    text = _specifier_escape(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"%s"' % text if re.search(r'[\s"\'\\;]', text) or not text else text


# --- reading the project ------------------------------------------------------
def scheduled_entries(project_dir, names=(), log_dir=None):
    """Entries of the project's steps that carry `schedule` (of `names` if given):
    WorkflowError on a bad definition, StepFailed on a value no crontab line or unit
    file can hold (a newline in the project folder or in DOCKER_HOST)."""
    from .project import Project  # here: the parser and the schedule check need no workflows

    all_steps = Project.load(project_dir).steps
    problems = []
    for name in names:
        if name not in all_steps:
            problems.append("no step %r in %s/workflows" % (name, project_dir))
        elif "schedule" not in all_steps[name].spec:
            problems.append("%s: step %r has no schedule" % (all_steps[name].where(), name))
    chosen = {name: step for name, step in all_steps.items()
              if "schedule" in step.spec and (not names or name in names)}
    problems += schedule_problems(chosen)
    if problems:
        raise WorkflowError(problems)
    try:
        return [Entry(project_dir, name, step.spec["schedule"], log_dir) for name, step in sorted(chosen.items())]
    except ValueError as err:
        raise StepFailed(str(err)) from None


# --- cron -----------------------------------------------------------------------
class Crontab:
    """The user's crontab (`crontab -l` / `crontab -`), another user's (root only:
    `crontab -u USER`), or a file given for it."""

    def __init__(self, path=None, user=None):
        self.path = path
        self.user = user

    def read(self):
        if self.path:
            try:
                with open(self.path, encoding="utf-8") as handle:
                    return handle.read().splitlines()
            except FileNotFoundError:
                return []
        done = subprocess.run(self._crontab("-l"), capture_output=True, text=True)
        if done.returncode != 0:
            if "no crontab" in done.stderr.lower():
                return []
            raise StepFailed("crontab -l failed: %s" % done.stderr.strip())
        return done.stdout.splitlines()

    def write(self, lines):
        text = "".join(line + "\n" for line in lines)
        if self.path:
            write_atomic(self.path, text.encode())
            return
        done = subprocess.run(self._crontab("-"), input=text, capture_output=True, text=True)
        if done.returncode != 0:
            raise StepFailed("crontab - refused the new crontab: %s" % done.stderr.strip())

    def _crontab(self, *args):
        found = shutil.which("crontab")
        if not found:
            raise StepFailed("crontab is not installed (apt-get install cron), or use --via systemd")
        return [found] + (["-u", self.user] if self.user else []) + list(args)


def cron_without(lines, entries):
    """The crontab lines minus our entries (each a marker line and the line after it)."""
    markers = {entry.marker() for entry in entries}
    kept, skip = [], False
    for line in lines:
        if skip:
            skip = False
            continue
        if line in markers:
            skip = True
            continue
        kept.append(line)
    return kept


def cron_install(crontab, entries):
    lines = cron_without(crontab.read(), entries)
    for entry in entries:
        lines += [entry.marker(), entry.cron_line()]
    crontab.write(lines)


def cron_remove(crontab, entries):
    before = crontab.read()
    after = cron_without(before, entries)
    if after != before:
        crontab.write(after)
    return len(before) - len(after) > 0


def cron_show(crontab, entries):
    lines = crontab.read()
    found = {}
    for index, line in enumerate(lines[:-1]):
        found[line] = lines[index + 1]
    return {entry.step: found.get(entry.marker()) for entry in entries}


# --- systemd --------------------------------------------------------------------
def default_unit_dir():
    if os.geteuid() == 0:
        return "/etc/systemd/system"
    return os.path.join(os.path.expanduser("~"), ".config", "systemd", "user")


def systemctl(unit_dir, *args):
    """Run systemctl for units in unit_dir when systemd is the running init; else False."""
    if not shutil.which("systemctl") or not os.path.isdir("/run/systemd/system"):
        return False
    scope = [] if unit_dir == "/etc/systemd/system" else ["--user"]
    done = subprocess.run(["systemctl", *scope, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise StepFailed("systemctl %s failed: %s" % (" ".join(args), done.stderr.strip()))
    return True


def systemd_install(unit_dir, entries, activate=True):
    os.makedirs(unit_dir, exist_ok=True)
    written = []
    for entry in entries:
        for suffix, text in ((".service", entry.service_text()), (".timer", entry.timer_text())):
            path = os.path.join(unit_dir, entry.unit + suffix)
            write_atomic(path, text.encode())
            written.append(path)
    if activate and systemctl(unit_dir, "daemon-reload"):
        for entry in entries:
            systemctl(unit_dir, "enable", "--now", entry.unit + ".timer")
    return written


def systemd_remove(unit_dir, entries, activate=True):
    removed = []
    for entry in entries:
        if activate and os.path.exists(os.path.join(unit_dir, entry.unit + ".timer")):
            systemctl(unit_dir, "disable", "--now", entry.unit + ".timer")
        for suffix in (".timer", ".service"):
            path = os.path.join(unit_dir, entry.unit + suffix)
            if os.path.exists(path):
                os.unlink(path)
                removed.append(path)
    if removed and activate:
        systemctl(unit_dir, "daemon-reload")
    return removed


# --- command line ---------------------------------------------------------------
def main(argv=None):
    import argparse  # here, not above: a doit run of a project with a schedule imports this module

    parser = argparse.ArgumentParser(prog="python -m tasks.schedule", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["install", "show", "remove"])
    parser.add_argument("steps", nargs="*", help="steps to act on (default: every step with a schedule)")
    parser.add_argument("--via", choices=["cron", "systemd"], required=True)
    parser.add_argument("--project", default=os.getcwd(), help="project folder (default: the current one)")
    parser.add_argument("--log-dir", help="folder of the rotating logs (default: PROJECT/.dockflow/logs)")
    parser.add_argument("--crontab-file", help="edit this file instead of the user's crontab")
    parser.add_argument("--crontab-user", help="edit this user's crontab (root only: crontab -u USER)")
    parser.add_argument("--unit-dir", help="folder of the systemd units (default: %s)" % default_unit_dir())
    parser.add_argument("--no-activate", action="store_true", help="write/remove the unit files only")
    options = parser.parse_args(argv)
    try:
        entries = scheduled_entries(options.project, options.steps, options.log_dir)
        if not entries:
            print("no step in %s/workflows has a schedule" % options.project)
            return 0
        if options.via == "cron":
            return _cron_action(options, entries)
        return _systemd_action(options, entries)
    except WorkflowError as err:
        print(err, file=sys.stderr)
        return 3
    except StepFailed as err:
        print("schedule: %s" % err, file=sys.stderr)
        return 1


def _cron_action(options, entries):
    crontab = Crontab(options.crontab_file, options.crontab_user)
    where = options.crontab_file or ("the crontab of %s" % options.crontab_user if options.crontab_user
                                     else "the crontab")
    if options.action == "install":
        cron_install(crontab, entries)
        for entry in entries:
            print("installed in %s: %s\n  log: %s" % (where, entry.cron_line(), entry.log_file))
    elif options.action == "remove":
        removed = cron_remove(crontab, entries)
        print("removed from %s: %s" % (where, ", ".join(e.step for e in entries)) if removed
              else "nothing of ours in %s" % where)
    else:
        for step, line in cron_show(crontab, entries).items():
            print("%s: %s" % (step, line or "not installed in %s" % where))
    return 0


def _systemd_action(options, entries):
    unit_dir = options.unit_dir or default_unit_dir()
    activate = not options.no_activate
    if options.action == "install":
        for path in systemd_install(unit_dir, entries, activate):
            print("wrote %s" % path)
        for entry in entries:
            print("  %s runs at %s; log: %s" % (entry.unit, "; ".join(entry.cron.on_calendar()), entry.log_file))
        if activate and not os.path.isdir("/run/systemd/system"):
            print("systemd is not running here: enable later with `systemctl enable --now %s.timer`"
                  % entries[0].unit)
    elif options.action == "remove":
        removed = systemd_remove(unit_dir, entries, activate)
        print("\n".join("removed %s" % path for path in removed) or "nothing of ours in %s" % unit_dir)
    else:
        for entry in entries:
            for suffix in (".timer", ".service"):
                path = os.path.join(unit_dir, entry.unit + suffix)
                if os.path.exists(path):
                    with open(path, encoding="utf-8") as handle:
                        print("# %s\n%s" % (path, handle.read()))
                else:
                    print("# %s: not installed" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
