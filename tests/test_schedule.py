"""tasks/schedule.py: a step's `schedule` as a crontab entry or a systemd timer.
The caller's crontab and systemd are never touched: --crontab-file, --unit-dir, and
the real `crontab` binary only for a user the test makes and deletes."""
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid

import pytest

from tasks import schedule
from tasks.errors import StepFailed
from tasks.schedule import ALIASES, DAYS, MONTHS, SYSTEMD_DAYS, CronExpression, Crontab, Entry, cron_without

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRON_FIELD = r"(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*"
CRON_LINE = re.compile(r"^%s( %s){4} \S.*$" % (CRON_FIELD, CRON_FIELD))
FOREIGN = "15 1 * * 1 /usr/local/bin/backup --all"


def scheduled(project, schedule='"30 3 * * *"', extra=""):
    project.workflow("""
        steps:
          prune:
            kind: prune
            schedule: %s
            dry_run: true
        %s""" % (schedule, extra), name="nightly.yaml")


def schedule_cli(project, *args, env=None):
    full_env = dict(os.environ, PYTHONPATH=REPO, DOCKER_HOST=project.docker_host)
    full_env.update(env or {})
    done = subprocess.run([sys.executable, "-m", "tasks.schedule", *args, "--project", project.root],
                          cwd=project.root, env=full_env, capture_output=True, text=True)
    done.output = done.stdout + done.stderr
    return done


CRON_CASES = [
    ("30 3 * * *", ["*-*-* 03:30:00"]),
    ("@daily", ["*-*-* 00:00:00"]),
    ("*/20 8-10 * * mon-fri", ["Mon,Tue,Wed,Thu,Fri *-*-* 08,09,10:00,20,40:00"]),
    ("0 4 1,15 jan,jul *", ["*-01,07-01,15 04:00:00"]),
    ("5 0 * * 7", ["Sun *-*-* 00:05:00"]),
    ("0 12 13 * 5", ["*-*-13 12:00:00", "Fri *-*-* 12:00:00"]),  # cron: the 13th OR a Friday
    # A day field starting with `*` (even `*/2`) makes cron want both days (cron.c find_jobs).
    ("0 0 */2 * 1", ["Mon *-*-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 00:00:00"]),
    ("0 0 13 * */3", ["Sun,Wed,Sat *-*-13 00:00:00"]),
    ("15 6 1-31 * 1", ["*-*-* 06:15:00"]),  # either day, one of them every day: every day
    ("*/1 */1 * * *", ["*-*-* *:*:00"]),
]


