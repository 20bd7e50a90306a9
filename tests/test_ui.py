"""tasks/ui.py: what a run prints, and how it ends when its reader goes away."""
import json
import os
import sys

import pytest

from tasks import ui


@pytest.mark.parametrize("text, plain", [
    ("no escapes", "no escapes"),
    ("\x1b[91mred error\x1b[0m", "red error"),                  # colours (the legacy builder's RUN stderr)
    ("50%\x1b[2K\x1b[1Gdone", "50%done"),                         # cursor moves of a progress line
    ("\x1b]0;title\x07text", "text"),                              # a window title (OSC, BEL-ended)
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),          # a hyperlink (OSC, ST-ended)
    ("\x1bMup", "up"),                                              # a two-byte escape
])
def test_plain_strips_terminal_escapes(text, plain):
    assert ui.plain(text) == plain


def test_indented_lines_are_marked_under_their_step_and_plain():
    assert ui.indented(["Step 1/2 : FROM base", "\x1b[91merror\x1b[0m"]) == \
        "      | Step 1/2 : FROM base\n      | error"
    assert ui.indented([]) == ""


def test_say_warn_and_detail_lines(capsys):
    ui.say("build_app", "building lab/app:1")
    ui.warn("tag_app", "lab/app:latest is a moving target")
    ui.detail("\x1b[91mStep 2/2 : RUN make\x1b[0m")
    assert capsys.readouterr().out.splitlines() == [
        "   build_app: building lab/app:1",
        "   tag_app: warning: lab/app:latest is a moving target",
        "      | Step 2/2 : RUN make"]


def test_a_record_is_one_json_object_alone_on_its_line(capsys):
    ui.record({"event": "dockflow.prune", "bytes": 5, "images": ["a {b}"]})
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {"event": "dockflow.prune", "bytes": 5, "images": ["a {b}"]}


class Gone:
    """A stream whose reader has gone (`doit build_app | head -2`)."""

    def write(self, text):
        raise BrokenPipeError()

    def flush(self):
        raise BrokenPipeError()


@pytest.fixture
def stdout_file(tmp_path, monkeypatch):
    """A file of the test's own; `stdout_file.use()` makes it sys.stdout. A reader gone points
    sys.stdout's descriptor at /dev/null: never pytest's own capture's. Called in the test
    itself, since pytest sets sys.stdout again between a fixture and its test."""
    with open(tmp_path / "out", "w") as handle:
        yield StdoutFile(handle, monkeypatch)


class StdoutFile:
    def __init__(self, handle, monkeypatch):
        self.handle = handle
        self._monkeypatch = monkeypatch

    def use(self):
        self._monkeypatch.setattr(sys, "stdout", self.handle)
        return self.handle


@pytest.mark.parametrize("call", [lambda safe: safe.write("x"), lambda safe: safe.flush()])
def test_a_reader_gone_ends_the_run_with_141_and_writes_nowhere_after(stdout_file, call):
    stdout = stdout_file.use()
    with pytest.raises(SystemExit) as ended:
        call(ui.PipeSafe(Gone()))
    assert ended.value.code == 141
    assert os.path.samestat(os.fstat(stdout.fileno()), os.stat(os.devnull))


def test_pipe_safe_passes_writes_and_attributes_through(stdout_file):
    safe = ui.PipeSafe(stdout_file.handle)
    assert safe.write("kept\n", flush=True) == 5
    assert safe.name == stdout_file.handle.name
    with open(stdout_file.handle.name) as written:
        assert written.read() == "kept\n"


def test_a_command_runs_with_a_pipe_safe_stdout_and_gets_it_back(stdout_file):
    stdout = stdout_file.use()

    class Command:
        outstream = stdout

    @ui.stdout_pipe_safe
    def execute(command, value):
        assert isinstance(sys.stdout, ui.PipeSafe) and command.outstream is sys.stdout
        return value

    assert execute(Command(), 7) == 7
    assert sys.stdout is stdout


def test_this_process_is_the_main_one():
    assert ui.in_main_process()
