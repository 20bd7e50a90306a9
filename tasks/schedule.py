"""Run workflow steps on their own: a step's `schedule: "30 3 * * *"` as a crontab
entry or a systemd timer + service pair.

    python -m tasks.schedule install [STEP...] --via cron|systemd
    python -m tasks.schedule show    [STEP...] --via cron|systemd
    python -m tasks.schedule remove  [STEP...] --via cron|systemd

run from the project folder (or --project DIR). Each entry runs `python -m doit STEP`
from the project folder with DOCKFLOW_LOG_FILE=.dockflow/logs/STEP.log (tasks/ui.py
rotates it at 10 MB and keeps 5), and the DOCKER_HOST and PYTHONPATH of the
install, so the scheduled run sees what `doit STEP` sees now.

cron: the user's crontab is read with `crontab -l` and written back whole with
`crontab -` (argument lists, no shell), keeping every other entry; ours are the
line after a `# dockflow <project> <step>` marker. A cron command line is a shell
line by nature: every value in it is quoted with shlex.quote and `%` escaped.
--crontab-file FILE edits a file instead (written atomically), e.g. for tests.

systemd: dockflow-<project>-<hash>-<step>.service (Type=oneshot) and .timer
(OnCalendar from the cron fields, Persistent=true) in /etc/systemd/system for
root, else ~/.config/systemd/user, or --unit-dir DIR; then `systemctl daemon-reload`
and `enable --now` the timer where systemd runs (--no-activate: only the files).
"""
import argparse
import hashlib
import os
import re
import shlex
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
MARKER = "# dockflow %s %s (written by python -m tasks.schedule; `remove` deletes it)"


class CronExpression:
    """Five cron fields, each a sorted list of values or None for `*`."""

    def __init__(self, text):
        self.text = text.strip()
        fields = ALIASES.get(self.text, self.text).split()
        if len(fields) != 5:
            raise ValueError("%r: a cron schedule has 5 fields (minute hour day-of-month month "
                             "day-of-week) or is one of %s" % (text, ", ".join(sorted(ALIASES))))
        self.fields = [_field_values(value, *spec) for value, spec in zip(fields, FIELDS)]
        if self.fields[4] is not None:
            self.fields[4] = sorted({day % 7 for day in self.fields[4]})

    def on_calendar(self):
        """systemd OnCalendar= values. Cron runs when the day of month OR the day of
        week matches if both are restricted; systemd wants both, hence two values."""
        minute, hour, dom, month, dow = self.fields
        clock = "%s:%s:00" % (_join(hour), _join(minute))
        month_part = _join(month)
        if dom is not None and dow is not None:
            return ["*-%s-%s %s" % (month_part, _join(dom), clock),
                    "%s *-%s-* %s" % (",".join(SYSTEMD_DAYS[d] for d in dow), month_part, clock)]
        day_names = ",".join(SYSTEMD_DAYS[d] for d in dow) + " " if dow is not None else ""
        return ["%s*-%s-%s %s" % (day_names, month_part, _join(dom), clock)]


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
        else:
            start = _number(start_text, name, low, high, names)
            end = _number(end_text, name, low, high, names) if end_text else (high if step_text else start)
        step = int(step_text) if step_text else 1
        if step == 0 or end < start:
            raise ValueError("%s field %r: empty range" % (name, text))
        values.update(range(start, end + 1, step))
    return sorted(values)


def _number(text, name, low, high, names):
    if names and text.lower()[:3] in names and not text.isdigit():
        return names.index(text.lower()[:3]) + low
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError("%s %r is not in %d-%d" % (name, text, low, high))
    return int(text)


def _join(values):
    return "*" if values is None else ",".join("%02d" % v for v in values)