@pytest.mark.parametrize("text, expected", CRON_CASES)
def test_cron_to_on_calendar(text, expected):
    assert CronExpression(text).on_calendar() == expected


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("text", [text for text, _ in CRON_CASES])
def test_on_calendar_is_valid_for_systemd(text):
    for value in CronExpression(text).on_calendar():
        done = subprocess.run(["systemd-analyze", "calendar", value], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("text", ["61 3 * * *", "30 3 * *", "30 3 * * 8", "* 3-1 * * *", "30 3 0 * *", "x * * * *"])
def test_bad_cron_expressions_are_refused(text):
    with pytest.raises(ValueError):
        CronExpression(text)


def test_schedule_with_a_bad_value_names_the_file_line(offline_project):
    scheduled(offline_project, '"61 3 * * *"')
    done = schedule_cli(offline_project, "install", "--via", "cron", "--crontab-file", offline_project.path("ct"))
    assert done.returncode == 3
    assert re.search(r"workflows/nightly.yaml:\d+:\d+: steps.prune.schedule: minute '61' is not in 0-59", done.output)
    assert not os.path.exists(offline_project.path("ct"))


def test_schedule_that_is_not_cron_is_a_schema_error(offline_project):
    scheduled(offline_project, '"every night"')
    done = offline_project.doit("list")
    assert done.returncode == 3
    assert "steps.prune.schedule" in done.output


def test_cron_install_keeps_other_entries_and_runs_twice(offline_project):
    scheduled(offline_project)
    crontab = offline_project.write("crontab.txt", FOREIGN + "\n")
    first = schedule_cli(offline_project, "install", "--via", "cron", "--crontab-file", crontab)
    assert first.returncode == 0, first.output
    with open(crontab) as handle:
        lines = handle.read().splitlines()
    assert lines[0] == FOREIGN
    assert lines[1] == "# dockflow %s prune (written by python -m tasks.schedule; `remove` deletes it)" \
        % offline_project.root
    entry = lines[2]
    assert CRON_LINE.match(entry), entry
    assert entry.startswith("30 3 * * * cd %s && " % offline_project.root)
    assert "DOCKFLOW_LOG_FILE=%s/.dockflow/logs/prune.log" % offline_project.root in entry
    assert entry.endswith("-m doit prune >/dev/null 2>>%s/.dockflow/logs/prune.log" % offline_project.root)
    assert len(lines) == 3

    second = schedule_cli(offline_project, "install", "--via", "cron", "--crontab-file", crontab)
    assert second.returncode == 0
    with open(crontab) as handle:
        assert handle.read().splitlines() == lines, "installing again changes nothing"

    shown = schedule_cli(offline_project, "show", "--via", "cron", "--crontab-file", crontab)
    assert shown.stdout == "prune: %s\n" % entry

    removed = schedule_cli(offline_project, "remove", "--via", "cron", "--crontab-file", crontab)
    assert removed.returncode == 0, removed.output
    with open(crontab) as handle:
        assert handle.read().splitlines() == [FOREIGN]
    assert "nothing of ours" in schedule_cli(offline_project, "remove", "--via", "cron",
                                             "--crontab-file", crontab).stdout


def test_percent_in_a_path_is_escaped_for_cron(tmp_path):
    from tests.conftest import Project

    project = Project(str(tmp_path / "50%off"), "unix:///nonexistent/docker.sock")  # no engine needed
    scheduled(project)
    crontab = project.path("crontab.txt")
    assert schedule_cli(project, "install", "--via", "cron", "--crontab-file", crontab).returncode == 0
    with open(crontab) as handle:
        entry = handle.read().splitlines()[-1]
    assert "50\\%off" in entry and "50%off" not in entry.replace("\\%", "")


@pytest.mark.engine
def test_cron_command_runs_the_step_with_a_log_file(project, names):
    """The entry's command, run as cron would (sh -c), runs the step from the project
    folder and logs to the rotating file, with the JSON line alone on its line."""
    scheduled(project, extra="    labels: [%s]\n" % names)
    crontab = project.path("crontab.txt")
    assert schedule_cli(project, "install", "--via", "cron", "--crontab-file", crontab).returncode == 0
    with open(crontab) as handle:
        entry = handle.read().splitlines()[-1]
    command = entry.split(" ", 5)[5].replace("\\%", "%")
    done = subprocess.run(["sh", "-c", command], cwd="/", env={"PATH": os.environ["PATH"]},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with open(project.path(".dockflow/logs/prune.log")) as handle:
        log = handle.read().splitlines()
    assert any(line.endswith("INFO    prune: dry run, nothing removed: would free 0 B "
                             "(0 bytes: images 0, containers 0, build cache 0)") for line in log), log
    records = [json.loads(line) for line in log if line.startswith("{")]
    assert len(records) == 1 and records[0]["event"] == "dockflow.prune" and records[0]["dry_run"] is True


def read(path):
    with open(path) as handle:
        return handle.read()


def unit_keys(path):
    """{section: [(key, value)]} of a systemd unit file (keys may repeat)."""
    sections, current = {}, None
    with open(path) as handle:
        for line in handle.read().splitlines():
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), [])
            elif line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                current.append((key, value))
    return sections


