"""Hostile values on their way into a crontab or a systemd unit (issue 12, item 2): a
newline in the project folder, in DOCKER_HOST or in a step name would start an entry
of its own. Each is refused with one line and nothing is written; the probes run what
was written as cron would and check that their marker file was not made."""
import os
import re
import subprocess

import pytest

from tests.conftest import Project
from tests.test_schedule import schedule_cli, scheduled

INJECTED = "* * * * * touch pwned #"


def run_as_cron(crontab, cwd):
    """Each entry of the crontab file (if one was written), run by sh as cron would."""
    if not os.path.exists(crontab):
        return
    with open(crontab) as handle:
        for line in handle.read().splitlines():
            fields = line.split(None, 5)
            if len(fields) == 6 and not line.startswith("#"):
                subprocess.run(["sh", "-c", fields[5].replace("\\%", "%")], cwd=cwd, capture_output=True,
                               env={"PATH": os.environ["PATH"]})


@pytest.fixture
def probe_dir(tmp_path):
    """Where the probes' commands run: a `pwned` file here means an injection worked."""
    path = tmp_path / "cron-home"
    path.mkdir()
    return path


def assert_one_line_refusal(done, what):
    assert done.returncode == 1, done.output
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1, done.output
    assert re.match(r"schedule: the %s '.*' holds a control character" % what, done.stderr), done.stderr


def test_a_newline_in_the_project_folder_is_refused(tmp_path, probe_dir):
    project = Project(str(tmp_path / ("x\n" + INJECTED)), "unix:///nonexistent/docker.sock")
    scheduled(project)
    crontab, unit_dir = str(tmp_path / "crontab.txt"), str(tmp_path / "units")
    by_cron = schedule_cli(project, "install", "--via", "cron", "--crontab-file", crontab)
    run_as_cron(crontab, probe_dir)
    assert not (probe_dir / "pwned").exists()
    assert_one_line_refusal(by_cron, "project folder")
    assert not os.path.exists(crontab)
    by_systemd = schedule_cli(project, "install", "--via", "systemd", "--unit-dir", unit_dir, "--no-activate")
    assert_one_line_refusal(by_systemd, "project folder")
    assert not os.path.exists(unit_dir)


def test_a_newline_in_docker_host_is_refused(offline_project, tmp_path, probe_dir):
    scheduled(offline_project)
    crontab, unit_dir = str(tmp_path / "crontab.txt"), str(tmp_path / "units")
    by_cron = schedule_cli(offline_project, "install", "--via", "cron", "--crontab-file", crontab,
                           env={"DOCKER_HOST": "unix:///var/run/docker.sock\n" + INJECTED})
    run_as_cron(crontab, probe_dir)
    assert not (probe_dir / "pwned").exists()
    assert_one_line_refusal(by_cron, "value of DOCKER_HOST")
    marker = tmp_path / "marker"
    by_systemd = schedule_cli(offline_project, "install", "--via", "systemd", "--unit-dir", unit_dir,
                              "--no-activate",
                              env={"DOCKER_HOST": "unix:///x\nExecStartPre=/bin/touch %s" % marker})
    written = [os.path.join(unit_dir, n) for n in os.listdir(unit_dir)] if os.path.isdir(unit_dir) else []
    for path in written:
        with open(path) as handle:
            assert not re.search(r"^ExecStartPre=", handle.read(), re.M), path
    assert_one_line_refusal(by_systemd, "value of DOCKER_HOST")
    assert written == []


def test_a_step_name_ending_in_a_newline_is_refused(offline_project, tmp_path, probe_dir):
    """`prune\\n` passed a schema pattern ending in `$` and reached the crontab; a name
    is matched whole now, by install and validate alike."""
    offline_project.workflow("""
        steps:
          "prune\\n":
            kind: prune
            schedule: "30 3 * * *"
            dry_run: true
        """, name="nightly.yaml")
    crontab = str(tmp_path / "crontab.txt")
    installed = schedule_cli(offline_project, "install", "--via", "cron", "--crontab-file", crontab)
    run_as_cron(crontab, probe_dir)
    assert installed.returncode == 3, installed.output
    # refused by the schema's name pattern (matched whole) before the schedule check sees it
    expected = r"workflows/nightly\.yaml:3:\d+: steps\.'prune\\n': 'prune\\n' does not match"
    assert re.search(expected, installed.stderr), installed.output
    assert not os.path.exists(crontab)
    validated = offline_project.doit("validate")
    assert validated.returncode == 3 and re.search(expected, validated.output), validated.output
