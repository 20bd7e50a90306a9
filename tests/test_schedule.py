"""tasks/schedule.py: a step's `schedule` as a crontab entry or a systemd timer.
The user's real crontab and systemd are not touched: --crontab-file and --unit-dir."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tasks.schedule import CronExpression

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
    assert entry.endswith("-m doit prune >/dev/null")
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
    assert dict(service["Service"])["WorkingDirectory"] == offline_project.root
    assert dict(service["Service"])["ExecStart"] == "%s -m doit prune" % sys.executable
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


@pytest.mark.skipif(not shutil.which("crontab"), reason="cron is not installed (apt-get install cron)")
def test_real_crontab_keeps_the_users_entries(offline_project):
    saved = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    try:
        subprocess.run(["crontab", "-"], input=FOREIGN + "\n", text=True, check=True)
        scheduled(offline_project)
        done = schedule_cli(offline_project, "install", "--via", "cron")
        assert done.returncode == 0, done.output
        lines = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=True).stdout.splitlines()
        assert lines[0] == FOREIGN and CRON_LINE.match(lines[-1])
        assert schedule_cli(offline_project, "remove", "--via", "cron").returncode == 0
        assert subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout.splitlines() == [FOREIGN]
    finally:
        if saved.returncode == 0:
            subprocess.run(["crontab", "-"], input=saved.stdout, text=True, check=True)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True)