def test_systemd_units_written_checked_and_removed(offline_project):
    scheduled(offline_project, '"0 12 13 * 5"')
    unit_dir = offline_project.path("units")
    first = schedule_cli(offline_project, "install", "--via", "systemd", "--unit-dir", unit_dir, "--no-activate")
    assert first.returncode == 0, first.output
    names = sorted(os.listdir(unit_dir))
    assert len(names) == 2 and names[0].endswith("-prune.service") and names[1].endswith("-prune.timer")
    service = unit_keys(os.path.join(unit_dir, names[0]))
    timer = unit_keys(os.path.join(unit_dir, names[1]))
    assert dict(service["Service"])["Type"] == "oneshot"
    assert dict(service["Unit"])["After"] == dict(service["Unit"])["Wants"] == "docker.service"
    assert dict(service["Service"])["ExecStart"] == '/bin/sh -c "cd %s && mkdir -p %s/.dockflow/logs && exec %s ' \
        '-m doit prune >/dev/null 2>>%s/.dockflow/logs/prune.log"' % ((offline_project.root,) * 2 + (sys.executable,)
                                                                     + (offline_project.root,))
    environment = [value for key, value in service["Service"] if key == "Environment"]
    assert "DOCKFLOW_LOG_FILE=%s/.dockflow/logs/prune.log" % offline_project.root in environment
    assert [value for key, value in timer["Timer"] if key == "OnCalendar"] == \
        ["*-*-13 12:00:00", "Fri *-*-* 12:00:00"]
    assert dict(timer["Timer"])["Unit"] == names[0]
    assert dict(timer["Timer"])["Persistent"] == "true"
    assert dict(timer["Install"])["WantedBy"] == "timers.target"
    if shutil.which("systemd-analyze"):
        done = subprocess.run(["systemd-analyze", "verify"] + [os.path.join(unit_dir, n) for n in names],
                              capture_output=True, text=True)
        assert done.returncode == 0 and not done.stdout + done.stderr, done.stdout + done.stderr
    before = {n: read(os.path.join(unit_dir, n)) for n in names}
    again = schedule_cli(offline_project, "install", "--via", "systemd", "--unit-dir", unit_dir, "--no-activate")
    assert again.returncode == 0
    assert {n: read(os.path.join(unit_dir, n)) for n in names} == before
    shown = schedule_cli(offline_project, "show", "--via", "systemd", "--unit-dir", unit_dir)
    assert "OnCalendar=Fri *-*-* 12:00:00" in shown.stdout
    removed = schedule_cli(offline_project, "remove", "--via", "systemd", "--unit-dir", unit_dir, "--no-activate")
    assert removed.returncode == 0, removed.output
    assert os.listdir(unit_dir) == []


def test_systemd_analyze_verify_catches_a_bad_unit(tmp_path):
    """The check above can fail: a unit with an unknown key does not pass."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nType=oneshot\nBogus=1\nExecStart=/bin/true\n")
    done = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True)
    assert "Unknown key 'Bogus'" in done.stdout + done.stderr


# --- the real crontab binary, for a user made by the test ----------------------------
@pytest.fixture
def crontab_user():
    """A throwaway user (no home, no shell) whose crontab the real `crontab -u` edits;
    deleted afterwards with its crontab. Never the caller's own crontab."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("crontab"):
        pytest.skip("needs root, useradd and crontab (apt-get install cron)")
    name = "dfct%s" % uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["crontab", "-u", name, "-r"], capture_output=True)
        subprocess.run(["userdel", name], check=True, capture_output=True)


def crontab_of(user):
    done = subprocess.run(["crontab", "-u", user, "-l"], capture_output=True, text=True)
    return done.stdout.splitlines() if done.returncode == 0 else []


def crontab_takes(user, line):
    return subprocess.run(["crontab", "-u", user, "-"], input=line + "\n", capture_output=True,
                          text=True).returncode == 0


AFTER_OURS = "45 2 * * * /usr/local/bin/rotate-logs"


