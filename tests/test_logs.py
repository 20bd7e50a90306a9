"""Logs of scheduled runs (tasks/ui.py): our loguru sinks leave a program's own alone,
a failed step reaches the text log, and every step's start and result, with prune's
record, go to the JSON log beside it (DOCKFLOW_LOG_FILE's .log -> .jsonl)."""
import json
import os
import subprocess
import sys

import pytest

from tests.test_schedule import schedule_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_program_that_imports_us_keeps_its_own_loguru_sinks():
    script = ("import sys\n"
              "from loguru import logger\n"
              "seen = []\n"
              "logger.add(lambda message: seen.append(message.record['message']), format='{message}')\n"
              "from tasks import ui\n"
              "ui.say('step', 'hello')\n"
              "logger.info('between')\n"
              "ui.remove_sinks()\n"
              "logger.info('after')\n"
              "sys.stderr.write(repr(seen))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr
    program_saw = eval(done.stderr.splitlines()[-1])  # the program's own sink, kept throughout
    assert program_saw == ["   step: hello", "between", "after"]
    assert done.stdout == "   step: hello\n"  # our sink takes only our records, and is gone after remove_sinks


@pytest.mark.parametrize("log_file, loguru_used", [(False, False), (True, True)])
def test_a_run_of_ours_prints_without_loguru_unless_a_log_is_asked_for(tmp_path, log_file, loguru_used):
    """loguru costs ~40 ms to import, on the way to a run's first step; it is there
    for the log files, which then get the same lines."""
    script = ("import sys\n"
              "from tasks import ui\n"
              "ui.claim_output()\n"
              "ui.say('step', 'hello')\n"
              "ui.warn('step', 'careful')\n"
              "with ui.step_lines('step'):\n"
              "    ui.detail('a tool line')\n"
              "sys.stderr.write(repr('loguru' in sys.modules))\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKFLOW_LOG")}
    if log_file:
        env["DOCKFLOW_LOG_FILE"] = str(tmp_path / "run.log")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(env, PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "   step: hello\n   step: warning: careful\n   step | a tool line\n"
    assert done.stderr.splitlines()[-1] == repr(loguru_used)
    if log_file:
        with open(tmp_path / "run.log") as handle:
            assert [line.split(" ", 2)[2] for line in handle.read().splitlines()] == \
                ["   step: hello", "   step: warning: careful", "   step | a tool line"]


def scheduled_command(project, step):
    """The command line of `step`'s crontab entry, as cron runs it (sh -c, from /)."""
    crontab = project.path("crontab.txt")
    installed = schedule_cli(project, "install", step, "--via", "cron", "--crontab-file", crontab)
    assert installed.returncode == 0, installed.output
    with open(crontab) as handle:
        entry = [line for line in handle.read().splitlines() if line and not line.startswith("#")][-1]
    return entry.split(" ", 5)[5].replace("\\%", "%")


def run_as_cron(project, step):
    command = scheduled_command(project, step)
    return subprocess.run(["sh", "-c", command], cwd="/", env={"PATH": os.environ["PATH"]},
                          capture_output=True, text=True)


def json_log(project, step):
    with open(project.path(".dockflow/logs/%s.jsonl" % step)) as handle:
        return [json.loads(line) for line in handle.read().splitlines()]


def step_events(records, step):
    return [r["record"]["extra"] for r in records
            if r["record"]["extra"].get("event") == "dockflow.step" and r["record"]["extra"]["step"] == step]


def prune_that_fails(project):
    """The 3 a.m. prune finds no engine (the offline project's DOCKER_HOST is a dead socket)."""
    project.workflow("""
        steps:
          prune:
            kind: prune
            schedule: "30 3 * * *"
        """, name="nightly.yaml")


def test_a_scheduled_step_that_fails_is_in_the_text_log_and_the_json_log(offline_project):
    """The FAILED line reaches the log files, not only a stderr nobody reads."""
    prune_that_fails(offline_project)
    done = run_as_cron(offline_project, "prune")
    assert done.returncode == 1, done.stderr
    with open(offline_project.path(".dockflow/logs/prune.log")) as handle:
        text_log = handle.read().splitlines()
    failed = [line for line in text_log if "FAILED" in line]
    assert len(failed) == 1 and failed[0].startswith("FAILED prune: cannot reach the Docker engine"), text_log
    assert not [line for line in text_log if "| INFO" in line or "| ERROR" in line]  # no loguru default sink
    records = json_log(offline_project, "prune")
    events = step_events(records, "prune")
    assert [event["status"] for event in events] == ["started", "failed"], records
    assert events[0]["reason"] == events[1]["reason"] == "a prune step runs every time it is asked"
    assert events[1]["error_message"] == failed[0][len("FAILED prune: "):]
    assert isinstance(events[1]["duration_s"], float)
    assert records[-1]["record"]["level"]["name"] == "ERROR" and records[-1]["text"].startswith("prune: FAILED: ")


def test_a_failed_step_reaches_a_log_file_that_is_not_its_stderr(offline_project):
    """DOCKFLOW_LOG_FILE set by hand (stderr a terminal, say): the FAILED line is on
    stderr and in the log, once each."""
    prune_that_fails(offline_project)
    log_file = offline_project.path("by-hand.log")
    done = offline_project.doit("prune", env={"DOCKFLOW_LOG_FILE": log_file})
    assert done.returncode == 1, done.output
    failed = [line for line in done.stderr.splitlines() if line.startswith("FAILED prune: ")]
    assert len(failed) == 1 and "| INFO" not in done.stderr, done.stderr
    with open(log_file) as handle:
        assert [line for line in handle.read().splitlines() if "FAILED" in line] == failed


@pytest.mark.engine
def test_prune_s_record_and_each_step_s_result_join_the_json_log(project, names):
    project.workflow("""
        steps:
          prune:
            kind: prune
            schedule: "30 3 * * *"
            dry_run: true
            labels: [%s]
        """ % names, name="nightly.yaml")
    done = run_as_cron(project, "prune")
    assert done.returncode == 0, done.stderr
    records = json_log(project, "prune")
    assert [event["status"] for event in step_events(records, "prune")] == ["started", "done"]
    prune_records = [r["record"]["extra"] for r in records if r["record"]["extra"].get("event") == "dockflow.prune"]
    assert len(prune_records) == 1 and prune_records[0]["dry_run"] is True, records
    assert prune_records[0]["step"] == "prune" and "bytes" in prune_records[0]
    # the text log keeps its own copy of the record, alone on its line
    with open(project.path(".dockflow/logs/prune.log")) as handle:
        lines = [line for line in handle.read().splitlines() if line.startswith("{")]
    assert len(lines) == 1 and json.loads(lines[0])["event"] == "dockflow.prune"