class Entry:
    """One scheduled step of one project: what runs, when, with which log."""

    def __init__(self, project_dir, step_name, schedule, log_dir=None, env=None):
        self.project_dir = os.path.abspath(project_dir)
        self.step = step_name
        self.cron = CronExpression(schedule)
        log_dir = log_dir or os.path.join(self.project_dir, ".dockflow", "logs")
        self.log_file = os.path.join(os.path.abspath(log_dir), step_name + ".log")
        env = os.environ if env is None else env
        self.env = {"DOCKFLOW_LOG_FILE": self.log_file}
        for name in ("DOCKER_HOST", "PYTHONPATH"):
            if env.get(name):
                self.env[name] = env[name]
        self.argv = [sys.executable, "-m", "doit", step_name]

    @property
    def unit(self):
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(self.project_dir)) or "project"
        digest = hashlib.sha256(self.project_dir.encode()).hexdigest()[:8]
        return "dockflow-%s-%s-%s" % (base, digest, self.step)

    def marker(self):
        return MARKER % (self.project_dir, self.step)

    def cron_line(self):
        words = ["cd", shlex.quote(self.project_dir), "&&"]
        words += ["%s=%s" % (name, shlex.quote(value)) for name, value in sorted(self.env.items())]
        words += [shlex.quote(arg) for arg in self.argv] + [">/dev/null"]
        # `%` ends a cron command (the rest is stdin) unless escaped.
        return "%s %s" % (self.cron.text, " ".join(words).replace("%", "\\%"))

    def service_text(self):
        lines = ["[Unit]", "Description=dockflow: %s of %s" % (self.step, _unit_escape(self.project_dir)),
                 "", "[Service]", "Type=oneshot",
                 "WorkingDirectory=%s" % _unit_quote(self.project_dir)]
        lines += ["Environment=%s" % _unit_quote("%s=%s" % item) for item in sorted(self.env.items())]
        lines += ["ExecStart=%s" % " ".join(_unit_quote(arg) for arg in self.argv), ""]
        return "\n".join(lines)

    def timer_text(self):
        lines = ["[Unit]", "Description=dockflow: %s of %s, %s" % (self.step, _unit_escape(self.project_dir),
                                                                    _unit_escape(self.cron.text)),
                 "", "[Timer]"]
        lines += ["OnCalendar=%s" % value for value in self.cron.on_calendar()]
        lines += ["Persistent=true", "Unit=%s.service" % self.unit, "", "[Install]", "WantedBy=timers.target", ""]
        return "\n".join(lines)


def _unit_escape(text):
    return text.replace("%", "%%").replace("$", "$$")


def _unit_quote(text):
    text = _unit_escape(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"%s"' % text if re.search(r'[\s"\'\\;]', text) or not text else text


# --- reading the project ------------------------------------------------------
def scheduled_entries(project_dir, names=(), log_dir=None):
    """Entries of the project's steps that carry `schedule`; WorkflowError on bad ones."""
    from . import plan

    all_steps = plan.load(project_dir)
    problems, entries = [], []
    for name in names:
        if name not in all_steps:
            problems.append("no step %r in %s/workflows" % (name, project_dir))
        elif "schedule" not in all_steps[name].spec:
            problems.append("%s: step %r has no schedule" % (all_steps[name].where(), name))
    for name, step in sorted(all_steps.items()):
        if "schedule" not in step.spec or (names and name not in names):
            continue
        try:
            entries.append(Entry(project_dir, name, step.spec["schedule"], log_dir))
        except ValueError as err:
            problems.append("%s: %s" % (step.where("schedule"), err))
    if problems:
        raise WorkflowError(problems)
    return entries


# --- cron -----------------------------------------------------------------------
class Crontab:
    """The user's crontab (`crontab -l` / `crontab -`), or a file given for it."""

    def __init__(self, path=None):
        self.path = path

    def read(self):
        if self.path:
            try:
                with open(self.path, encoding="utf-8") as handle:
                    return handle.read().splitlines()
            except FileNotFoundError:
                return []
        done = subprocess.run([self._crontab(), "-l"], capture_output=True, text=True)
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
        done = subprocess.run([self._crontab(), "-"], input=text, capture_output=True, text=True)
        if done.returncode != 0:
            raise StepFailed("crontab - refused the new crontab: %s" % done.stderr.strip())

    @staticmethod
    def _crontab():
        found = shutil.which("crontab")
        if not found:
            raise StepFailed("crontab is not installed (apt-get install cron), or use --via systemd")
        return found


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
    parser = argparse.ArgumentParser(prog="python -m tasks.schedule", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["install", "show", "remove"])
    parser.add_argument("steps", nargs="*", help="steps to act on (default: every step with a schedule)")
    parser.add_argument("--via", choices=["cron", "systemd"], required=True)
    parser.add_argument("--project", default=os.getcwd(), help="project folder (default: the current one)")
    parser.add_argument("--log-dir", help="folder of the rotating logs (default: PROJECT/.dockflow/logs)")
    parser.add_argument("--crontab-file", help="edit this file instead of the user's crontab")
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
    crontab = Crontab(options.crontab_file)
    where = options.crontab_file or "the crontab"
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