def test_real_crontab_keeps_the_users_entries(offline_project, crontab_user):
    """The real `crontab` binary, for a user of the test's own: entries before and
    after ours survive install and remove."""
    scheduled(offline_project)
    subprocess.run(["crontab", "-u", crontab_user, "-"], input=FOREIGN + "\n", text=True, check=True)
    done = schedule_cli(offline_project, "install", "--via", "cron", "--crontab-user", crontab_user)
    assert done.returncode == 0, done.output
    assert "the crontab of %s" % crontab_user in done.stdout
    lines = crontab_of(crontab_user)
    assert lines[0] == FOREIGN and CRON_LINE.match(lines[-1]), lines
    subprocess.run(["crontab", "-u", crontab_user, "-"], input="\n".join(lines + [AFTER_OURS]) + "\n",
                   text=True, check=True)
    again = schedule_cli(offline_project, "install", "--via", "cron", "--crontab-user", crontab_user)
    assert again.returncode == 0, again.output
    assert crontab_of(crontab_user) == [FOREIGN, AFTER_OURS] + lines[1:]  # ours written anew, at the end
    assert schedule_cli(offline_project, "remove", "--via", "cron", "--crontab-user", crontab_user).returncode == 0
    assert crontab_of(crontab_user) == [FOREIGN, AFTER_OURS]


# Schedules we take; Debian's cron must take each. Boundaries of every field included.
ACCEPTED = ["59 23 31 12 7", "0 0 1 1 0", "0-59 0-23 1-31 1-12 0-7", "0 0 */2 * 1", "30 3 * * mon-fri",
            "0 0 * jan-mar Sun", "1-5/2 * * * *", "0 0 1-31/40 * *", "0 0 31 2 *", "@daily", "@hourly"]
# Schedules we refuse that Debian's cron refuses too (bad value, range, name or step).
REFUSED = ["0 24 * * *", "60 0 * * *", "0 0 * 13 *", "0 0 * * 8", "0 0 32 * *", "0 0 0 * *",
           "0 0 * 0 *", "5/10 * * * *", "*/0 * * * *", "30 3 * * monday", "0,,5 * * * *", "x * * * *"]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted_schedules(text):
    assert CronExpression(text).on_calendar()


@pytest.mark.parametrize("text", REFUSED + ["* 3-1 * * *", "30 3 * * *\n", "30 3 * *", "${s}", "@reboot"])
def test_refused_schedules(text):
    with pytest.raises(ValueError):
        CronExpression(text)


def test_debian_cron_agrees_on_what_is_a_schedule(crontab_user):
    """The oracle is the real `crontab`, which parses as cron does."""
    assert [t for t in ACCEPTED if not crontab_takes(crontab_user, t + " true")] == []
    assert [t for t in REFUSED if crontab_takes(crontab_user, t + " true")] == []


# --- cron's day rule, as systemd computes it -----------------------------------------
BASE = datetime.datetime(2025, 1, 1, 0, 0, 30)
EVERY = {"minute": range(60), "hour": range(24), "dom": range(1, 32), "month": range(1, 13), "dow": range(7)}
DAY_RULE_CASES = [  # the cron values of each field, written out; default: minute 0, hour 0, every day
    ("0 0 */2 * 1", {"dom": range(1, 32, 2), "dow": {1}}),  # `*`: both days (Mondays on odd dates)
    ("0 0 13 * */3", {"dom": {13}, "dow": {0, 3, 6}}),
    ("30 4 1,15 * 5", {"minute": {30}, "hour": {4}, "dom": {1, 15}, "dow": {5}}),  # neither `*`: either day
    ("15 6 1-31 * 1", {"minute": {15}, "hour": {6}}),
    ("0 0 * * */2", {"dow": {0, 2, 4, 6}}),
    ("*/20 8-10 * * mon-fri", {"minute": {0, 20, 40}, "hour": {8, 9, 10}, "dow": {1, 2, 3, 4, 5}}),
    ("0 0 1 */3 *", {"dom": {1}, "month": {1, 4, 7, 10}}),
]


def cron_times(text, values, count):
    """The first `count` times after BASE that Debian's cron runs `text` at: cron.c's
    find_jobs, where the days must both match when either day field starts with `*`,
    else either one."""
    fields = {**EVERY, "minute": {0}, "hour": {0}, **values}
    raw = ALIASES.get(text, text).split()
    both_days = raw[2].startswith("*") or raw[4].startswith("*")
    times, day = [], BASE.date()
    while len(times) < count:
        dom_ok, dow_ok = day.day in fields["dom"], day.isoweekday() % 7 in fields["dow"]
        if day.month in fields["month"] and ((dom_ok and dow_ok) if both_days else (dom_ok or dow_ok)):
            times += [time for time in (datetime.datetime(day.year, day.month, day.day, h, m)
                                        for h in sorted(fields["hour"]) for m in sorted(fields["minute"]))
                      if time > BASE]
        day += datetime.timedelta(days=1)
    return times[:count]


def systemd_times(values, count):
    """The first `count` elapses after BASE of a timer with these OnCalendar= values."""
    times = set()
    for value in values:
        done = subprocess.run(["systemd-analyze", "calendar", "--iterations=%d" % count,
                               "--base-time=%s UTC" % BASE, value], capture_output=True, text=True,
                              env=dict(os.environ, TZ="UTC"), check=True)
        times.update(datetime.datetime.strptime(found, "%Y-%m-%d %H:%M:%S")
                     for found in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", done.stdout))
    return sorted(times)[:count]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("text, values", DAY_RULE_CASES)
def test_systemd_timer_runs_when_cron_would(text, values):
    assert systemd_times(CronExpression(text).on_calendar(), 40) == cron_times(text, values, 40)


# --- what the scheduled command carries, runs and logs -------------------------------
def test_cron_without_keeps_the_lines_after_ours():
    entry = Entry("/srv/p", "prune", "30 3 * * *", env={})
    lines = [FOREIGN, entry.marker(), entry.cron_line(), AFTER_OURS, "# a comment of the user"]
    assert cron_without(lines, [entry]) == [FOREIGN, AFTER_OURS, "# a comment of the user"]


def test_the_install_environment_goes_with_the_entry(offline_project):
    """What chooses the engine and finds the code at install reaches the cron line and
    the service, folders made absolute (the scheduled run starts elsewhere)."""
    scheduled(offline_project)
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "certs", "DOCKER_CONTEXT": "remote",
           "DOCKER_CONFIG": "dockercfg", "PYTHONPATH": REPO + os.pathsep + "lib"}
    crontab, unit_dir = offline_project.path("ct"), offline_project.path("units")
    assert schedule_cli(offline_project, "install", "--via", "cron", "--crontab-file", crontab, env=env).returncode == 0
    done = schedule_cli(offline_project, "install", "--via", "systemd", "--unit-dir", unit_dir, "--no-activate",
                        env=env)
    assert done.returncode == 0, done.output
    expected = {"DOCKER_HOST": offline_project.docker_host, "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": offline_project.path("certs"), "DOCKER_CONTEXT": "remote",
                "DOCKER_CONFIG": offline_project.path("dockercfg"),
                "PYTHONPATH": REPO + os.pathsep + offline_project.path("lib"),
                "DOCKFLOW_LOG_FILE": offline_project.path(".dockflow/logs/prune.log")}
    words = shlex.split(read(crontab).splitlines()[-1].split(" ", 5)[5])
    assert dict(word.split("=", 1) for word in words if re.match(r"[A-Z_]+=", word)) == expected
    service = [n for n in os.listdir(unit_dir) if n.endswith(".service")][0]
    environment = [shlex.split(value)[0] for key, value in unit_keys(os.path.join(unit_dir, service))["Service"]
                   if key == "Environment"]
    assert dict(item.split("=", 1) for item in environment) == expected


SHOW_ENVIRONMENT = """\
import json, os
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "seen.json"), "w") as handle:
    json.dump({"DOCKER_HOST": os.environ.get("DOCKER_HOST"), "cwd": os.getcwd()}, handle)
"""


def cron_command(crontab):
    """The command part of our (last) crontab line, as cron hands it to sh."""
    return read(crontab).splitlines()[-1].split(" ", 5)[5].replace("\\%", "%")


def test_a_failed_scheduled_run_is_in_its_log(offline_project, tmp_path):
    """The exact cron command, run by sh from / with PATH alone: DOCKER_HOST and PYTHONPATH
    of the install reach the step (a sitecustomize on that PYTHONPATH records what it
    sees), the missing log folder is made, and the step's FAILED line is in the log."""
    scheduled(offline_project)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(SHOW_ENVIRONMENT)
    crontab = offline_project.path("ct")
    done = schedule_cli(offline_project, "install", "--via", "cron", "--crontab-file", crontab,
                        env={"PYTHONPATH": REPO + os.pathsep + str(probe)})
    assert done.returncode == 0, done.output
    assert not os.path.exists(offline_project.path(".dockflow/logs"))
    run = subprocess.run(["sh", "-c", cron_command(crontab)], cwd="/", env={"PATH": os.environ["PATH"]},
                         capture_output=True, text=True)
    assert run.returncode == 1 and run.stdout + run.stderr == ""
    seen = json.loads((probe / "seen.json").read_text())
    assert seen == {"DOCKER_HOST": offline_project.docker_host, "cwd": offline_project.root}
    log = read(offline_project.path(".dockflow/logs/prune.log"))
    assert re.search(r"^FAILED prune: cannot reach the Docker engine at unix:///nonexistent/docker.sock",
                     log, re.M), log


def test_the_projects_venv_python_runs_the_step(offline_project):
    """A project with its own environment (.venv/bin/python, as bootstrap makes) is run
    by it, whatever python ran the install; without one, by the installing python."""
    scheduled(offline_project)
    crontab = offline_project.path("ct")
    assert schedule_cli(offline_project, "install", "--via", "cron", "--crontab-file", crontab).returncode == 0
    assert " exec %s -m doit prune " % shlex.quote(sys.executable) in read(crontab)
    venv_python = offline_project.path(".venv/bin/python")
    os.makedirs(os.path.dirname(venv_python))
    os.symlink(sys.executable, venv_python)
    assert schedule_cli(offline_project, "install", "--via", "cron", "--crontab-file", crontab).returncode == 0
    assert " exec %s -m doit prune " % venv_python in read(crontab)


# --- one check for validate and install ----------------------------------------------
@pytest.mark.parametrize("schedule, message", [
    ('"61 3 * * *"', "minute '61' is not in 0-59"),
    ('"${s}"', "'${s}': a schedule cannot use ${variables}"),
    ('"0 24 * * *"', "hour '24' is not in 0-23"),
])
def test_validate_refuses_what_install_refuses(offline_project, schedule, message):
    scheduled(offline_project, schedule, extra='vars:\n          s: "30 3 * * *"\n')
    validated = offline_project.doit("validate")
    installed = schedule_cli(offline_project, "install", "--via", "cron", "--crontab-file", offline_project.path("ct"))
    assert validated.returncode == installed.returncode == 3, validated.output + installed.output
    line = re.search(r"workflows/nightly.yaml:\d+:\d+: steps.prune.schedule: .*", validated.output).group(0)
    assert message in line and line in installed.output
    assert not os.path.exists(offline_project.path("ct"))


def test_systemd_units_of_a_folder_with_space_dollar_and_percent_pass_verify(tmp_path):
    from tests.conftest import Project

    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    project = Project(str(tmp_path / "my $HOME 100%"), "unix:///nonexistent/docker.sock")
    scheduled(project)
    unit_dir = project.path("units")
    done = schedule_cli(project, "install", "--via", "systemd", "--unit-dir", unit_dir, "--no-activate")
    assert done.returncode == 0, done.output
    paths = sorted(os.path.join(unit_dir, n) for n in os.listdir(unit_dir))
    verified = subprocess.run(["systemd-analyze", "verify"] + paths, capture_output=True, text=True)
    assert verified.returncode == 0 and not verified.stdout + verified.stderr, verified.stdout + verified.stderr
    service = unit_keys(paths[0])["Service"]
    assert ('Environment', '"DOCKFLOW_LOG_FILE=%s/.dockflow/logs/prune.log"' % project.root.replace("%", "%%")) \
        in service
    assert "cd '%s'" % project.root.replace("$", "$$").replace("%", "%%") in dict(service)["ExecStart"]


# --- names, quoting and the messages of each action ------------------------------------
def test_every_month_and_day_name_is_its_number():
    """cron's three-letter names, in any case: `nov` is month 11, `tue` day 2."""
    for number, name in enumerate(MONTHS, 1):
        assert CronExpression("0 0 1 %s *" % name.upper()).on_calendar() == ["*-%02d-01 00:00:00" % number]
    for number, name in enumerate(DAYS):
        assert CronExpression("0 0 * * %s" % name).on_calendar() == ["%s *-*-* 00:00:00" % SYSTEMD_DAYS[number]]


def test_a_control_character_in_the_python_is_named_whole():
    with pytest.raises(ValueError) as caught:
        Entry("/srv/p", "prune", "30 3 * * *", env={}, python="/opt/py\nthon")
    assert str(caught.value) == ("the python '/opt/py\\nthon' holds a control character: written into a crontab "
                                 "line or a unit file, a newline would start an entry of its own")


def test_a_double_quote_in_a_unit_setting_is_escaped():
    """systemd.syntax(7): inside a quoted word, `\\"` is a quote; a bare one ends the word."""
    service = Entry('/srv/say "hi"', "prune", "30 3 * * *", env={}).service_text()
    assert 'Environment="DOCKFLOW_LOG_FILE=/srv/say \\"hi\\"/.dockflow/logs/prune.log"' in service.splitlines()


def test_a_marker_left_alone_is_removed_and_reported(tmp_path):
    """A crontab whose last line is our marker (the user deleted the entry under it):
    remove still deletes the marker and says it removed something."""
    entry = Entry("/srv/p", "prune", "30 3 * * *", env={})
    crontab = Crontab(str(tmp_path / "ct"))
    crontab.write([FOREIGN, entry.marker()])
    assert schedule.cron_remove(crontab, [entry]) is True
    assert crontab.read() == [FOREIGN]
    assert schedule.cron_remove(crontab, [entry]) is False


def test_a_users_units_go_where_their_systemd_looks(monkeypatch, tmp_path):
    """root's in /etc/systemd/system; another user's in ~/.config/systemd/user, the
    folder `systemctl --user` reads."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert schedule.default_unit_dir() == str(tmp_path / ".config" / "systemd" / "user")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert schedule.default_unit_dir() == "/etc/systemd/system"


def test_activation_reloads_then_enables_and_disables_each_timer(monkeypatch, tmp_path):
    """What install and remove ask of systemctl (recorded: no systemd runs in the tests):
    by default a reload, then `enable --now` per timer; remove `disable --now`s each
    timer before deleting its files, then reloads; without activation, nothing."""
    calls = []
    monkeypatch.setattr(schedule, "systemctl", lambda unit_dir, *args: calls.append(args) or True)
    entries = [Entry("/srv/p", name, "30 3 * * *", env={}) for name in ("prune", "sweep")]
    unit_dir = str(tmp_path / "units")
    schedule.systemd_install(unit_dir, entries, activate=False)
    schedule.systemd_remove(unit_dir, entries, activate=False)
    assert calls == [] and os.listdir(unit_dir) == []
    schedule.systemd_install(unit_dir, entries)
    assert calls == [("daemon-reload",)] + [("enable", "--now", e.unit + ".timer") for e in entries]
    del calls[:]
    assert len(schedule.systemd_remove(unit_dir, entries)) == 4
    assert calls == [("disable", "--now", e.unit + ".timer") for e in entries] + [("daemon-reload",)]
    assert os.listdir(unit_dir) == []


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd runs here: install would enable units")
def test_install_where_systemd_does_not_run_writes_the_units_and_says_so(offline_project):
    """systemctl may be installed (a container), but no systemd runs: the units are
    written, nothing is asked of systemctl, and the user is told how to enable later."""
    scheduled(offline_project)
    unit_dir = offline_project.path("units")
    done = schedule_cli(offline_project, "install", "--via", "systemd", "--unit-dir", unit_dir)
    assert done.returncode == 0, done.output
    unit = Entry(offline_project.root, "prune", "30 3 * * *").unit
    assert "systemd is not running here: enable later with `systemctl enable --now %s.timer`" % unit in done.stdout
    assert sorted(os.listdir(unit_dir)) == [unit + ".service", unit + ".timer"]


def test_systemd_actions_say_what_they_did(offline_project):
    """show names each missing unit file; install says when each timer runs and where it
    logs; remove lists each file it deleted, one a line."""
    scheduled(offline_project, '"0 12 13 * 5"')
    unit_dir = offline_project.path("units")
    entry = Entry(offline_project.root, "prune", "0 12 13 * 5")
    timer, service = (os.path.join(unit_dir, entry.unit + suffix) for suffix in (".timer", ".service"))
    shown = schedule_cli(offline_project, "show", "--via", "systemd", "--unit-dir", unit_dir)
    assert shown.stdout == "# %s: not installed\n# %s: not installed\n" % (timer, service)
    installed = schedule_cli(offline_project, "install", "--via", "systemd", "--unit-dir", unit_dir, "--no-activate")
    assert installed.stdout.splitlines() == [
        "wrote %s" % service, "wrote %s" % timer,
        "  %s runs at *-*-13 12:00:00; Fri *-*-* 12:00:00; log: %s" % (entry.unit, entry.log_file)]
    removed = schedule_cli(offline_project, "remove", "--via", "systemd", "--unit-dir", unit_dir, "--no-activate")
    assert removed.stdout == "removed %s\nremoved %s\n" % (timer, service)


NAMED_STEPS = """
    steps:
      prune:
        kind: prune
        schedule: "30 3 * * *"
        dry_run: true
      weekly:
        kind: prune
        schedule: "@weekly"
        dry_run: true
      by_hand:
        kind: prune
        dry_run: true
    """


def test_named_steps_alone_are_installed_and_each_must_have_a_schedule(offline_project):
    """`install weekly` writes weekly's entry alone; `show` says what is not installed;
    naming a step without a schedule is a definition error that writes nothing."""
    offline_project.workflow(NAMED_STEPS, name="nightly.yaml")
    crontab = offline_project.path("ct")
    shown = schedule_cli(offline_project, "show", "weekly", "--via", "cron", "--crontab-file", crontab)
    assert shown.stdout == "weekly: not installed in %s\n" % crontab
    done = schedule_cli(offline_project, "install", "weekly", "--via", "cron", "--crontab-file", crontab)
    assert done.returncode == 0, done.output
    assert [line.split(" ", 1)[0] for line in read(crontab).splitlines()] == ["#", "@weekly"]
    assert " weekly " in read(crontab).splitlines()[0]
    refused = schedule_cli(offline_project, "install", "by_hand", "prune", "--via", "cron", "--crontab-file",
                           offline_project.path("ct2"))
    assert refused.returncode == 3, refused.output
    assert re.fullmatch(r"workflow definition has 1 error:\n"
                        r"  workflows/nightly.yaml:\d+:\d+: steps.by_hand: step 'by_hand' has no schedule\n",
                        refused.stderr), refused.stderr
    assert not os.path.exists(offline_project.path("ct2"))


def test_the_crontab_program_keeps_what_it_is_given(crontab_user):
    """Through the real `crontab -u`: no crontab reads as no lines, lines written are
    read back as written, and a crontab it refuses is one clear failure."""
    tab = Crontab(user=crontab_user)
    assert tab.read() == []
    tab.write([FOREIGN, AFTER_OURS])
    assert tab.read() == [FOREIGN, AFTER_OURS]
    with pytest.raises(StepFailed) as caught:
        tab.write(["not a schedule"])
    assert str(caught.value).startswith("crontab - refused the new crontab: ")
    assert "errors in crontab file" in str(caught.value)
    assert tab.read() == [FOREIGN, AFTER_OURS]
